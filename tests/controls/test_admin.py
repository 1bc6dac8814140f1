"""The admin lists contracts with filters and validates schemas like the API does."""

from __future__ import annotations

import pytest
from django.test import Client

from controls.models import ToolContract
from controls.services import contract_upsert
from tests.factories import UserFactory


@pytest.fixture
def admin_client(db):
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_the_changelist_filters_by_project_status_and_risk(admin_client, project):
    contract_upsert(project=project, data={"name": "refund_order", "version": "1.0.0"})
    response = admin_client.get(
        "/admin/controls/toolcontract/",
        {"project__id__exact": project.pk, "status__exact": "active", "risk__exact": "low"},
    )
    assert response.status_code == 200
    assert b"refund_order" in response.content


def test_the_form_rejects_an_invalid_schema_naming_the_pointer(admin_client, project):
    response = admin_client.post(
        "/admin/controls/toolcontract/add/",
        {
            "project": project.pk,
            "name": "refund_order",
            "version": "1.0.0",
            "arguments_schema": '{"properties": {"a": {"type": 7}}}',
            "result_schema": "{}",
            "risk": "low",
            "status": "active",
            "description": "",
        },
    )
    assert response.status_code == 200
    assert "Invalid JSON Schema at /properties/a/type" in response.content.decode()
    assert not ToolContract.objects.exists()


def test_the_form_saves_a_valid_contract(admin_client, project):
    response = admin_client.post(
        "/admin/controls/toolcontract/add/",
        {
            "project": project.pk,
            "name": "refund_order",
            "version": "1.0.0",
            "arguments_schema": '{"type": "object"}',
            "result_schema": "{}",
            "side_effects": "on",
            "risk": "high",
            "status": "active",
            "description": "",
        },
    )
    assert response.status_code == 302
    saved = ToolContract.objects.get()
    assert (saved.arguments_schema, saved.side_effects, saved.risk) == (
        {"type": "object"},
        True,
        "high",
    )


def test_approvals_and_decisions_are_listed_read_only(admin_client, project):
    from controls.approvals import approval_decide, approval_request

    approval = approval_request(
        project=project, agent="support-agent", tool="refund_order", arguments={"amount": 30}
    )
    approval_decide(approval, "denied", "ada")
    listed = admin_client.get("/admin/controls/approval/", {"status__exact": "denied"})
    assert listed.status_code == 200 and b"refund_order" in listed.content
    assert admin_client.get("/admin/controls/approval/add/").status_code == 403
    page = admin_client.get(f"/admin/controls/approval/{approval.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    # A change posted anyway is refused: the decision stands.
    admin_client.post(f"/admin/controls/approval/{approval.pk}/change/", {"status": "approved"})
    approval.refresh_from_db()
    assert approval.status == "denied"
    assert admin_client.get("/admin/controls/decisionrecord/").status_code == 200
    assert admin_client.get("/admin/controls/decisionrecord/add/").status_code == 403
