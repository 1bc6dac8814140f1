"""Alerts worth reading: one notification per burst of thresholds, acknowledging many
at once, snoozing an envelope, muting a channel, and skipped deliveries on record."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from budgets import notify
from budgets.evaluate import budgets_evaluate_all
from budgets.models import Alert, BudgetEnvelope, Channel, Delivery
from tests.budgets.conftest import WEBHOOK_SECRET
from tests.budgets.test_evaluate import NOW, make_envelope, runs
from tests.factories import MembershipFactory, UserFactory
from traces.models import Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_celery():
    from agentops_site.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def viewer_client(project):
    viewer = UserFactory(username="vera")
    MembershipFactory(project=project, user=viewer, role=Membership.Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    return client


def evaluate(capture, now=NOW):
    with capture(execute=True) as callbacks:
        budgets_evaluate_all(now=now)
    return callbacks


def firing_alert(envelope, *, threshold=80, covered_by=None) -> Alert:
    return Alert.objects.create(
        envelope=envelope,
        project=envelope.project,
        kind=Alert.Kind.THRESHOLD,
        threshold=threshold,
        period_start=datetime(2025, 11, 14, tzinfo=UTC),
        period_end=datetime(2025, 11, 15, tzinfo=UTC),
        value=Decimal(900),
        limit=envelope.limit,
        message=f"{envelope.name} passed {threshold} %",
        created_at=timezone.now() - timedelta(minutes=threshold),
        covered_by=covered_by,
    )


# ------------------------------------------------------------------ one message per burst


def test_a_burst_sends_one_signed_webhook_naming_every_threshold(
    project, receiver, allow_private_urls, eager_celery, django_capture_on_commit_callbacks
):
    env = make_envelope(project)
    env.channels.add(
        Channel.objects.create(
            project=project,
            name="hook",
            kind="webhook",
            config={"url": receiver.url(), "secret": WEBHOOK_SECRET},
        )
    )
    runs(project, 4, at=NOW - timedelta(minutes=5))  # 124 % at once

    evaluate(django_capture_on_commit_callbacks)

    [request] = receiver.requests
    body = request.json()
    assert body["alert"]["threshold_percent"] == 100
    assert body["alert"]["thresholds_crossed"] == [50, 80, 100]
    assert body["alert"]["severity"] == "critical"
    assert "passed 50 %, 80 % and 100 % at once" in body["alert"]["message"]
    assert "Thresholds crossed: 50 %, 80 %, 100 %" in body["alert"]["text"]


def test_the_inbox_shows_one_row_per_notification_and_the_detail_names_the_rest(
    client_logged_in, project, django_capture_on_commit_callbacks
):
    env = make_envelope(project)
    runs(project, 4, at=NOW - timedelta(minutes=5))
    evaluate(django_capture_on_commit_callbacks)
    top = Alert.objects.get(threshold=100)
    low = Alert.objects.get(threshold=50)

    html = client_logged_in.get("/alerts/").content.decode()
    assert html.count(f'data-href="/alerts/{top.pk}/"') == 1
    assert f'data-href="/alerts/{low.pk}/"' not in html
    assert client_logged_in.get("/alerts/").context["counts"]["firing"] == 1

    detail = client_logged_in.get(f"/alerts/{top.pk}/").content.decode()
    assert "Crossed together with 50 %, 80 %" in detail
    lower = client_logged_in.get(f"/alerts/{low.pk}/").content.decode()
    assert "Crossed in the same evaluation as 100 %" in lower
    assert f'href="/alerts/{top.pk}/"' in lower

    api = client_logged_in.get("/api/alerts/").json()
    rows = api["results"] if isinstance(api, dict) else api
    assert [(r["threshold"], r["thresholds_crossed"]) for r in rows] == [(100, [50, 80, 100])]
    env.refresh_from_db()


# ------------------------------------------------------------------ snooze and mute


def test_a_snoozed_envelope_records_its_alerts_and_skips_their_deliveries(
    project, smtp_server, eager_celery, django_capture_on_commit_callbacks
):
    env = make_envelope(project, thresholds=[50, 100])
    env.channels.add(
        Channel.objects.create(
            project=project, name="ops", kind="email", config={"to": ["ops@example.test"]}
        )
    )
    BudgetEnvelope.objects.filter(pk=env.pk).update(snoozed_until=NOW + timedelta(hours=1))
    runs(project, 2, at=NOW - timedelta(minutes=5))  # 62 %

    callbacks = evaluate(django_capture_on_commit_callbacks)

    assert callbacks == []
    assert smtp_server.messages == []
    [delivery] = Delivery.objects.all()
    assert delivery.status == Delivery.Status.SKIPPED
    assert delivery.last_error.startswith("Not sent: the budget is snoozed until")
    assert Alert.objects.get().status == Alert.Status.FIRING

    # Once the snooze is over, the next threshold is sent again.
    BudgetEnvelope.objects.filter(pk=env.pk).update(snoozed_until=NOW - timedelta(minutes=1))
    runs(project, 2, at=NOW - timedelta(minutes=3))  # 124 %
    evaluate(django_capture_on_commit_callbacks, now=NOW + timedelta(minutes=1))
    assert len(smtp_server.messages) == 1
    assert Delivery.objects.get(alert__threshold=100).status == Delivery.Status.SENT


def test_a_muted_channel_receives_nothing_and_the_others_still_do(
    project, smtp_server, eager_celery, django_capture_on_commit_callbacks
):
    env = make_envelope(project, thresholds=[50])
    loud = Channel.objects.create(
        project=project, name="a", kind="email", config={"to": ["a@example.test"]}
    )
    muted = Channel.objects.create(
        project=project, name="b", kind="email", config={"to": ["b@example.test"]}, muted_at=NOW
    )
    env.channels.add(loud, muted)
    runs(project, 2, at=NOW - timedelta(minutes=5))

    evaluate(django_capture_on_commit_callbacks)

    [mail] = smtp_server.messages
    assert mail["To"] == "a@example.test"
    assert Delivery.objects.get(channel=loud).status == Delivery.Status.SENT
    skipped = Delivery.objects.get(channel=muted)
    assert skipped.status == Delivery.Status.SKIPPED
    assert "the channel was muted" in skipped.last_error


def test_a_channel_muted_before_a_pending_delivery_is_sent_skips_it(
    project, smtp_server, django_capture_on_commit_callbacks
):
    env = make_envelope(project, thresholds=[50])
    channel = Channel.objects.create(
        project=project, name="a", kind="email", config={"to": ["a@example.test"]}
    )
    env.channels.add(channel)
    runs(project, 2, at=NOW - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=False):
        budgets_evaluate_all(now=NOW)
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.PENDING

    Channel.objects.filter(pk=channel.pk).update(muted_at=timezone.now())
    assert notify.delivery_attempt(delivery_id=delivery.pk) == notify.Outcome.QUIET

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Delivery.Status.SKIPPED, 0)
    assert smtp_server.messages == []
    assert delivery.pk not in notify.deliveries_sweep()


def test_project_admins_snooze_and_unsnooze_from_the_budget_page(
    client_logged_in, viewer_client, outsider_client, project
):
    env = make_envelope(project)
    url = f"/budgets/{env.pk}/snooze/"

    assert viewer_client.post(url, {"for": "4h"}).status_code == 403
    assert outsider_client.post(url, {"for": "4h"}).status_code == 404
    assert client_logged_in.get(url).status_code == 405
    env.refresh_from_db()
    assert env.snoozed_until is None

    response = client_logged_in.post(url, {"for": "4h"})
    assert response.status_code == 302
    env.refresh_from_db()
    assert abs(env.snoozed_until - (timezone.now() + timedelta(hours=4))) < timedelta(minutes=1)
    html = client_logged_in.get(f"/budgets/{env.pk}/").content.decode()
    assert "Snoozed until" in html and "Unsnooze" in html

    assert client_logged_in.post(f"/budgets/{env.pk}/unsnooze/").status_code == 302
    env.refresh_from_db()
    assert env.snoozed_until is None
    html = client_logged_in.get(f"/budgets/{env.pk}/").content.decode()
    assert "Snoozed until" not in html and f'action="/budgets/{env.pk}/unsnooze/"' not in html


@pytest.mark.parametrize(
    "data",
    [
        {"for": "7y"},
        {"until": "not a date"},
        {"until": "2001-01-01T00:00"},
        {"until": "2999-01-01T00:00"},
        {"until": "x" * 5000},
        {},
    ],
)
def test_a_bad_snooze_is_refused_with_a_message(client_logged_in, project, data):
    env = make_envelope(project)
    response = client_logged_in.post(f"/budgets/{env.pk}/snooze/", data, follow=True)
    assert response.status_code == 200
    assert "Not snoozed:" in response.content.decode()
    env.refresh_from_db()
    assert env.snoozed_until is None


def test_snoozing_until_a_time_takes_it_in_the_users_zone(client_logged_in, project):
    env = make_envelope(project)
    until = (timezone.localtime() + timedelta(days=2)).replace(second=0, microsecond=0)
    client_logged_in.post(f"/budgets/{env.pk}/snooze/", {"until": until.strftime("%Y-%m-%dT%H:%M")})
    env.refresh_from_db()
    assert env.snoozed_until == until


def test_project_admins_mute_and_unmute_a_channel(
    client_logged_in, viewer_client, outsider_client, project
):
    env = make_envelope(project)
    channel = Channel.objects.create(
        project=project, name="ops mail", kind="email", config={"to": ["ops@example.test"]}
    )
    env.channels.add(channel)
    url = f"/alerts/channels/{channel.pk}/mute/"

    assert viewer_client.post(url).status_code == 403
    assert outsider_client.post(url).status_code == 404
    channel.refresh_from_db()
    assert channel.muted_at is None
    assert "Mute" not in viewer_client.get(f"/budgets/{env.pk}/").content.decode()

    response = client_logged_in.post(url, {"next": f"/budgets/{env.pk}/"})
    assert response["Location"] == f"/budgets/{env.pk}/"
    channel.refresh_from_db()
    assert channel.muted_at is not None
    html = client_logged_in.get(f"/budgets/{env.pk}/").content.decode()
    assert 'ops mail <span class="faint">(muted)</span>' in html and "Unmute" in html

    client_logged_in.post(f"/alerts/channels/{channel.pk}/unmute/")
    channel.refresh_from_db()
    assert channel.muted_at is None


# ------------------------------------------------------------------ acknowledging many


def test_several_alerts_are_acknowledged_at_once_within_the_users_projects(
    client_logged_in, user, project, other_project
):
    env = make_envelope(project)
    top = firing_alert(env, threshold=100)
    covered = firing_alert(env, threshold=50, covered_by=top)
    other = firing_alert(env, threshold=80)
    left = firing_alert(make_envelope(project, name="Left alone"), threshold=80)
    foreign = firing_alert(make_envelope(other_project, name="Theirs"), threshold=80)

    response = client_logged_in.post(
        "/alerts/acknowledge/",
        {"alert": [top.pk, other.pk, foreign.pk], "next": "/alerts/?status=firing"},
    )

    assert response.status_code == 302 and response["Location"] == "/alerts/?status=firing"
    status = dict(Alert.objects.values_list("pk", "status"))
    assert status[top.pk] == status[other.pk] == status[covered.pk] == "acknowledged"
    assert status[left.pk] == status[foreign.pk] == "firing"
    assert Alert.objects.get(pk=top.pk).acknowledged_by == user


def test_the_bulk_form_needs_its_csrf_token_and_refuses_junk(project, user):
    env = make_envelope(project)
    alert = firing_alert(env)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    html = client.get("/alerts/").content.decode()
    assert 'id="bulk-ack"' in html and f'value="{alert.pk}" form="bulk-ack"' in html
    assert client.post("/alerts/acknowledge/", {"alert": [alert.pk]}).status_code == 403

    plain = Client()
    plain.force_login(user)
    assert plain.get("/alerts/acknowledge/").status_code == 405
    for junk in (["1; drop"], ["-1"], ["9" * 40], ["١"]):
        assert plain.post("/alerts/acknowledge/", {"alert": junk}).status_code == 400
    assert plain.post("/alerts/acknowledge/", {}).status_code == 302
    alert.refresh_from_db()
    assert alert.status == "firing"


def test_the_api_acknowledges_several_and_says_which(client_logged_in, project, other_project):
    env = make_envelope(project)
    a, b = firing_alert(env, threshold=50), firing_alert(env, threshold=80)
    foreign = firing_alert(make_envelope(other_project, name="Theirs"))
    Alert.objects.filter(pk=b.pk).update(status="resolved")

    response = client_logged_in.post(
        "/api/alerts/acknowledge/",
        json.dumps({"ids": [a.pk, b.pk, foreign.pk]}),
        content_type="application/json",
    )

    assert response.status_code == 200
    assert response.json() == {"acknowledged": [a.pk], "unchanged": sorted([b.pk, foreign.pk])}
    assert Alert.objects.get(pk=foreign.pk).status == "firing"
    bad = client_logged_in.post(
        "/api/alerts/acknowledge/", json.dumps({"ids": ["x"]}), content_type="application/json"
    )
    assert bad.status_code == 400 and "ids" in bad.json()


def test_the_api_snoozes_and_mutes_for_project_admins_only(
    client_logged_in, viewer_client, project
):
    env = make_envelope(project)
    channel = Channel.objects.create(project=project, name="c", kind="email", config={"to": []})
    snooze = f"/api/budgets/{env.pk}/snooze/"
    body = json.dumps({"minutes": 60})

    assert viewer_client.post(snooze, body, content_type="application/json").status_code == 403
    response = client_logged_in.post(snooze, body, content_type="application/json")
    assert response.status_code == 200 and response.json()["snoozed_until"]
    both = json.dumps({"minutes": 5, "until": "2030-01-01T00:00:00Z"})
    assert client_logged_in.post(snooze, both, content_type="application/json").status_code == 400
    assert client_logged_in.delete(snooze).json()["snoozed_until"] is None

    mute = f"/api/channels/{channel.pk}/mute/"
    assert viewer_client.post(mute).status_code == 403
    assert client_logged_in.post(mute).json()["muted_at"]
    assert Channel.objects.get().muted_at is not None
    client_logged_in.delete(mute)
    assert Channel.objects.get().muted_at is None


def test_a_muted_channel_gets_no_review_sla_alert_either(
    project, receiver, allow_private_urls, smtp_server
):
    from console.review_alerts import review_sla_alerts_send
    from tests.controls.test_review import late_item

    Channel.objects.create(
        project=project,
        name="hook",
        kind="webhook",
        config={"url": receiver.url(), "secret": WEBHOOK_SECRET},
    )
    Channel.objects.create(
        project=project,
        name="mail",
        kind="email",
        config={"to": ["oncall@example.com"]},
        muted_at=timezone.now(),
    )
    late_item(project)

    assert review_sla_alerts_send() == {"due": 1, "alerted": 1}
    assert len(receiver.requests) == 1
    assert smtp_server.messages == []
