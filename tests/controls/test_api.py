"""/api/contracts/: scoped reads, admin-only writes, field-level errors."""

from __future__ import annotations

import pytest
from django.test import Client

from controls.services import contract_upsert
from tests.factories import MembershipFactory, UserFactory
from traces.models import Membership

ARGS = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}},
    "required": ["order_id"],
}


@pytest.fixture
def contracts(project, other_project):
    mine = contract_upsert(
        project=project, data={"name": "refund_order", "version": "1.0.0", "arguments_schema": ARGS}
    ).contract
    theirs = contract_upsert(
        project=other_project, data={"name": "secret_tool", "version": "1.0.0"}
    ).contract
    return mine, theirs


def body(**overrides):
    return {
        "project": "acme-support",
        "name": "refund_order",
        "version": "1.1.0",
        "arguments_schema": {**ARGS, "required": ["order_id", "amount"]},
        "side_effects": True,
        "risk": "high",
        **overrides,
    }


def post(client, data):
    return client.post("/api/contracts/", data, content_type="application/json")


def test_a_member_lists_only_their_projects_contracts(client_logged_in, contracts):
    response = client_logged_in.get("/api/contracts/")
    assert response.status_code == 200
    assert [(c["project"], c["name"]) for c in response.json()["results"]] == [
        ("acme-support", "refund_order")
    ]


def test_an_outsider_neither_lists_nor_retrieves_another_projects_contract(
    outsider_client, contracts
):
    mine, theirs = contracts
    names = [c["name"] for c in outsider_client.get("/api/contracts/").json()["results"]]
    assert names == ["secret_tool"]
    assert outsider_client.get(f"/api/contracts/{mine.pk}/").status_code == 404
    assert outsider_client.get(f"/api/contracts/{theirs.pk}/").status_code == 200


def test_an_outsider_cannot_register_in_another_project(outsider_client, contracts):
    response = post(outsider_client, body())
    assert response.status_code == 400
    assert "project" in response.json()


def test_a_project_key_reads_its_project_and_never_writes(ingest_secret, contracts):
    key = Client(headers={"Authorization": f"Bearer {ingest_secret}"})
    mine, theirs = contracts
    assert [c["id"] for c in key.get("/api/contracts/").json()["results"]] == [mine.pk]
    assert key.get(f"/api/contracts/{mine.pk}/").json()["arguments_schema"] == ARGS
    assert key.get(f"/api/contracts/{theirs.pk}/").status_code == 404
    assert post(key, body()).status_code == 403


def test_an_admin_registers_a_version_and_sees_what_breaks(client_logged_in, contracts):
    response = post(client_logged_in, body())
    assert response.status_code == 201, response.json()
    data = response.json()
    assert (data["version"], data["risk"], data["changes_from"]) == ("1.1.0", "high", "1.0.0")
    assert {"part": "arguments", "pointer": "/required", "breaking": True} in [
        {k: c[k] for k in ("part", "pointer", "breaking")} for c in data["changes"]
    ]


def test_a_viewer_may_not_register(project, contracts):
    viewer = UserFactory(username="vic")
    MembershipFactory(project=project, user=viewer, role=Membership.Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    assert post(client, body()).status_code == 403


def test_errors_are_field_level_400s(client_logged_in, contracts):
    response = post(client_logged_in, body(version="", risk="extreme"))
    assert response.status_code == 400
    assert set(response.json()) == {"version", "risk"}


def test_an_invalid_schema_is_a_400_naming_the_pointer(client_logged_in, contracts):
    bad = {"type": "object", "properties": {"a": {"minLength": -1}}}
    response = post(client_logged_in, body(arguments_schema=bad))
    assert response.status_code == 400
    [message] = response.json()["arguments_schema"]
    assert message.startswith("Invalid JSON Schema at /properties/a/minLength:")


def test_registering_an_existing_version_is_a_400(client_logged_in, contracts):
    response = post(client_logged_in, body(version="1.0.0"))
    assert response.status_code == 400
    assert response.json() == {"version": ["refund_order 1.0.0 is already registered."]}


def test_a_schema_that_is_not_an_object_is_a_400(client_logged_in, contracts):
    response = post(client_logged_in, body(result_schema=["not", "a", "schema"]))
    assert response.status_code == 400
    assert "result_schema" in response.json()


def test_an_unknown_status_filter_is_a_400(client_logged_in, contracts):
    assert client_logged_in.get("/api/contracts/?status=gone").status_code == 400
    assert client_logged_in.get("/api/contracts/?status=active").json()["count"] == 1
