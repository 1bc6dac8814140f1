"""Alert delivery services: one Delivery per channel of an alert, claimed with a
compare-and-set, sent through the channel's transport, every attempt logged.

Guarantees:
- An alert is delivered at most once per channel by concurrent or duplicated tasks:
  `Delivery` is unique on (alert, channel), and only the task whose compare-and-set
  moves it to `sending` sends.
- A worker that dies after its claim leaves the delivery `sending`; after
  `CLAIM_TIMEOUT` the sweeper may claim it again. If the worker died *after* the
  receiver got the message, that one case sends twice (at-least-once): receivers
  deduplicate on the alert id.
- A permanent error disables the channel, with the reason, and no further attempt
  is made on it until someone enables it again.
- Nothing is sent for an envelope snoozed at the time, nor to a muted channel: the
  delivery is still recorded, as `skipped` with the reason, whether the alert came
  while snoozed or muted or the snooze or mute came before its (re)try. A skipped
  delivery is final: unsnoozing or unmuting sends nothing late.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from enum import StrEnum

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from budgets.models import Alert, BudgetEnvelope, Channel, Delivery, DeliveryAttempt
from budgets.transports import AlertMessage, TransportError, transport_get

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
# Longer than any send can take (HTTP and SMTP time out after seconds): a claim this
# old belongs to a worker that died.
CLAIM_TIMEOUT = timedelta(minutes=5)
# A pending delivery nobody claimed within this time lost its task (broker restart,
# crash between commit and enqueue).
PENDING_TIMEOUT = timedelta(minutes=5)
# Longer than the longest retry countdown of `budgets.tasks.deliver`: a retryable
# failure older than this lost its retry message.
RETRY_TIMEOUT = timedelta(minutes=30)
# The sweeper leaves older deliveries alone: an alert a day late is noise.
SWEEP_MAX_AGE = timedelta(days=1)
SWEEP_BATCH = 500


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # temporary failure: the caller tries again later
    FAILED = "failed"  # permanent failure (channel disabled) or attempts exhausted
    SKIPPED = "skipped"  # not claimable: already sent, being sent, or given up
    CHANNEL_DISABLED = "channel_disabled"
    QUIET = "quiet"  # not sent: the envelope is snoozed or the channel muted


def _quiet_reason(*, channel: Channel, snoozed_until, now) -> str:
    """Why nothing may be sent to `channel` now, or ""."""
    if snoozed_until is not None and snoozed_until > now:
        return f"Not sent: the budget is snoozed until {snoozed_until:%Y-%m-%d %H:%M} UTC."
    if channel.muted_at is not None:
        return f"Not sent: the channel was muted on {channel.muted_at:%Y-%m-%d %H:%M} UTC."
    return ""


def deliveries_create(*, alert: Alert, now=None) -> list[Delivery]:
    """One Delivery per enabled channel of the alert's envelope (idempotent).

    Only channels of the alert's own project count, whatever the envelope links to.
    While the envelope is snoozed, or for a muted channel, the delivery is created
    `skipped` with the reason. The caller enqueues `budgets.tasks.deliver` for each
    pending one with `transaction.on_commit`; a delivery whose task is lost is found by
    the sweeper.
    """
    now = now or timezone.now()
    snoozed_until = (
        BudgetEnvelope.objects.filter(pk=alert.envelope_id)
        .values_list("snoozed_until", flat=True)
        .first()
    )
    channels = Channel.objects.filter(
        envelopes=alert.envelope_id, project_id=alert.project_id, enabled=True
    ).order_by("pk")
    deliveries = []
    for channel in channels:
        reason = _quiet_reason(channel=channel, snoozed_until=snoozed_until, now=now)
        defaults = {"status": Delivery.Status.SKIPPED, "last_error": reason} if reason else {}
        deliveries.append(
            Delivery.objects.get_or_create(alert=alert, channel=channel, defaults=defaults)[0]
        )
    return deliveries


def _claimable(now) -> Q:
    return (
        Q(status=Delivery.Status.PENDING)
        | Q(status=Delivery.Status.FAILED, attempts__lt=MAX_ATTEMPTS)
        | Q(
            status=Delivery.Status.SENDING,
            claimed_at__lt=now - CLAIM_TIMEOUT,
            attempts__lt=MAX_ATTEMPTS,
        )
    )


def delivery_attempt(*, delivery_id: int) -> Outcome:
    """Claim the delivery, send it once, log the attempt, and record the result.

    Returns SENT, RETRY (temporary error, attempts left), FAILED (permanent error —
    the channel is now disabled — or the last attempt failed), SKIPPED (another
    task holds or finished it), CHANNEL_DISABLED, or QUIET (the envelope is snoozed
    or the channel muted: marked skipped). Raises Delivery.DoesNotExist.
    """
    delivery = Delivery.objects.select_related("channel", "alert__envelope").get(pk=delivery_id)
    reason = _quiet_reason(
        channel=delivery.channel,
        snoozed_until=delivery.alert.envelope.snoozed_until,
        now=timezone.now(),
    )
    if reason:
        Delivery.objects.filter(
            pk=delivery_id, status__in=[Delivery.Status.PENDING, Delivery.Status.FAILED]
        ).update(status=Delivery.Status.SKIPPED, last_error=reason)
        return Outcome.QUIET
    if not delivery.channel.enabled:
        Delivery.objects.filter(
            pk=delivery_id, status__in=[Delivery.Status.PENDING, Delivery.Status.FAILED]
        ).update(
            status=Delivery.Status.FAILED,
            last_error=f"Not sent: the channel is disabled ({delivery.channel.disabled_reason})",
        )
        return Outcome.CHANNEL_DISABLED

    claimed_at = timezone.now()
    # The compare-and-set: only on the delivery's own columns, so that on PostgreSQL
    # a concurrent claim re-checks them after waiting for the row lock.
    claimed = Delivery.objects.filter(_claimable(claimed_at), pk=delivery_id).update(
        status=Delivery.Status.SENDING, claimed_at=claimed_at, attempts=F("attempts") + 1
    )
    if claimed != 1:
        return Outcome.SKIPPED

    delivery = Delivery.objects.select_related(
        "channel__project", "alert__envelope", "alert__project"
    ).get(pk=delivery_id)
    channel = delivery.channel
    started_at = timezone.now()
    t0 = time.monotonic()
    error: TransportError | None = None
    try:
        transport_get(channel.kind).notify(channel, AlertMessage.from_alert(delivery.alert))
    except TransportError as exc:
        error = exc
    except Exception as exc:
        # A bug in a transport: still logged as an attempt and released for a later
        # retry instead of sitting in "sending"; then raised for the worker's log.
        _record(
            delivery,
            claimed_at=claimed_at,
            started_at=started_at,
            duration_ms=(time.monotonic() - t0) * 1000,
            error=TransportError(f"Internal error: {exc!r}"),
        )
        raise
    return _record(
        delivery,
        claimed_at=claimed_at,
        started_at=started_at,
        duration_ms=(time.monotonic() - t0) * 1000,
        error=error,
    )


def _record(
    delivery: Delivery,
    *,
    claimed_at,
    started_at,
    duration_ms: float,
    error: TransportError | None,
) -> Outcome:
    now = timezone.now()
    # Updates are guarded by our claim: a delivery re-claimed by the sweeper in the
    # meantime is the other task's to record.
    mine = Delivery.objects.filter(
        pk=delivery.pk, status=Delivery.Status.SENDING, claimed_at=claimed_at
    )
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            started_at=started_at,
            duration_ms=round(duration_ms, 3),
            ok=error is None,
            permanent=bool(error and error.permanent),
            status_code=error.status_code if error else None,
            error=error.message if error else "",
        )
        if error is None:
            mine.update(status=Delivery.Status.SENT, sent_at=now, last_error="")
            logger.info("alert %s delivered to channel %s", delivery.alert_id, delivery.channel_id)
            return Outcome.SENT

        if error.permanent:
            channel_disable(channel=delivery.channel, reason=error.message, now=now)
            last_error = f"{error.message} — permanent error: the channel was disabled."
            outcome = Outcome.FAILED
        elif delivery.attempts >= MAX_ATTEMPTS:
            last_error = f"{error.message} — gave up after {delivery.attempts} attempts."
            outcome = Outcome.FAILED
        else:
            last_error = error.message
            outcome = Outcome.RETRY
        mine.update(status=Delivery.Status.FAILED, last_error=last_error)
    logger.warning(
        "alert %s to channel %s: attempt %s failed (%s): %s",
        delivery.alert_id,
        delivery.channel_id,
        delivery.attempts,
        outcome,
        error.message,
    )
    return outcome


def channel_disable(*, channel: Channel, reason: str, now=None) -> bool:
    """Disable a channel after a permanent error; False when it already was."""
    now = now or timezone.now()
    reason = f"{now:%Y-%m-%d %H:%M} UTC: {reason}"
    disabled = Channel.objects.filter(pk=channel.pk, enabled=True).update(
        enabled=False, disabled_reason=reason, disabled_at=now
    )
    if disabled:
        channel.enabled, channel.disabled_reason, channel.disabled_at = False, reason, now
        logger.warning("channel %s (%s) disabled: %s", channel.pk, channel.name, reason)
    return bool(disabled)


def channel_enable(*, channel: Channel) -> None:
    """Enable a channel again and forget why it was disabled.

    Deliveries that failed on it less than `SWEEP_MAX_AGE` ago with attempts left are
    sent by the next sweep.
    """
    Channel.objects.filter(pk=channel.pk).update(enabled=True, disabled_reason="", disabled_at=None)
    channel.enabled, channel.disabled_reason, channel.disabled_at = True, "", None


def channel_send_test(*, channel: Channel) -> float:
    """Send a test message to `channel`, enabled or not; return the duration in ms.

    Raises TransportError. A failed test never disables the channel: the person who
    asked for it sees the error.
    """
    t0 = time.monotonic()
    try:
        transport_get(channel.kind).notify(channel, AlertMessage.sample(channel))
    except TransportError as exc:
        logger.info("test alert to channel %s failed: %s", channel.pk, exc.message)
        raise
    duration_ms = (time.monotonic() - t0) * 1000
    logger.info("test alert sent to channel %s in %.0f ms", channel.pk, duration_ms)
    return duration_ms


def deliveries_sweep() -> list[int]:
    """Ids of deliveries whose task was lost, to enqueue again.

    Pending ones nobody claimed, `sending` claims older than CLAIM_TIMEOUT (the worker
    died) and retryable failures whose retry never came; only on enabled channels and
    for deliveries younger than SWEEP_MAX_AGE. A claim lost during the last allowed
    attempt is marked failed here, since nothing may claim it again.
    """
    now = timezone.now()
    Delivery.objects.filter(
        status=Delivery.Status.SENDING,
        claimed_at__lt=now - CLAIM_TIMEOUT,
        attempts__gte=MAX_ATTEMPTS,
    ).update(
        status=Delivery.Status.FAILED,
        last_error="Gave up: the worker was lost during the last attempt.",
    )
    stuck = (
        Q(status=Delivery.Status.PENDING, created_at__lt=now - PENDING_TIMEOUT)
        | Q(status=Delivery.Status.SENDING, claimed_at__lt=now - CLAIM_TIMEOUT)
        | (
            Q(status=Delivery.Status.FAILED, attempts__lt=MAX_ATTEMPTS)
            # Never claimed: failed because its channel was disabled, now enabled again.
            & (Q(claimed_at__lt=now - RETRY_TIMEOUT) | Q(claimed_at=None))
        )
    )
    return list(
        Delivery.objects.filter(stuck, channel__enabled=True, created_at__gte=now - SWEEP_MAX_AGE)
        .order_by("created_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
