"""The Contracts page: versions with what changed (breaking marked), registration by the
project's admins with errors kept on the form, scoped to the user's projects."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from controls.models import ToolContract
from controls.services import contract_upsert
from tests.factories import MembershipFactory, UserFactory
from traces.models import Membership

ARGS = {"type": "object", "properties": {"order_id": {"type": "string"}}}


@pytest.fixture
def admin_client(client_logged_in):
    return client_logged_in  # ada is the project's admin


@pytest.fixture
def viewer_client(project):
    viewer = UserFactory()
    MembershipFactory(user=viewer, project=project, role=Membership.Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    return client


def test_versions_show_what_changed_and_what_breaks(viewer_client, project):
    contract_upsert(
        project=project, data={"name": "refund", "version": "1", "arguments_schema": ARGS}
    )
    contract_upsert(
        project=project,
        data={
            "name": "refund",
            "version": "2",
            "arguments_schema": {**ARGS, "required": ["order_id"]},
        },
    )
    page = viewer_client.get("/controls/contracts/?project=acme-support").content.decode()
    assert 'id="tool-refund"' in page
    assert page.index(">2</b>") < page.index(">1</b>")  # newest first
    assert "breaking" in page and "order_id" in page
    assert 'id="register"' not in page  # a viewer does not register


def test_an_admin_registers_a_version_and_sees_the_changes(admin_client, project):
    contract_upsert(
        project=project, data={"name": "refund", "version": "1", "arguments_schema": ARGS}
    )
    response = admin_client.post(
        "/controls/contracts/?project=acme-support",
        {
            "name": "refund",
            "version": "2",
            "risk": "high",
            "status": "active",
            "side_effects": "on",
            "arguments_schema": json.dumps({**ARGS, "required": ["order_id"]}),
            "result_schema": "{}",
        },
        follow=True,
    )
    assert response.status_code == 200
    assert "Registered refund 2." in response.content.decode()
    assert "breaking" in response.content.decode()
    new = ToolContract.objects.get(project=project, name="refund", version="2")
    assert (new.risk, new.side_effects) == ("high", True)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("arguments_schema", "{not json", "Not valid JSON"),
        ("arguments_schema", '{"type": 7}', "Invalid JSON Schema"),
        ("version", "1", "already registered"),
        ("risk", "apocalyptic", "Must be one of"),
    ],
)
def test_bad_input_is_a_400_with_the_form_kept(admin_client, project, field, value, message):
    contract_upsert(project=project, data={"name": "refund", "version": "1"})
    data = {"name": "refund", "version": "3", "risk": "low", "status": "active"}
    data[field] = value
    response = admin_client.post("/controls/contracts/?project=acme-support", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'value="refund"' in response.content.decode()
    assert not ToolContract.objects.filter(version="3").exists()


def test_a_viewer_cannot_register(viewer_client, project):
    response = viewer_client.post(
        "/controls/contracts/?project=acme-support", {"name": "x", "version": "1"}
    )
    assert response.status_code == 403
    assert not ToolContract.objects.exists()


def test_another_projects_contracts_are_a_404(outsider_client, project):
    assert outsider_client.get("/controls/contracts/?project=acme-support").status_code == 404


def test_the_empty_state_says_how_to_register(client_logged_in, project):
    page = client_logged_in.get("/controls/contracts/?project=acme-support").content.decode()
    assert 'id="no-contracts"' in page
