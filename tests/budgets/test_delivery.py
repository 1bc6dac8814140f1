"""Delivery services and tasks: claims, retries, logging, disabling, the sweeper."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from budgets import notify, tasks
from budgets.models import Channel, Delivery, DeliveryAttempt
from budgets.transports import TransportError
from tests.budgets.conftest import WEBHOOK_SECRET
from tests.concurrency import run_concurrently
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def countdowns(monkeypatch):
    """Stub the backoff: record what each retry would wait, wait nothing."""
    calls: list[int] = []

    def countdown(retries):
        calls.append(retries)
        return 0

    monkeypatch.setattr(tasks, "retry_countdown", countdown)
    return calls


def run_deliver(delivery_id):
    """Run the task in this process as a worker would, retries included (eager)."""
    return tasks.deliver.apply(args=[delivery_id]).result


def attempts_of(delivery):
    return list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("started_at", "pk"))


# ------------------------------------------------------------------ creating deliveries


def test_it_creates_one_delivery_per_enabled_channel(make_channel, alert, receiver):
    webhook = make_channel("webhook", {"url": receiver.url(), "secret": WEBHOOK_SECRET})
    email = make_channel("email", {"to": ["oncall@example.com"]})
    disabled = make_channel("email", {"to": ["old@example.com"]}, name="old")
    Channel.objects.filter(pk=disabled.pk).update(enabled=False)
    make_channel("email", {"to": ["x@example.com"]}, name="not linked", link=False)

    deliveries = notify.deliveries_create(alert=alert)

    assert {d.channel_id for d in deliveries} == {webhook.pk, email.pk}
    assert all(d.status == Delivery.Status.PENDING for d in deliveries)
    # Idempotent: a second call finds the same rows.
    assert {d.pk for d in notify.deliveries_create(alert=alert)} == {d.pk for d in deliveries}
    assert Delivery.objects.count() == 2


def test_it_ignores_channels_of_another_project(envelope, alert):
    foreign = Channel.objects.create(
        project=ProjectFactory(), name="theirs", kind="email", config={"to": ["x@example.com"]}
    )
    envelope.channels.add(foreign)

    assert notify.deliveries_create(alert=alert) == []


# ------------------------------------------------------------------ sending


def test_it_sends_marks_sent_and_logs_the_attempt(receiver, webhook_channel, alert):
    (delivery,) = notify.deliveries_create(alert=alert)

    assert run_deliver(delivery.pk) == "sent"

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert delivery.sent_at is not None
    assert delivery.attempts == 1
    (attempt,) = attempts_of(delivery)
    assert attempt.ok and attempt.error == "" and attempt.duration_ms >= 0
    assert len(receiver.requests) == 1


def test_email_delivery_end_to_end(smtp_server, make_channel, alert):
    make_channel("email", {"to": ["oncall@example.com"]})
    (delivery,) = notify.deliveries_create(alert=alert)

    assert run_deliver(delivery.pk) == "sent"

    assert len(smtp_server.messages) == 1
    assert "80% of the monthly limit" in smtp_server.messages[0]["Subject"]


def test_a_channel_that_fails_twice_then_succeeds(receiver, webhook_channel, alert, countdowns):
    receiver.fail(2, status=503)
    (delivery,) = notify.deliveries_create(alert=alert)

    assert run_deliver(delivery.pk) == "sent"

    attempts = attempts_of(delivery)
    assert [(a.ok, a.status_code, a.permanent) for a in attempts] == [
        (False, 503, False),
        (False, 503, False),
        (True, None, False),
    ]
    assert "HTTP 503" in attempts[0].error
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 3, "")
    assert countdowns == [0, 1]  # backoff asked for the 1st and 2nd retry
    assert len(receiver.requests) == 3
    # The body was signed anew on each attempt, and is the same alert.
    assert len({r.json()["alert"]["id"] for r in receiver.requests}) == 1


def test_a_permanent_error_disables_the_channel(
    receiver, webhook_channel, make_alert, alert, countdowns
):
    receiver.always(410, b"gone")
    (delivery,) = notify.deliveries_create(alert=alert)

    assert run_deliver(delivery.pk) == "failed"

    (attempt,) = attempts_of(delivery)
    assert (attempt.ok, attempt.permanent, attempt.status_code) == (False, True, 410)
    assert countdowns == []  # never retried
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert "the channel was disabled" in delivery.last_error
    webhook_channel.refresh_from_db()
    assert not webhook_channel.enabled
    assert "HTTP 410" in webhook_channel.disabled_reason
    assert webhook_channel.disabled_at is not None

    # No more attempts: not for this delivery, not for the next alert.
    assert run_deliver(delivery.pk) == "channel_disabled"
    assert notify.deliveries_create(alert=make_alert(threshold=100, value="101")) == []
    assert len(receiver.requests) == 1
    assert DeliveryAttempt.objects.count() == 1


def test_it_gives_up_after_the_last_attempt(receiver, webhook_channel, alert, countdowns):
    receiver.always(503, b"down")
    (delivery,) = notify.deliveries_create(alert=alert)

    assert run_deliver(delivery.pk) == "failed"

    assert len(attempts_of(delivery)) == notify.MAX_ATTEMPTS
    assert len(receiver.requests) == notify.MAX_ATTEMPTS
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert f"gave up after {notify.MAX_ATTEMPTS} attempts" in delivery.last_error
    webhook_channel.refresh_from_db()
    assert webhook_channel.enabled  # temporary errors never disable a channel
    # And nothing claims it again.
    assert run_deliver(delivery.pk) == "skipped"
    assert notify.deliveries_sweep() == []


def test_a_missing_delivery_is_not_retried(countdowns):
    assert run_deliver(987654) == "missing"
    assert countdowns == []


def test_a_transport_bug_is_logged_and_released(monkeypatch, webhook_channel, alert):
    def broken(channel, message):
        raise KeyError("oops")

    monkeypatch.setattr(
        "budgets.notify.transport_get", lambda kind: type("T", (), {"notify": staticmethod(broken)})
    )
    (delivery,) = notify.deliveries_create(alert=alert)

    with pytest.raises(KeyError):
        notify.delivery_attempt(delivery_id=delivery.pk)

    (attempt,) = attempts_of(delivery)
    assert "Internal error: KeyError('oops')" in attempt.error
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED  # retryable, not stuck in "sending"


# ------------------------------------------------------------------ never twice


def test_a_duplicated_task_does_not_send_twice(receiver, webhook_channel, alert):
    (delivery,) = notify.deliveries_create(alert=alert)

    assert run_deliver(delivery.pk) == "sent"
    assert run_deliver(delivery.pk) == "skipped"

    assert len(receiver.requests) == 1
    assert len(attempts_of(delivery)) == 1


def test_a_delivery_being_sent_is_not_claimed_again(receiver, webhook_channel, alert):
    (delivery,) = notify.deliveries_create(alert=alert)
    # Another worker claimed it a moment ago (or sent it and died before recording).
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.SENDING, claimed_at=timezone.now(), attempts=1
    )

    assert run_deliver(delivery.pk) == "skipped"
    assert notify.deliveries_sweep() == []
    assert receiver.requests == []


def test_a_lost_claim_is_swept_and_sent_again(receiver, webhook_channel, alert):
    (delivery,) = notify.deliveries_create(alert=alert)
    # The worker died after its claim: after CLAIM_TIMEOUT the sweeper takes over.
    # Had it died after the receiver got the message, this sends a second time
    # (at-least-once); receivers deduplicate on the alert id.
    stale = timezone.now() - notify.CLAIM_TIMEOUT - timedelta(seconds=1)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.SENDING, claimed_at=stale, attempts=1
    )

    assert notify.deliveries_sweep() == [delivery.pk]
    assert run_deliver(delivery.pk) == "sent"

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert len(receiver.requests) == 1


def test_a_claim_lost_on_the_last_attempt_is_given_up(webhook_channel, alert):
    (delivery,) = notify.deliveries_create(alert=alert)
    stale = timezone.now() - notify.CLAIM_TIMEOUT - timedelta(seconds=1)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.SENDING, claimed_at=stale, attempts=notify.MAX_ATTEMPTS
    )

    assert notify.deliveries_sweep() == []

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert "worker was lost" in delivery.last_error


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_claims_send_exactly_once(receiver, webhook_channel, alert):
    receiver.delay = 0.3  # the first sender still holds its claim when the second tries
    (delivery,) = notify.deliveries_create(alert=alert)
    outcomes, errors = run_concurrently(lambda: notify.delivery_attempt(delivery_id=delivery.pk))

    assert errors == []
    assert sorted(outcomes) == ["sent", "skipped"]
    assert len(receiver.requests) == 1
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 1
    assert Delivery.objects.get(pk=delivery.pk).attempts == 1


# ------------------------------------------------------------------ the sweeper


def test_the_sweeper_re_enqueues_stuck_deliveries(
    monkeypatch, webhook_channel, make_alert, django_capture_on_commit_callbacks
):
    now = timezone.now()
    old_pending, fresh_pending, lost_retry, ancient = (
        notify.deliveries_create(alert=make_alert(threshold=t))[0] for t in (50, 60, 70, 80)
    )
    Delivery.objects.filter(pk=old_pending.pk).update(created_at=now - timedelta(minutes=6))
    Delivery.objects.filter(pk=lost_retry.pk).update(
        status=Delivery.Status.FAILED,
        attempts=2,
        claimed_at=now - notify.RETRY_TIMEOUT - timedelta(minutes=1),
        created_at=now - timedelta(hours=1),
    )
    Delivery.objects.filter(pk=ancient.pk).update(created_at=now - timedelta(days=2))
    enqueued: list[int] = []
    monkeypatch.setattr(tasks.deliver, "delay", enqueued.append)

    with django_capture_on_commit_callbacks(execute=True):
        count = tasks.deliver_pending.apply().result

    assert count == 2
    assert sorted(enqueued) == sorted([old_pending.pk, lost_retry.pk])
    assert fresh_pending.pk not in enqueued


def test_failed_deliveries_go_out_when_the_channel_is_enabled_again(
    receiver, webhook_channel, alert
):
    (delivery,) = notify.deliveries_create(alert=alert)
    notify.channel_disable(channel=webhook_channel, reason="HTTP 404 Not Found")
    assert run_deliver(delivery.pk) == "channel_disabled"
    assert notify.deliveries_sweep() == []

    notify.channel_enable(channel=webhook_channel)

    webhook_channel.refresh_from_db()
    assert (webhook_channel.enabled, webhook_channel.disabled_reason) == (True, "")
    assert notify.deliveries_sweep() == [delivery.pk]
    assert run_deliver(delivery.pk) == "sent"


def test_retry_countdown_grows_exponentially_with_jitter():
    for retries, base in [(0, 30), (1, 60), (2, 120), (3, 240), (4, 480), (5, 600), (9, 600)]:
        delays = [tasks.retry_countdown(retries) for _ in range(50)]
        assert all(base / 2 <= d <= base for d in delays)
        assert len(set(delays)) > 1
    assert notify.RETRY_TIMEOUT.total_seconds() > tasks.RETRY_MAX_SECONDS


# ------------------------------------------------------------------ test alerts


def test_a_test_alert_reaches_the_channel(receiver, webhook_channel):
    notify.channel_send_test(channel=webhook_channel)

    (request,) = receiver.requests
    assert request.json()["event"] == "test"
    assert DeliveryAttempt.objects.count() == 0


def test_a_failed_test_alert_raises_and_leaves_the_channel_alone(receiver, webhook_channel):
    receiver.always(404, b"no such hook")

    with pytest.raises(TransportError) as caught:
        notify.channel_send_test(channel=webhook_channel)

    assert caught.value.permanent
    webhook_channel.refresh_from_db()
    assert webhook_channel.enabled
