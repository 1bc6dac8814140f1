"""The review queue: things waiting for a person (approval requests, runs that crossed a
review rule), each with its SLA.

`review_item_open` is the one way an item enters the queue; `review_sla_minutes` the one
rule for how long it may wait.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction

from controls.models import Approval, ReviewItem, ReviewSla
from traces.models import Project


def review_sla_minutes(*, project_id: int, risk: str) -> int | None:
    """The minutes an item of `risk` may wait: the project's SLA for that risk, else its
    catch-all ("" risk), else None (no SLA)."""
    rows = dict(
        ReviewSla.objects.filter(project_id=project_id, risk__in=[risk, ""]).values_list(
            "risk", "minutes"
        )
    )
    return rows.get(risk, rows.get(""))


def review_item_open(
    *,
    project: Project,
    source: str,
    created_at: datetime,
    approval: Approval | None = None,
    trace_id: str = "",
    span_id: str = "",
    agent: str = "",
    agent_version: str = "",
    phase: str = "",
    tool: str = "",
    risk: str = "",
    confidence: Decimal | None = None,
    reason: str = "",
) -> ReviewItem | None:
    """Put an item in the queue, with its SLA deadline. A run's step flagged again for
    the same reason is not queued twice: None when it already is."""
    minutes = review_sla_minutes(project_id=project.pk, risk=risk)
    item = ReviewItem(
        project=project,
        source=source,
        approval=approval,
        trace_id=trace_id,
        span_id=span_id,
        agent=agent[:200],
        agent_version=agent_version[:100],
        phase=phase[:16],
        tool=tool[:200],
        risk=risk[:16],
        confidence=confidence,
        reason=reason[:500],
        created_at=created_at,
        sla_due_at=created_at + timedelta(minutes=minutes) if minutes is not None else None,
    )
    try:
        with transaction.atomic():
            item.save()
    except IntegrityError:
        if approval is not None:
            raise
        return None
    return item
