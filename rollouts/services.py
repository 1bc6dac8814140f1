"""Runs → daily `RunRollup` rows (the write side; the reads are in `rollouts.selectors`).

`run_rollups_refresh()` recomputes whole (project, UTC day) slices and *replaces* them
(delete + bulk_create in one transaction), so it is idempotent: re-running it, or running it
twice at once, leaves the same rows. Which days to recompute comes from a watermark
(`RunRollupWatermark`, key "runs"): the time the previous refresh *started*. Days holding a
trace whose `last_received_at`, or an outcome whose `received_at`, is at or after
``watermark − SAFETY_MARGIN`` are recomputed. The margin covers an ingest transaction that
stamped its rows before the refresh started but committed after the refresh read them (and
small clock skew between web and worker hosts): anything committed within 5 minutes of its
own timestamp is picked up. A late outcome for an old run has a fresh `received_at`, so the
old run's day is recomputed. With no watermark yet, every day with runs is rebuilt.

Known limit: if a late span moves a run's start across midnight, the day it left keeps
counting it until that day is recomputed for another reason.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Case, CharField, Count, F, Q, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from rollouts.models import DECLARED_PHASES, AgentPhase, RunRollup, RunRollupWatermark
from rollouts.selectors import declared_phase
from rollouts.stats import OutcomeSums
from traces.dberrors import is_outage
from traces.models import Outcome, Project, Trace, TraceStatus
from traces.rollups import Histogram

logger = logging.getLogger(__name__)

WATERMARK_KEY = "runs"
SAFETY_MARGIN = timedelta(minutes=5)
_CHUNK = 5_000


def run_rollups_refresh(*, now: datetime | None = None) -> dict:
    """Recompute the (project, day) rollups touched since the last refresh.

    Returns {"days": recomputed days, "rows": rows written, "full": whether it rebuilt all,
    "failed": days that could not be recomputed (logged; retried on the next refresh)}.
    """
    now = now or timezone.now()
    mark, _ = RunRollupWatermark.objects.get_or_create(key=WATERMARK_KEY)
    full = mark.value is None
    days = _dirty_days(since=None if full else mark.value - SAFETY_MARGIN)
    rows = 0
    failed = 0
    for project_id, day in sorted(days):
        try:
            rows += _day_replace(project_id=project_id, day=day)
        except Exception as exc:
            if is_outage(exc):
                raise
            # One project's bad row must not stop the other projects' figures; the day
            # keeps its previous rows and is tried again on the next refresh.
            logger.exception("run rollups of project %s for %s not refreshed", project_id, day)
            failed += 1
    if not failed:
        # Monotonic: a slow refresh that started earlier never moves the watermark back.
        # Held back while a day fails, so that the failed day stays due.
        RunRollupWatermark.objects.filter(key=WATERMARK_KEY).filter(
            Q(value__isnull=True) | Q(value__lt=now)
        ).update(value=now)
    return {"days": len(days), "rows": rows, "full": full, "failed": failed}


def _dirty_days(*, since: datetime | None) -> set[tuple[int, date]]:
    traces = Trace.objects.all()
    if since is not None:
        traces = traces.filter(last_received_at__gte=since)
    days: set[tuple[int, date]] = set(
        traces.annotate(day=TruncDate("started_at", tzinfo=UTC))
        .values_list("project_id", "day")
        .distinct()
    )
    if since is None:
        return days
    late: dict[int, set[str]] = defaultdict(set)
    for project_id, trace_id in (
        Outcome.objects.filter(received_at__gte=since)
        .values_list("project_id", "trace_id")
        .iterator(chunk_size=_CHUNK)
    ):
        late[project_id].add(trace_id)
    for project_id, trace_ids in late.items():
        ids = sorted(trace_ids)
        for i in range(0, len(ids), _CHUNK):
            days.update(
                Trace.objects.filter(project_id=project_id, trace_id__in=ids[i : i + _CHUNK])
                .annotate(day=TruncDate("started_at", tzinfo=UTC))
                .values_list("project_id", "day")
                .distinct()
            )
    return days


def _phase_expression(project_id: int) -> Case:
    """The run's phase in SQL: reported, else the agent's AgentPhase in force at its start."""
    whens = [
        When(Q(phase="", agent=p.agent, started_at__gte=p.since), then=Value(p.phase))
        # Latest start first: the first matching When wins.
        for p in AgentPhase.objects.filter(project_id=project_id).order_by("agent", "-since")
    ]
    return Case(*whens, default=F("phase"), output_field=CharField())


def _day_traces(project_id: int, day: date):
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return Trace.objects.filter(
        project_id=project_id, started_at__gte=start, started_at__lt=start + timedelta(days=1)
    ).annotate(run_phase=_phase_expression(project_id))


_KEYS = ("agent", "agent_version", "prompt_version", "run_phase")


def _day_aggregate(project_id: int, day: date) -> list[RunRollup]:
    traces = _day_traces(project_id, day)
    rows: dict[tuple, RunRollup] = {}
    for agent, version, prompt, phase, runs, errors, intervened, cost in (
        traces.values(*_KEYS)
        .annotate(
            runs=Count("id"),
            errors=Count("id", filter=Q(status=TraceStatus.ERROR)),
            intervened_runs=Count("id", filter=Q(intervened=True)),
            cost=Sum("cost_usd"),
        )
        .values_list(*_KEYS, "runs", "errors", "intervened_runs", "cost")
        .order_by()
    ):
        rows[(agent, version, prompt, phase)] = RunRollup(
            project_id=project_id,
            day=day,
            agent=agent,
            agent_version=version,
            prompt_version=prompt,
            phase=phase,
            runs=runs,
            error_runs=errors,
            intervened_runs=intervened,
            cost_usd=cost or Decimal(0),
            cycle_time={},
            outcomes={},
        )
    for *key, duration in traces.values_list(*_KEYS, "duration_ms").iterator(chunk_size=_CHUNK):
        row = rows.get(tuple(key))
        if row is not None:
            Histogram.add_value(row.cycle_time, duration)

    sums: dict[tuple, dict[str, OutcomeSums]] = defaultdict(lambda: defaultdict(OutcomeSums))
    # No foreign key from Outcome to Trace, so join on (project, trace_id) by hand; the
    # outcome's unique index (project, trace_id, kind, name) serves the join.
    sql, params = traces.values_list("trace_id", *_KEYS).order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT t.agent, t.agent_version, t.prompt_version, t.run_phase, "
            f"o.kind, o.name, o.value FROM ({sql}) t "
            f"INNER JOIN {Outcome._meta.db_table} o "
            f"ON o.project_id = %s AND o.trace_id = t.trace_id",
            [*params, project_id],
        )
        while batch := cursor.fetchmany(_CHUNK):
            for agent, version, prompt, phase, kind, name, value in batch:
                if (agent, version, prompt, phase) not in rows:
                    continue
                sums[(agent, version, prompt, phase)][f"{kind}:{name}"].add_value(value)
    for key, by_name in sums.items():
        rows[key].outcomes = {name: s.as_json() for name, s in by_name.items()}
    return list(rows.values())


def _day_replace(*, project_id: int, day: date) -> int:
    with transaction.atomic():
        # Serialise replacements: two workers deleting and inserting the same keys at
        # once would collide on the unique constraint (PostgreSQL; SQLite's IMMEDIATE
        # transactions already serialise writers). Aggregating after taking the lock
        # means the later worker sees the newer data.
        RunRollupWatermark.objects.select_for_update().filter(key=WATERMARK_KEY).first()
        rows = _day_aggregate(project_id, day)
        RunRollup.objects.filter(project_id=project_id, day=day).delete()
        RunRollup.objects.bulk_create(rows, batch_size=500)
    return len(rows)


# ------------------------------------------------------------------ declared phases


def _text_clean(value, *, field: str, limit: int, required: bool) -> str:
    if not isinstance(value, str):
        raise ValidationError({field: ["Must be text."]})
    value = value.strip()
    if required and not value:
        raise ValidationError({field: ["Required."]})
    if len(value) > limit:
        raise ValidationError({field: [f"At most {limit} characters."]})
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise ValidationError({field: ["Must not contain NUL characters."]})
    return value


def agent_phase_set(
    *,
    project: Project,
    agent: str,
    phase: str,
    by: str,
    note: str = "",
    now: datetime | None = None,
) -> AgentPhase:
    """Declare `agent`'s phase from now on: a new `AgentPhase` row, recorded with who set
    it. Every later policy check of the agent uses it at once (nothing caches a phase).

    ValidationError (by field) for an unknown phase, a bad agent name or note, or a
    phase the agent is already in. A row someone dated in the future still takes over
    when its time comes.
    """
    agent = _text_clean(agent, field="agent", limit=200, required=True)
    note = _text_clean(note, field="note", limit=300, required=False)
    if phase not in {p.value for p in DECLARED_PHASES}:
        choices = ", ".join(p.value for p in DECLARED_PHASES)
        raise ValidationError({"phase": [f"Must be one of {choices}."]})
    now = now or timezone.now()
    with transaction.atomic():
        # Serialises changes of one project, so "from" is the phase the change replaced.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        if declared_phase(project_id=project.pk, agent=agent, at=now) == phase:
            raise ValidationError({"phase": [f"{agent} is already {phase}."]})
        return AgentPhase.objects.create(
            project=project, agent=agent, phase=phase, since=now, note=note, set_by=by[:150]
        )
