"""How long spans are kept: a project's retention, its cutoff, and what else goes with spans.

Retention counts whole UTC days: a project keeping 30 days keeps what started at or after
00:00 UTC 30 days before today (`span_cutoff`). Spans, trace summaries and what other apps
derive per span go at the cutoff; rollups (`ROLLUP_RETENTION_DAYS`), which budgets and KPI
history read, stay longer. The enforcing is in traces/partitions.py.

Ingest reads a project's retention on every request, so it is kept in process for
`CACHE_SECONDS` (and forgotten at once when the project is saved in this process): a
change made elsewhere applies within that time.

Apps whose rows are derived from spans register them here (`traces` imports no other app):
`register_span_scoped(Model, "time_field")` rows go with their project's spans (with
`per_span=True`, partitioned by day like them on PostgreSQL),
`register_rollup_scoped(Model, "time_field")` rows are kept as long as rollups.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models.signals import post_delete, post_save

from traces.models import Project

CACHE_SECONDS = 60

_cache: dict[int, tuple[int, float]] = {}
_lock = threading.Lock()


def default_retention_days() -> int:
    return settings.SPAN_RETENTION_DAYS


def rollup_retention_days() -> int:
    return settings.ROLLUP_RETENTION_DAYS


def cutoff_for(days: int, now: datetime | None = None) -> datetime:
    """00:00 UTC `days` days before today: what starts earlier is past retention."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    return day_start(today - timedelta(days=days))


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def project_retention_days(project_id: int) -> int:
    """The project's retention in days (its own, else the default), cached in process."""
    now = time.monotonic()
    hit = _cache.get(project_id)
    if hit is not None and hit[1] > now:
        return hit[0]
    own = Project.objects.filter(pk=project_id).values_list("retention_days", flat=True).first()
    days = own or default_retention_days()
    with _lock:
        _cache[project_id] = (days, now + CACHE_SECONDS)
    return days


def retention_cache_clear(project_id: int | None = None) -> None:
    with _lock:
        if project_id is None:
            _cache.clear()
        else:
            _cache.pop(project_id, None)


def _forget(sender, instance, **kwargs) -> None:
    retention_cache_clear(instance.pk)


post_save.connect(_forget, sender=Project, dispatch_uid="traces.retention.forget")
post_delete.connect(_forget, sender=Project, dispatch_uid="traces.retention.forget_deleted")


def project_cutoffs(now: datetime | None = None) -> dict[int, tuple[int, datetime]]:
    """{project id: (retention days, cutoff)} for every project (read fresh)."""
    default = default_retention_days()
    return {
        pk: (days or default, cutoff_for(days or default, now))
        for pk, days in Project.objects.values_list("pk", "retention_days")
    }


# ------------------------------------------------------------------ derived rows

_span_scoped: list[tuple[type[models.Model], str]] = []
_per_span: dict[type[models.Model], str] = {}
_rollup_scoped: list[tuple[type[models.Model], str]] = []


def register_span_scoped(model: type[models.Model], field: str, *, per_span: bool = False) -> None:
    """Rows of `model` (with a `project` foreign key) go when `field` is before their
    project's span cutoff. Idempotent.

    `per_span`: one row per span, `field` holding that span's start. Such a table grows
    with spans, so on PostgreSQL it is partitioned by day like them (its migration calls
    `partition_span_table` of traces/migrations/0011 with that column) and retention drops
    its days with the spans'; its unique key holds the start, and the anti-join of the
    span store (`absent_from`) matches on it too, so one day of it is read, not all."""
    if (model, field) not in _span_scoped:
        _span_scoped.append((model, field))
    if per_span:
        _per_span[model] = field


def register_rollup_scoped(model: type[models.Model], field: str) -> None:
    """Rows of `model` go when `field` is before the rollup cutoff. Idempotent."""
    if (model, field) not in _rollup_scoped:
        _rollup_scoped.append((model, field))


def span_scoped() -> list[tuple[type[models.Model], str]]:
    return list(_span_scoped)


def per_span() -> list[tuple[type[models.Model], str]]:
    """The span-scoped models with one row per span, and the field holding its start."""
    return list(_per_span.items())


def span_start_field(model: type[models.Model]) -> str | None:
    """The field of a per-span model that holds its span's start (None: not per span)."""
    return _per_span.get(model)


def rollup_scoped() -> list[tuple[type[models.Model], str]]:
    return list(_rollup_scoped)


# ------------------------------------------------------------------ system checks


def check_rollup_retention(app_configs=None, **kwargs):
    """Rollups must outlive spans, or budgets and KPI history lose days spans still have."""
    from django.core.checks import Warning as CheckWarning

    span_days, rollup_days = default_retention_days(), rollup_retention_days()
    if rollup_days < span_days:
        return [
            CheckWarning(
                f"ROLLUP_RETENTION_DAYS ({rollup_days}) is shorter than SPAN_RETENTION_DAYS "
                f"({span_days}): rollups would go before the spans they sum.",
                hint="Keep rollups at least as long as spans.",
                id="traces.W010",
            )
        ]
    return []


def check_project_retention(app_configs=None, databases=None, **kwargs):
    """The same for projects that set their own retention (needs the database)."""
    from django.core.checks import Warning as CheckWarning
    from django.db import DatabaseError

    if not databases:
        return []
    rollup_days = rollup_retention_days()
    try:
        longer = list(
            Project.objects.filter(retention_days__gt=rollup_days).values_list("slug", flat=True)
        )
    except DatabaseError:
        return []
    if not longer:
        return []
    return [
        CheckWarning(
            f"Projects keep spans longer than ROLLUP_RETENTION_DAYS ({rollup_days}): "
            + ", ".join(longer[:10]),
            hint="Raise ROLLUP_RETENTION_DAYS or shorten those projects' retention.",
            id="traces.W011",
        )
    ]
