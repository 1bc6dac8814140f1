"""Runs → daily `RunRollup` rows, and the figures and KPI lifts read from them.

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

Everything else here reads `RunRollup` only (a handful of queries, no scan of traces).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Case, CharField, Count, F, Min, Q, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from traces.dberrors import is_outage
from traces.models import (
    AgentPhase,
    Kpi,
    Outcome,
    RunRollup,
    RunRollupWatermark,
    Trace,
    TraceStatus,
)
from traces.rollups import Histogram
from traces.stats import Lift, MeanStats, RateStats, newcombe_diff, welch_diff

logger = logging.getLogger(__name__)

DIMENSIONS = ("agent", "agent_version", "prompt_version", "phase")
WATERMARK_KEY = "runs"
SAFETY_MARGIN = timedelta(minutes=5)
_CHUNK = 5_000

DimFilter = Mapping[str, "str | Iterable[str]"]


# ------------------------------------------------------------------ refresh


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


def _day_of(dt: datetime) -> date:
    return dt.astimezone(UTC).date()


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
                row = rows.get((agent, version, prompt, phase))
                if row is None:
                    continue
                acc = row.outcomes.setdefault(
                    f"{kind}:{name}", {"n": 0, "sum": 0.0, "sumsq": 0.0, "ones": 0}
                )
                acc["n"] += 1
                acc["sum"] += value
                acc["sumsq"] += value * value
                acc["ones"] += value == 1
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


# ------------------------------------------------------------------ figures


@dataclass
class RunFigures:
    runs: int
    exception: RateStats
    intervention: RateStats
    cycle_p50_ms: float | None
    cycle_p95_ms: float | None
    cost_usd: Decimal
    cost_per_run: Decimal | None
    kpis: dict[str, MeanStats] = field(default_factory=dict)
    kpi_rates: dict[str, RateStats] = field(default_factory=dict)
    evals: dict[str, MeanStats] = field(default_factory=dict)
    cycle_time: dict[str, int] = field(default_factory=dict)


@dataclass
class _Acc:
    runs: int = 0
    errors: int = 0
    intervened: int = 0
    cost: Decimal = field(default_factory=lambda: Decimal(0))
    hist: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, dict] = field(default_factory=dict)

    def add(self, row: dict) -> None:
        self.runs += row["runs"]
        self.errors += row["error_runs"]
        self.intervened += row["intervened_runs"]
        self.cost += row["cost_usd"]
        Histogram.merge(self.hist, row["cycle_time"])
        for key, stats in row["outcomes"].items():
            acc = self.outcomes.setdefault(key, {"n": 0, "sum": 0.0, "sumsq": 0.0, "ones": 0})
            for k in acc:
                acc[k] += stats[k]

    def figures(self) -> RunFigures:
        kpis, rates, evals = {}, {}, {}
        for key, s in sorted(self.outcomes.items()):
            kind, _, name = key.partition(":")
            mean = MeanStats(n=s["n"], total=s["sum"], total_sq=s["sumsq"])
            if kind == Outcome.Kind.KPI:
                kpis[name] = mean
                rates[name] = RateStats(n=s["n"], successes=s["ones"])
            else:
                evals[name] = mean
        return RunFigures(
            runs=self.runs,
            exception=RateStats(n=self.runs, successes=self.errors),
            intervention=RateStats(n=self.runs, successes=self.intervened),
            cycle_p50_ms=Histogram.quantile(self.hist, 0.5),
            cycle_p95_ms=Histogram.quantile(self.hist, 0.95),
            cost_usd=self.cost,
            cost_per_run=self.cost / self.runs if self.runs else None,
            kpis=kpis,
            kpi_rates=rates,
            evals=evals,
            cycle_time=self.hist,
        )


_ROW_FIELDS = (
    *DIMENSIONS,
    "day",
    "runs",
    "error_runs",
    "intervened_runs",
    "cost_usd",
    "cycle_time",
    "outcomes",
)


def _check_dims(names: Iterable[str]) -> None:
    unknown = set(names) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown dimension(s) {sorted(unknown)}; use {DIMENSIONS}")


def _rows(*, project_id: int, start_day: date, end_day: date, agent: str = ""):
    """RunRollup rows of days start_day..end_day inclusive, as dicts."""
    rows = RunRollup.objects.filter(project_id=project_id, day__gte=start_day, day__lte=end_day)
    if agent:
        rows = rows.filter(agent=agent)
    return rows.values(*_ROW_FIELDS).order_by().iterator(chunk_size=_CHUNK)


def run_figures(
    *,
    project_id: int,
    start_day: date,
    end_day: date,
    group_by: tuple[str, ...] = (),
    agent: str = "",
) -> dict[tuple, RunFigures]:
    """Figures of the runs started on days start_day..end_day (inclusive, UTC), keyed by the
    tuple of the `group_by` dimensions' values (in that order; () for one total). One query."""
    _check_dims(group_by)
    accs: dict[tuple, _Acc] = defaultdict(_Acc)
    for row in _rows(project_id=project_id, start_day=start_day, end_day=end_day, agent=agent):
        accs[tuple(row[d] for d in group_by)].add(row)
    return {key: acc.figures() for key, acc in sorted(accs.items())}


