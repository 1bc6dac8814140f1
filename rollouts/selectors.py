"""Reads of the daily run rollups: figures, series, KPI lifts and the comparison a KPI asks for.

Everything here reads `RunRollup` (never a scan of traces). The page-level reads load the
rows of the widest window they need once, then group and compare in memory, so a page
costs the same few queries however many agents, versions and KPIs it shows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Min
from django.utils import timezone

from rollouts.models import BASELINE_PHASE, AgentPhase, Kpi, RunRollup
from rollouts.stats import Lift, MeanStats, OutcomeSums, RateStats, newcombe_diff, welch_diff
from traces.models import Outcome, Phase, Project
from traces.rollups import Histogram

DIMENSIONS = ("agent", "agent_version", "prompt_version", "phase")
ACTING_PHASES = (Phase.BOUNDED.value, Phase.EXPANDED.value)
_CHUNK = 5_000

DimFilter = Mapping[str, "str | Iterable[str]"]


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
    outcomes: dict[str, OutcomeSums] = field(default_factory=lambda: defaultdict(OutcomeSums))

    def add(self, row: dict) -> None:
        self.runs += row["runs"]
        self.errors += row["error_runs"]
        self.intervened += row["intervened_runs"]
        self.cost += row["cost_usd"]
        Histogram.merge(self.hist, row["cycle_time"])
        for key, stored in row["outcomes"].items():
            self.outcomes[key].merge(stored)

    def figures(self) -> RunFigures:
        kpis, rates, evals = {}, {}, {}
        for key, sums in sorted(self.outcomes.items()):
            kind, _, name = key.partition(":")
            if kind == Outcome.Kind.KPI:
                kpis[name] = sums.mean
                rates[name] = sums.rate
            else:
                evals[name] = sums.mean
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
    """RunRollup rows of days start_day..end_day inclusive, as dicts. One query."""
    rows = RunRollup.objects.filter(project_id=project_id, day__gte=start_day, day__lte=end_day)
    if agent:
        rows = rows.filter(agent=agent)
    return rows.values(*_ROW_FIELDS).order_by().iterator(chunk_size=_CHUNK)


def _matches(row: dict, where: DimFilter) -> bool:
    for dim, wanted in where.items():
        if isinstance(wanted, str):
            if row[dim] != wanted:
                return False
        elif row[dim] not in wanted:
            return False
    return True


class RunRows:
    """The rollup rows of one project and window, loaded once and read many ways."""

    def __init__(self, rows: Iterable[dict]):
        self.rows = list(rows)

    @classmethod
    def load(cls, *, project_id: int, start_day: date, end_day: date, agent: str = "") -> RunRows:
        return cls(_rows(project_id=project_id, start_day=start_day, end_day=end_day, agent=agent))

    def _select(self, start_day: date | None, end_day: date | None, agent: str):
        for row in self.rows:
            if start_day is not None and row["day"] < start_day:
                continue
            if end_day is not None and row["day"] > end_day:
                continue
            if agent and row["agent"] != agent:
                continue
            yield row

    def figures(
        self,
        *,
        group_by: tuple[str, ...] = (),
        agent: str = "",
        start_day: date | None = None,
        end_day: date | None = None,
    ) -> dict[tuple, RunFigures]:
        _check_dims(group_by)
        accs: dict[tuple, _Acc] = defaultdict(_Acc)
        for row in self._select(start_day, end_day, agent):
            accs[tuple(row[d] for d in group_by)].add(row)
        return {key: acc.figures() for key, acc in sorted(accs.items())}

    def series(
        self,
        *,
        group_by: tuple[str, ...] = (),
        agent: str = "",
        start_day: date | None = None,
        end_day: date | None = None,
    ) -> list[tuple[date, tuple, RunFigures]]:
        _check_dims(group_by)
        accs: dict[tuple, _Acc] = defaultdict(_Acc)
        for row in self._select(start_day, end_day, agent):
            accs[(row["day"], tuple(row[d] for d in group_by))].add(row)
        return [(day, key, acc.figures()) for (day, key), acc in sorted(accs.items())]

    def lift(
        self,
        *,
        kpi: Kpi,
        agent: str,
        treatment: DimFilter,
        baseline: DimFilter,
        start_day: date | None = None,
        end_day: date | None = None,
        confidence: float = 0.95,
    ) -> Lift:
        _check_dims([*treatment, *baseline])
        key = f"{Outcome.Kind.KPI}:{kpi.name}"
        t, b = OutcomeSums(), OutcomeSums()
        for row in self._select(start_day, end_day, agent):
            stored = row["outcomes"].get(key)
            if stored is None:
                continue
            if _matches(row, treatment):
                t.merge(stored)
            if _matches(row, baseline):
                b.merge(stored)
        if kpi.kind == Kpi.Kind.RATE:
            return newcombe_diff(
                t.rate, b.rate, confidence=confidence, higher_is_better=kpi.higher_is_better
            )
        return welch_diff(
            t.mean, b.mean, confidence=confidence, higher_is_better=kpi.higher_is_better
        )


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
    rows = RunRows.load(project_id=project_id, start_day=start_day, end_day=end_day, agent=agent)
    return rows.figures(group_by=group_by)


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
    rows = RunRows.load(project_id=project_id, start_day=start_day, end_day=end_day, agent=agent)
    return rows.series(group_by=group_by)


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
    rows = RunRows.load(project_id=project_id, start_day=start_day, end_day=end_day, agent=agent)
    return rows.lift(
        kpi=kpi, agent=agent, treatment=treatment, baseline=baseline, confidence=confidence
    )


@dataclass(frozen=True)
class Comparison:
    """The two filters to hand to `kpi_lift`, and the baseline in words."""

    treatment: dict
    baseline: dict
    label: str


def version_order(*, project_id: int, agent: str = "") -> dict[str, list[str]]:
    """Each agent's versions, oldest first (by the first day with runs). One query."""
    rows = RunRollup.objects.filter(project_id=project_id).exclude(agent_version="")
    if agent:
        rows = rows.filter(agent=agent)
    order: dict[str, list[str]] = defaultdict(list)
    for name, version in (
        rows.values("agent", "agent_version")
        .annotate(first=Min("day"))
        .order_by("agent", "first", "agent_version")
        .values_list("agent", "agent_version")
    ):
        order[name].append(version)
    return order


