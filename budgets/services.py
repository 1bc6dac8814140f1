"""Writes people make from the pages and the API (evaluation writes live in budgets.evaluate)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from budgets.models import Alert, BudgetEnvelope, Channel


@dataclass(frozen=True)
class AckResult:
    alert: Alert
    changed: bool  # False when it was already acknowledged or resolved


def alert_acknowledge(*, alert_id: int, user) -> AckResult:
    """Mark a firing alert acknowledged by `user`, now.

    A compare-and-set on status=firing: acknowledging twice, or two people at once,
    records the first one only, and a resolved alert stays resolved. The caller has
    already checked that the user may see the alert.
    """
    changed = bool(alerts_acknowledge(alert_ids=[alert_id], user=user))
    alert = Alert.objects.select_related("project", "envelope", "acknowledged_by").get(pk=alert_id)
    return AckResult(alert=alert, changed=changed)


def alerts_acknowledge(*, alert_ids: Iterable[int], user, now: datetime | None = None) -> list[int]:
    """Acknowledge the firing ones of `alert_ids` (and the lower thresholds they cover)
    by `user`; return the ids that changed, among those asked for.

    The same compare-and-set as one acknowledgement, in one UPDATE. The caller has
    already narrowed the ids to alerts the user may see.
    """
    ids = list(dict.fromkeys(alert_ids))
    if not ids:
        return []
    now = now or timezone.now()
    with transaction.atomic():
        firing = Alert.objects.filter(status=Alert.Status.FIRING)
        changed = list(firing.filter(pk__in=ids).values_list("pk", flat=True))
        firing.filter(Q(pk__in=changed) | Q(covered_by__in=changed)).update(
            status=Alert.Status.ACKNOWLEDGED, acknowledged_by=user, acknowledged_at=now
        )
    return changed


# ------------------------------------------------------------------ snooze and mute

SNOOZE_MAX = timedelta(days=90)


def envelope_snooze(*, envelope: BudgetEnvelope, until: datetime, user) -> None:
    """Send nothing for `envelope` before `until` (its alerts are still raised and shown,
    their deliveries recorded as skipped). Raises ValueError for a time in the past or
    further than SNOOZE_MAX ahead. The caller has checked the user may."""
    now = timezone.now()
    if until <= now:
        raise ValueError("Choose a time in the future.")
    if until - now > SNOOZE_MAX:
        raise ValueError(f"A budget is snoozed for at most {SNOOZE_MAX.days} days.")
    BudgetEnvelope.objects.filter(pk=envelope.pk).update(snoozed_until=until, snoozed_by=user)
    envelope.snoozed_until, envelope.snoozed_by = until, user


def envelope_unsnooze(*, envelope: BudgetEnvelope) -> bool:
    """End the snooze now; False when the envelope was not snoozed."""
    active = envelope.snoozed_at(timezone.now())
    BudgetEnvelope.objects.filter(pk=envelope.pk, snoozed_until__isnull=False).update(
        snoozed_until=None, snoozed_by=None
    )
    envelope.snoozed_until, envelope.snoozed_by = None, None
    return active


def channel_mute(*, channel: Channel, user) -> bool:
    """Mute a channel: it receives nothing until unmuted (deliveries recorded as
    skipped). False when it already was muted."""
    now = timezone.now()
    changed = Channel.objects.filter(pk=channel.pk, muted_at__isnull=True).update(
        muted_at=now, muted_by=user
    )
    if changed:
        channel.muted_at, channel.muted_by = now, user
    return bool(changed)


def channel_unmute(*, channel: Channel) -> bool:
    """Unmute a channel; what was skipped meanwhile is not sent late."""
    changed = Channel.objects.filter(pk=channel.pk, muted_at__isnull=False).update(
        muted_at=None, muted_by=None
    )
    channel.muted_at, channel.muted_by = None, None
    return bool(changed)
