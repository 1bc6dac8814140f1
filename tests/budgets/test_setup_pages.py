"""Budgets set up in the console: envelopes and channels created and edited by a project's
admins through the API's serializers (same errors), read-only for members, scoped to the
user's projects, and a test alert sent from a channel's page to a real receiver."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from budgets.models import BudgetEnvelope, Channel
from tests.budgets.conftest import WEBHOOK_SECRET
from tests.factories import MembershipFactory, UserFactory
from traces.models import Membership

pytestmark = pytest.mark.django_db

ENVELOPE = {
    "name": "Support spend",
    "metric": "cost_usd",
    "limit": "250",
    "period": "month",
    "timezone": "Europe/Paris",
    "thresholds": "50, 80, 100",
    "forecast": "on",
    "enabled": "on",
    "description": "",
    "agent": "",
    "model": "",
    "service_name": "",
    "attribute": "",
    "attribute_value": "",
    "rolling_minutes": "",
}


@pytest.fixture
def admin_client(client_logged_in):
    return client_logged_in  # ada is the project's admin


@pytest.fixture
def viewer_client(project):
    viewer = UserFactory(username="vic")
    MembershipFactory(user=viewer, project=project, role=Membership.Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    return client


def api_errors(user, data: dict, path="/api/budgets/", **extra) -> dict:
    """The REST API's answer to the same envelope (the API takes staff users)."""
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    api = Client()
    api.force_login(user)
    response = api.post(path, data, content_type="application/json")
    user.is_staff = False
    user.save(update_fields=["is_staff"])
    assert response.status_code == 400, response.content
    return response.json()


# ------------------------------------------------------------------ envelopes


def test_an_admin_creates_an_envelope_through_the_page(admin_client, project):
    response = admin_client.post("/budgets/new/?project=acme-support", ENVELOPE)

    envelope = BudgetEnvelope.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/budgets/{envelope.pk}/"
    assert envelope.project == project
    assert envelope.limit == Decimal("250")
    assert envelope.thresholds == [50, 80, 100]
    assert envelope.timezone == "Europe/Paris"


def test_an_admin_edits_an_envelope_and_its_channels(admin_client, envelope, project):
    channel = Channel.objects.create(
        project=project, name="Ops mail", kind="email", config={"to": ["ops@example.com"]}
    )
    form = admin_client.get(f"/budgets/{envelope.pk}/edit/").content.decode()
    assert 'value="Monthly LLM spend"' in form and 'value="80, 100"' in form

    response = admin_client.post(
        f"/budgets/{envelope.pk}/edit/",
        {**ENVELOPE, "name": "Monthly LLM spend", "limit": "120.5", "channels": [channel.pk]},
    )

    assert response.status_code == 302
    envelope.refresh_from_db()
    assert envelope.limit == Decimal("120.5")
    assert list(envelope.channels.all()) == [channel]


def test_the_page_shows_the_apis_error_beside_the_kept_input(admin_client, user):
    bad = {**ENVELOPE, "metric": "p95_run_latency_s", "period": "month", "limit": "7.5"}

    response = admin_client.post("/budgets/new/?project=acme-support", bad)

    assert response.status_code == 400
    api = api_errors(
        user,
        {
            "project": "acme-support",
            "name": "Support spend",
            "metric": "p95_run_latency_s",
            "period": "month",
            "limit": "7.5",
        },
    )
    page = response.content.decode()
    assert api["period"][0] in page.replace("&#x27;", "'")
    assert response.context["errors"]["period"] == api["period"]
    assert 'value="7.5"' in page  # the input is kept
    assert not BudgetEnvelope.objects.exists()


def test_threshold_errors_are_the_apis(admin_client, user):
    response = admin_client.post(
        "/budgets/new/?project=acme-support", {**ENVELOPE, "thresholds": "80, 80"}
    )

    assert response.status_code == 400
    api = api_errors(
        user,
        {
            "project": "acme-support",
            "name": "x",
            "limit": "1",
            "thresholds": [80, 80],
        },
    )
    assert response.context["errors"]["thresholds"] == api["thresholds"]
    assert 'value="80, 80"' in response.content.decode()