def run_series(
    *,
    project_id: int,
    start_day: date,
    end_day: date,
    agent: str = "",
    group_by: tuple[str, ...] = (),
) -> list[tuple[date, tuple, RunFigures]]:
    """(day, key, figures) for each day with runs, sorted by day then key. One query."""
    _check_dims(group_by)
    accs: dict[tuple, _Acc] = defaultdict(_Acc)
    for row in _rows(project_id=project_id, start_day=start_day, end_day=end_day, agent=agent):
        accs[(row["day"], tuple(row[d] for d in group_by))].add(row)
    return [(day, key, acc.figures()) for (day, key), acc in sorted(accs.items())]


# ------------------------------------------------------------------ lift


def _matches(row: dict, where: DimFilter) -> bool:
    for dim, wanted in where.items():
        if isinstance(wanted, str):
            if row[dim] != wanted:
                return False
        elif row[dim] not in wanted:
            return False
    return True


def kpi_lift(
    *,
    project_id: int,
    kpi: Kpi | str,
    agent: str,
    start_day: date,
    end_day: date,
    treatment: DimFilter,
    baseline: DimFilter,
    confidence: float = 0.95,
) -> Lift:
    """Lift of a KPI in the runs matching `treatment` over those matching `baseline`.

    Filters map dimensions to a value or a collection of values, e.g.
    {"agent_version": "1.4.0"} vs {"agent_version": "1.3.0"}, or
    {"phase": ("bounded", "expanded")} vs {"phase": "human"}. Welch's t for a mean KPI,
    Newcombe's interval on the share of values equal to 1 for a rate KPI.
    """
    _check_dims([*treatment, *baseline])
    if isinstance(kpi, str):
        kpi = Kpi.objects.get(project_id=project_id, name=kpi)
    key = f"{Outcome.Kind.KPI}:{kpi.name}"
    groups = {"t": _Acc(), "b": _Acc()}
    for row in _rows(project_id=project_id, start_day=start_day, end_day=end_day, agent=agent):
        for name, where in (("t", treatment), ("b", baseline)):
            if _matches(row, where):
                groups[name].add(row)
    t = groups["t"].outcomes.get(key, {"n": 0, "sum": 0.0, "sumsq": 0.0, "ones": 0})
    b = groups["b"].outcomes.get(key, {"n": 0, "sum": 0.0, "sumsq": 0.0, "ones": 0})
    if kpi.kind == Kpi.Kind.RATE:
        return newcombe_diff(
            RateStats(n=t["n"], successes=t["ones"]),
            RateStats(n=b["n"], successes=b["ones"]),
            confidence=confidence,
            higher_is_better=kpi.higher_is_better,
        )
    return welch_diff(
        MeanStats(n=t["n"], total=t["sum"], total_sq=t["sumsq"]),
        MeanStats(n=b["n"], total=b["sum"], total_sq=b["sumsq"]),
        confidence=confidence,
        higher_is_better=kpi.higher_is_better,
    )


@dataclass(frozen=True)
class Comparison:
    """The two filters to hand to `kpi_lift`, and the baseline in words."""

    treatment: dict
    baseline: dict
    label: str


AGENT_PHASES = ("bounded", "expanded")


def baseline_for(
    *, kpi: Kpi, agent: str, project_id: int, current_version: str
) -> Comparison | None:
    """The comparison the KPI's `baseline` setting asks for, None when there is none yet.

    * previous_version: this version against the version first seen just before it
      (versions ordered by the first day they have runs; "" is not a version).
    * shadow: this version acting (bounded/expanded) against the agent's shadow runs.
    * control: this version acting against human-handled runs (phase "human").
    """
    acting = {"agent_version": current_version, "phase": AGENT_PHASES}
    if kpi.baseline == Kpi.Baseline.SHADOW:
        return Comparison(treatment=acting, baseline={"phase": "shadow"}, label="shadow phase")
    if kpi.baseline == Kpi.Baseline.CONTROL:
        return Comparison(treatment=acting, baseline={"phase": "human"}, label="human control")
    versions = list(
        RunRollup.objects.filter(project_id=project_id, agent=agent)
        .exclude(agent_version="")
        .values("agent_version")
        .annotate(first=Min("day"))
        .order_by("first", "agent_version")
        .values_list("agent_version", flat=True)
    )
    if current_version not in versions or versions.index(current_version) == 0:
        return None
    previous = versions[versions.index(current_version) - 1]
    return Comparison(
        treatment={"agent_version": current_version},
        baseline={"agent_version": previous},
        label=f"version {previous}",
    )
