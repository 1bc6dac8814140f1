"""Budget envelopes in the admin: the shared validation, read-only evaluation fields,
"evaluate now", and view-only state changes and alerts."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from budgets.models import Alert, BudgetEnvelope, StateChange
from tests.factories import UserFactory, agent_run
from traces.rollups import rollup_pending

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client():
    staff = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    return client


def add_data(project, **changes):
    return {
        "project": project.pk,
        "name": "Support bot",
        "description": "",
        "enabled": "on",
        "metric": "tokens",
        "limit": "1000",
        "period": "day",
        "rolling_minutes": "",
        "timezone": "Europe/Paris",
        "thresholds": "80, 50",
        "agent": "",
        "model": "",
        "service_name": "",
        "attribute": "",
        "attribute_value": "",
    } | changes


def test_adding_an_envelope_uses_the_shared_validation(staff_client, project):
    response = staff_client.post(
        "/admin/budgets/budgetenvelope/add/",
        add_data(project, period="rolling", thresholds="50, 50"),
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert sorted(errors) == ["rolling_minutes", "thresholds"]

    response = staff_client.post("/admin/budgets/budgetenvelope/add/", add_data(project))
    assert response.status_code == 302
    envelope = BudgetEnvelope.objects.get()
    assert (envelope.thresholds, envelope.timezone) == ([50, 80], "Europe/Paris")


def test_evaluate_now_reports_the_state(staff_client, project):
    # The admin evaluates at the real current time: a rolling hour holds runs started
    # just now whatever the hour, day or month.
    envelope = BudgetEnvelope.objects.create(
        project=project,
        name="Support bot",
        metric="tokens",
        limit=500,
        period="rolling",
        rolling_minutes=60,
        thresholds=[100],
    )
    start = datetime.now(UTC)
    for i in range(2):
        agent_run(project=project, start=start + timedelta(milliseconds=i))
    rollup_pending()

    response = staff_client.post(
        "/admin/budgets/budgetenvelope/",
        {"action": "evaluate_now", "_selected_action": [envelope.pk]},
        follow=True,
    )

    text = response.content.decode()
    assert "Support bot: exceeded, 620 tokens of 500 tokens (124 %" in text
    assert "was ok" in text and "1 new alert(s)" in text
    envelope.refresh_from_db()
    assert envelope.state == "exceeded"
    assert envelope.last_value == Decimal(620)

    changelist = staff_client.get("/admin/budgets/budgetenvelope/").content.decode()
    assert "620 tokens / 500 tokens (124 %)" in changelist
    page = staff_client.get(f"/admin/budgets/budgetenvelope/{envelope.pk}/change/")
    assert "last_value" not in page.context["adminform"].form.fields  # read-only

    alert = Alert.objects.get()
    change = StateChange.objects.get()
    assert staff_client.get(f"/admin/budgets/alert/{alert.pk}/change/").status_code == 200
    assert staff_client.get(f"/admin/budgets/statechange/{change.pk}/change/").status_code == 200
    assert staff_client.get("/admin/budgets/alert/add/").status_code == 403
    assert staff_client.get("/admin/budgets/statechange/").status_code == 200