def test_a_member_reads_but_gets_403_on_the_forms(viewer_client, envelope):
    assert viewer_client.get("/budgets/new/?project=acme-support").status_code == 403
    assert viewer_client.post("/budgets/new/?project=acme-support", ENVELOPE).status_code == 403
    assert viewer_client.get(f"/budgets/{envelope.pk}/edit/").status_code == 403
    response = viewer_client.post(f"/budgets/{envelope.pk}/edit/", ENVELOPE)
    assert response.status_code == 403
    assert BudgetEnvelope.objects.get().limit == Decimal("100")


def test_another_projects_envelope_is_404(outsider_client, envelope):
    assert outsider_client.get(f"/budgets/{envelope.pk}/edit/").status_code == 404
    assert outsider_client.post(f"/budgets/{envelope.pk}/edit/", ENVELOPE).status_code == 404
    assert outsider_client.get("/budgets/new/?project=acme-support").status_code == 404


def test_another_projects_channel_cannot_be_attached(admin_client, other_project):
    foreign = Channel.objects.create(
        project=other_project, name="Their hook", kind="email", config={"to": ["a@example.com"]}
    )

    response = admin_client.post(
        "/budgets/new/?project=acme-support", {**ENVELOPE, "channels": [foreign.pk]}
    )

    assert response.status_code == 400
    assert "channels" in response.context["errors"]
    assert "Their hook" not in response.content.decode()
    assert not BudgetEnvelope.objects.exists()


def test_the_form_needs_a_csrf_token(user, project):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/budgets/new/?project=acme-support", ENVELOPE).status_code == 403
    assert not BudgetEnvelope.objects.exists()


# ------------------------------------------------------------------ channels


def test_an_admin_creates_a_webhook_channel_and_the_secret_is_shown_once(
    admin_client, project, receiver, allow_private_urls
):
    response = admin_client.post(
        "/alerts/channels/new/?project=acme-support&kind=webhook",
        {"name": "Ops hook", "url": receiver.url(), "headers": "X-Team: payments", "enabled": "on"},
        follow=True,
    )

    channel = Channel.objects.get()
    assert channel.project == project and channel.kind == "webhook"
    assert channel.config["url"] == receiver.url()
    assert channel.config["headers"] == {"X-Team": "payments"}
    assert len(channel.config["secret"]) >= 32
    page = response.content.decode()
    assert channel.config["secret"] in page  # told once, on the redirect
    again = admin_client.get(f"/alerts/channels/{channel.pk}/").content.decode()
    assert channel.config["secret"] not in again


def test_an_admin_edits_a_channel_and_the_secret_is_kept(admin_client, webhook_channel):
    response = admin_client.post(
        f"/alerts/channels/{webhook_channel.pk}/edit/",
        {"name": "Renamed", "url": webhook_channel.config["url"], "headers": "", "enabled": "on"},
    )

    assert response.status_code == 302
    webhook_channel.refresh_from_db()
    assert webhook_channel.name == "Renamed"
    assert webhook_channel.config["secret"] == WEBHOOK_SECRET
    assert webhook_channel.config["headers"] == {}


def test_an_email_channel_shows_the_apis_error_for_a_bad_address(admin_client, user):
    response = admin_client.post(
        "/alerts/channels/new/?project=acme-support&kind=email",
        {"name": "Ops mail", "to": "ops@example.com\nnope", "enabled": "on"},
    )

    assert response.status_code == 400
    api = api_errors(
        user,
        {
            "project": "acme-support",
            "name": "Ops mail",
            "kind": "email",
            "config": {"to": ["ops@example.com", "nope"]},
        },
        path="/api/channels/",
    )
    assert response.context["errors"]["to"] == api["config"]["to.1"]
    assert "ops@example.com\nnope" in response.content.decode()
    assert not Channel.objects.exists()


