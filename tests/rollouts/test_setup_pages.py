"""KPIs and promotion criteria set up in the console: created and edited by a project's
admins with the admin's forms (same rules, same errors), read-only for members, scoped to
the user's projects."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from rollouts.models import AgentPhase, Kpi, PromotionCriteria
from tests.factories import MembershipFactory, UserFactory
from traces.models import Membership

pytestmark = pytest.mark.django_db

KPI = {
    "name": "resolved",
    "label": "Resolved without a person",
    "unit": "",
    "kind": "rate",
    "baseline": "previous_version",
    "higher_is_better": "on",
    "description": "",
}
CRITERIA = {
    "agent": "refund-bot",
    "from_phase": "shadow",
    "to_phase": "bounded",
    "window_days": "14",
    "min_runs": "200",
    "max_exception_rate": "2",
    "max_intervention_rate": "5",
    "min_shadow_agreement": "",
    "require_no_kpi_regression": "on",
}


@pytest.fixture
def admin_client(client_logged_in):
    return client_logged_in  # ada is the project's admin


@pytest.fixture
def staff_client(db):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root)
    return client


@pytest.fixture
def viewer_client(project):
    viewer = UserFactory(username="vic")
    MembershipFactory(user=viewer, project=project, role=Membership.Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    return client


@pytest.fixture
def kpi(project):
    return Kpi.objects.create(project=project, name="handle_time", kind="mean", unit="min")


@pytest.fixture
def criteria(project):
    return PromotionCriteria.objects.create(
        project=project, agent="refund-bot", from_phase="shadow", to_phase="bounded"
    )


# ------------------------------------------------------------------ KPIs


def test_an_admin_declares_a_kpi_through_the_page(admin_client, project):
    response = admin_client.post("/kpis/setup/new/?project=acme-support", KPI)

    assert response.status_code == 302
    kpi = Kpi.objects.get()
    assert (kpi.project, kpi.name, kpi.kind, kpi.higher_is_better) == (
        project,
        "resolved",
        "rate",
        True,
    )
    listing = admin_client.get(response["Location"]).content.decode()
    assert "Resolved without a person" in listing and "declared" in listing


def test_an_admin_edits_a_kpi(admin_client, kpi):
    form = admin_client.get(f"/kpis/setup/{kpi.pk}/edit/").content.decode()
    assert 'value="handle_time"' in form

    response = admin_client.post(
        f"/kpis/setup/{kpi.pk}/edit/",
        {**KPI, "name": "handle_time", "kind": "mean", "unit": "minutes", "higher_is_better": ""},
    )

    assert response.status_code == 302
    kpi.refresh_from_db()
    assert kpi.unit == "minutes" and kpi.higher_is_better is False


def test_a_duplicate_kpi_gets_the_admins_error_beside_the_kept_input(
    admin_client, staff_client, kpi, project
):
    response = admin_client.post(
        "/kpis/setup/new/?project=acme-support", {**KPI, "name": "handle_time", "unit": "sec"}
    )

    assert response.status_code == 400
    admin = staff_client.post(
        "/admin/rollouts/kpi/add/", {**KPI, "project": project.pk, "name": "handle_time"}
    )
    expected = admin.context["adminform"].form.non_field_errors()
    assert list(response.context["form"].non_field_errors()) == list(expected)
    page = response.content.decode()
    assert "KPI with this Project and Name already exists." in page
    assert 'value="sec"' in page
    assert Kpi.objects.count() == 1


def test_a_bad_kpi_name_is_refused_as_in_the_admin(admin_client, staff_client, project):
    response = admin_client.post("/kpis/setup/new/?project=acme-support", {**KPI, "name": "a b"})

    assert response.status_code == 400
    admin = staff_client.post(
        "/admin/rollouts/kpi/add/", {**KPI, "project": project.pk, "name": "a b"}
    )
    assert response.context["form"].errors["name"] == admin.context["adminform"].form.errors["name"]
    assert 'value="a b"' in response.content.decode()
    assert not Kpi.objects.exists()


def test_a_member_reads_kpis_but_gets_403_on_the_forms(viewer_client, kpi):
    listing = viewer_client.get("/kpis/setup/?project=acme-support").content.decode()
    assert "handle_time" in listing and "New KPI" not in listing
    assert viewer_client.get("/kpis/setup/new/?project=acme-support").status_code == 403
    assert viewer_client.post("/kpis/setup/new/?project=acme-support", KPI).status_code == 403
    assert viewer_client.post(f"/kpis/setup/{kpi.pk}/edit/", KPI).status_code == 403
    assert Kpi.objects.get().name == "handle_time"


def test_another_projects_kpi_is_404(outsider_client, kpi):
    assert outsider_client.get(f"/kpis/setup/{kpi.pk}/edit/").status_code == 404
    assert outsider_client.post(f"/kpis/setup/{kpi.pk}/edit/", KPI).status_code == 404
    assert outsider_client.get("/kpis/setup/?project=acme-support").status_code == 404


# ------------------------------------------------------------------ promotion criteria


def test_an_admin_adds_promotion_criteria(admin_client, project):
    response = admin_client.post("/agents/criteria/new/?project=acme-support", CRITERIA)

    assert response.status_code == 302
    c = PromotionCriteria.objects.get()
    assert (c.project, c.agent, c.from_phase, c.to_phase, c.min_runs) == (
        project,
        "refund-bot",
        "shadow",
        "bounded",
        200,
    )
    assert c.max_exception_rate == Decimal("2") and c.min_shadow_agreement is None


def test_an_admin_edits_promotion_criteria(admin_client, criteria):
    response = admin_client.post(
        f"/agents/criteria/{criteria.pk}/edit/",
        {**CRITERIA, "min_runs": "50", "min_shadow_agreement": "90"},
    )

    assert response.status_code == 302
    criteria.refresh_from_db()
    assert criteria.min_runs == 50 and criteria.min_shadow_agreement == Decimal("90")


def test_a_demotion_is_refused_as_in_the_admin(admin_client, staff_client, project):
    backwards = {**CRITERIA, "from_phase": "bounded", "to_phase": "shadow"}

    response = admin_client.post("/agents/criteria/new/?project=acme-support", backwards)

    assert response.status_code == 400
    admin = staff_client.post(
        "/admin/rollouts/promotioncriteria/add/",
        {**backwards, "project": project.pk, "require_readiness": "[]"},
    )
    expected = admin.context["adminform"].form.errors["to_phase"]
    assert response.context["form"].errors["to_phase"] == expected
    assert "A promotion goes to a later phase than bounded." in response.content.decode()
    assert not PromotionCriteria.objects.exists()


def test_a_second_criteria_from_the_same_phase_is_an_error_not_a_crash(admin_client, criteria):
    response = admin_client.post("/agents/criteria/new/?project=acme-support", CRITERIA)

    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    assert PromotionCriteria.objects.count() == 1


def test_the_criteria_page_lists_declared_phases_with_a_link_to_change_them(
    viewer_client, project, criteria
):
    AgentPhase.objects.create(
        project=project, agent="refund-bot", phase="shadow", since="2025-01-01T00:00:00Z"
    )

    page = viewer_client.get("/agents/criteria/?project=acme-support").content.decode()

    assert "refund-bot" in page and "shadow → bounded" in page
    assert "/agents/compare/?project=acme-support&amp;agent=refund-bot" in page
    assert "New criteria" not in page


def test_a_member_gets_403_on_the_criteria_forms(viewer_client, criteria):
    assert viewer_client.get("/agents/criteria/new/?project=acme-support").status_code == 403
    assert (
        viewer_client.post("/agents/criteria/new/?project=acme-support", CRITERIA).status_code
        == 403
    )
    url = f"/agents/criteria/{criteria.pk}/edit/"
    assert viewer_client.post(url, {**CRITERIA, "min_runs": "1"}).status_code == 403
    criteria.refresh_from_db()
    assert criteria.min_runs == 500


def test_another_projects_criteria_is_404(outsider_client, criteria):
    assert outsider_client.get(f"/agents/criteria/{criteria.pk}/edit/").status_code == 404
    assert (
        outsider_client.post(f"/agents/criteria/{criteria.pk}/edit/", CRITERIA).status_code == 404
    )


@pytest.mark.parametrize(
    "hostile",
    [
        {"agent": "nul\x00agent"},
        {"require_readiness": ["made-up", "nul\x00key"]},
        {"window_days": "0"},
        {"max_exception_rate": "250"},
        {"min_runs": "99999999999999999999"},
        {"from_phase": "paused"},
    ],
)
def test_hostile_criteria_are_a_400_with_the_field_named(admin_client, hostile):
    response = admin_client.post(
        "/agents/criteria/new/?project=acme-support", {**CRITERIA, **hostile}
    )

    assert response.status_code == 400
    assert set(hostile) & set(response.context["form"].errors)
    assert not PromotionCriteria.objects.exists()


def test_a_kpi_label_with_nul_is_a_400(admin_client):
    response = admin_client.post("/kpis/setup/new/?project=acme-support", {**KPI, "label": "a\x00"})
    assert response.status_code == 400
    assert "label" in response.context["form"].errors
