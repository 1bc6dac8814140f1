"""Writes people make from the pages and the API (evaluation writes live in budgets.evaluate)."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from budgets.models import Alert


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
    changed = (
        Alert.objects.filter(pk=alert_id, status=Alert.Status.FIRING).update(
            status=Alert.Status.ACKNOWLEDGED, acknowledged_by=user, acknowledged_at=timezone.now()
        )
        == 1
    )
    alert = Alert.objects.select_related("project", "envelope", "acknowledged_by").get(pk=alert_id)
    return AckResult(alert=alert, changed=changed)