def test_a_webhook_to_a_private_address_is_refused_by_the_url_check(
    admin_client, project, settings
):
    settings.ALERTS_ALLOW_PRIVATE_URLS = False

    response = admin_client.post(
        "/alerts/channels/new/?project=acme-support&kind=webhook",
        {"name": "Metadata", "url": "http://169.254.169.254/latest", "enabled": "on"},
    )

    assert response.status_code == 400
    (message,) = response.context["errors"]["url"]
    assert "link-local" in message and "private networks" in message
    assert "http://169.254.169.254/latest" in response.content.decode()
    assert not Channel.objects.exists()


def test_send_test_alert_delivers_to_a_real_webhook_and_says_so(
    admin_client, webhook_channel, receiver
):
    response = admin_client.post(f"/alerts/channels/{webhook_channel.pk}/test/")

    assert response.status_code == 200
    assert len(receiver.requests) == 1
    assert receiver.requests[0].headers["x-team"] == "payments"
    assert "x-agentops-signature" in receiver.requests[0].headers
    page = response.content.decode()
    assert "Test alert delivered" in page


def test_send_test_alert_shows_the_receivers_error_and_keeps_the_channel(
    admin_client, webhook_channel, receiver
):
    receiver.default = (410, b"gone")

    response = admin_client.post(f"/alerts/channels/{webhook_channel.pk}/test/")

    page = response.content.decode()
    assert "Test alert failed" in page and "410" in page and "permanent" in page
    webhook_channel.refresh_from_db()
    assert webhook_channel.enabled  # a test never disables the channel


def test_a_member_sees_channels_without_their_addresses_and_cannot_change_them(
    viewer_client, webhook_channel, receiver
):
    listing = viewer_client.get("/alerts/channels/?project=acme-support")
    assert listing.status_code == 200
    assert "webhook channel" in listing.content.decode()
    assert receiver.url() not in listing.content.decode()
    detail = viewer_client.get(f"/alerts/channels/{webhook_channel.pk}/").content.decode()
    assert receiver.url() not in detail and "Send test alert" not in detail
    assert viewer_client.post(f"/alerts/channels/{webhook_channel.pk}/test/").status_code == 403
    assert not receiver.requests
    assert viewer_client.get(f"/alerts/channels/{webhook_channel.pk}/edit/").status_code == 403
    new = "/alerts/channels/new/?project=acme-support&kind=email"
    assert viewer_client.post(new, {"name": "x", "to": "a@example.com"}).status_code == 403


def test_another_projects_channel_is_404(outsider_client, webhook_channel, receiver):
    for path in ("", "edit/"):
        url = f"/alerts/channels/{webhook_channel.pk}/{path}"
        assert outsider_client.get(url).status_code == 404
    assert outsider_client.post(f"/alerts/channels/{webhook_channel.pk}/test/").status_code == 404
    assert not receiver.requests


def test_the_test_alert_takes_post_only(admin_client, webhook_channel, receiver):
    assert admin_client.get(f"/alerts/channels/{webhook_channel.pk}/test/").status_code == 405
    assert not receiver.requests


@pytest.mark.parametrize(
    "hostile",
    [
        {"channels": ["99999999999999999999999"]},
        {"channels": ["abc"]},
        {"name": "nul\x00name"},
        {"limit": "NaN"},
        {"limit": "1e999999"},
        {"rolling_minutes": "99999999999999999999", "period": "rolling"},
        {"timezone": "../../etc/passwd"},
        {"thresholds": "[" * 500},
        {"attribute": "not-one"},
    ],
)
def test_hostile_input_is_a_400_with_the_field_named(admin_client, hostile):
    response = admin_client.post("/budgets/new/?project=acme-support", {**ENVELOPE, **hostile})

    assert response.status_code == 400
    assert set(hostile) & set(response.context["errors"])
    assert not BudgetEnvelope.objects.exists()


def test_an_unknown_channel_kind_goes_back_to_the_list(admin_client):
    response = admin_client.get("/alerts/channels/new/?project=acme-support&kind=pager")
    assert response.status_code == 302
    assert response["Location"] == "/alerts/channels/?project=acme-support"
