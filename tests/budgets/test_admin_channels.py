"""Channel and delivery admin: validated config, test alerts, read-only deliveries."""

from __future__ import annotations

import json

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from budgets import notify
from budgets.models import Channel, Delivery
from tests.budgets.conftest import WEBHOOK_SECRET
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(db):
    user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_form_shows_config_errors_by_field(admin_client_, project):
    response = admin_client_.post(
        reverse("admin:budgets_channel_add"),
        {
            "project": project.pk,
            "name": "Ops mail",
            "kind": "email",
            "config": '{"to": ["ops@example.com", "nope"]}',
            "enabled": "on",
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["config"] == ["to.1: “nope” is not a valid email address."]
    assert not Channel.objects.exists()


def test_the_form_generates_a_webhook_secret_and_says_so(
    admin_client_, project, allow_private_urls
):
    response = admin_client_.post(
        reverse("admin:budgets_channel_add"),
        {
            "project": project.pk,
            "name": "Hook",
            "kind": "webhook",
            "config": '{"url": "http://127.0.0.1:9/hook"}',
            "enabled": "on",
        },
        follow=True,
    )

    channel = Channel.objects.get()
    secret = channel.config["secret"]
    assert len(secret) >= 32
    assert any(secret in m and "generated" in m for m in messages_of(response))


def test_the_form_refuses_private_urls(admin_client_, project, settings):
    settings.ALERTS_ALLOW_PRIVATE_URLS = False
    response = admin_client_.post(
        reverse("admin:budgets_channel_add"),
        {
            "project": project.pk,
            "name": "Hook",
            "kind": "webhook",
            "config": json.dumps({"url": "http://169.254.169.254/", "secret": WEBHOOK_SECRET}),
            "enabled": "on",
        },
    )

    (error,) = response.context["adminform"].form.errors["config"]
    assert error.startswith("url: 169.254.169.254 is a link-local address")


def test_send_test_alert_action_reports_success_and_errors(
    admin_client_, make_channel, receiver, allow_private_urls
):
    ok = make_channel("webhook", {"url": receiver.url("/ok"), "secret": WEBHOOK_SECRET}, "ok")
    bad = make_channel("slack", {"webhook_url": receiver.url("/gone")}, name="gone", link=False)
    receiver.by_path["/gone"] = (404, b"no_service")

    response = admin_client_.post(
        reverse("admin:budgets_channel_changelist"),
        {"action": "send_test_alert", "_selected_action": [ok.pk, bad.pk]},
        follow=True,
    )

    texts = messages_of(response)
    assert any(m.startswith("gone (Slack): test failed — Slack refused") for m in texts)
    assert any(m.startswith("ok (Webhook): test alert sent") for m in texts)
    assert [r.path for r in receiver.requests] == ["/gone", "/ok"]
    bad.refresh_from_db()
    assert bad.enabled  # a test never disables a channel


def test_the_channel_page_shows_why_it_was_disabled_and_its_attempts(
    admin_client_, receiver, webhook_channel, alert
):
    receiver.always(410, b"gone")
    (delivery,) = notify.deliveries_create(alert=alert)
    notify.delivery_attempt(delivery_id=delivery.pk)

    response = admin_client_.get(reverse("admin:budgets_channel_change", args=[webhook_channel.pk]))

    content = response.content.decode()
    assert response.status_code == 200
    assert "HTTP 410 Gone: gone" in content
    assert "failed, permanent" in content
    changelist = admin_client_.get(reverse("admin:budgets_channel_changelist"))
    assert "HTTP 410" in changelist.content.decode()


def test_enabling_again_clears_the_reason(admin_client_, webhook_channel):
    notify.channel_disable(channel=webhook_channel, reason="HTTP 404")

    admin_client_.post(
        reverse("admin:budgets_channel_changelist"),
        {"action": "enable_channels", "_selected_action": [webhook_channel.pk]},
    )

    webhook_channel.refresh_from_db()
    assert webhook_channel.enabled
    assert webhook_channel.disabled_reason == ""
    assert webhook_channel.disabled_at is None


def test_deliveries_are_read_only_with_their_attempts(
    admin_client_, receiver, webhook_channel, alert
):
    receiver.fail(1, status=503)
    (delivery,) = notify.deliveries_create(alert=alert)
    notify.delivery_attempt(delivery_id=delivery.pk)
    notify.delivery_attempt(delivery_id=delivery.pk)
    url = reverse("admin:budgets_delivery_change", args=[delivery.pk])

    response = admin_client_.get(url)

    content = response.content.decode()
    assert response.status_code == 200
    assert "HTTP 503" in content
    assert 'name="_save"' not in content
    assert admin_client_.post(url, {"status": "pending"}).status_code == 403
    assert Delivery.objects.get().status == Delivery.Status.SENT
    assert admin_client_.get(reverse("admin:budgets_delivery_add")).status_code == 403