def baseline_for(
    *,
    kpi: Kpi,
    agent: str,
    project_id: int,
    current_version: str,
    versions: Mapping[str, list[str]] | None = None,
) -> Comparison | None:
    """The comparison the KPI's `baseline` setting asks for, None when there is none yet.

    * previous_version: this version against the version first seen just before it
      (versions ordered by the first day they have runs; "" is not a version).
    * shadow: this version acting (bounded/expanded) against the agent's shadow runs.
    * control: this version acting against human-handled runs (phase "human").

    `versions` is `version_order()` when the caller already has it (no query then).
    """
    phase = BASELINE_PHASE.get(kpi.baseline)
    if phase is not None:
        acting = {"agent_version": current_version, "phase": ACTING_PHASES}
        label = "shadow phase" if phase == Phase.SHADOW else "human control"
        return Comparison(treatment=acting, baseline={"phase": phase.value}, label=label)
    if versions is None:
        versions = version_order(project_id=project_id, agent=agent)
    ordered = versions.get(agent, [])
    if current_version not in ordered or ordered.index(current_version) == 0:
        return None
    previous = ordered[ordered.index(current_version) - 1]
    return Comparison(
        treatment={"agent_version": current_version},
        baseline={"agent_version": previous},
        label=f"version {previous}",
    )


def declared_phase_query(*, project_id: int, agent: str, at: datetime):
    """The phase the console declares for the agent at `at` (its `AgentPhase` in force), as
    a one-row query of `phase` to use as a subquery; empty when none is declared."""
    return (
        AgentPhase.objects.filter(project_id=project_id, agent=agent, since__lte=at)
        .order_by("-since")
        .values("phase")[:1]
    )


def declared_phase(*, project_id: int, agent: str, at: datetime) -> str:
    """The declared phase (see `declared_phase_query`), or "" when none is declared.
    Uncached: a demotion applies to the next read."""
    row = declared_phase_query(project_id=project_id, agent=agent, at=at).first()
    return row["phase"] if row else ""


def agent_phase_history(*, project: Project, agent: str, now: datetime | None = None) -> dict:
    """The agent's declared phase now (`current`, "" when none) and its changes, newest
    first (`history`): when each took effect (`since`; `scheduled` when still to come),
    when it was recorded and by whom, the phase before it (`from_phase`, "" for the
    first) and after. One query."""
    now = now or timezone.now()
    rows = list(AgentPhase.objects.filter(project=project, agent=agent).order_by("since", "id"))
    history = []
    previous = current = ""
    for row in rows:
        history.append(
            {
                "since": row.since,
                "scheduled": row.since > now,
                "created_at": row.created_at,
                "set_by": row.set_by,
                "from_phase": previous,
                "to_phase": row.phase,
                "note": row.note,
            }
        )
        previous = row.phase
        if row.since <= now:
            current = row.phase
    history.reverse()
    return {"current": current, "history": history}


def kpi_declared_names(*, project_id: int) -> list[str]:
    """The names of the project's declared KPIs, sorted."""
    return list(
        Kpi.objects.filter(project_id=project_id).order_by("name").values_list("name", flat=True)
    )
