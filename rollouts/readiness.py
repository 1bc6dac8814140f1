"""Promotion readiness: does an agent meet its PromotionCriteria to leave its phase?

Each criterion is evaluated over the criteria's window (``window_days`` ending today) from
the run rollups of the runs in ``from_phase``, and comes back met / not met with
the evidence in words, interval included, so a reader can argue with the number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from rollouts.extensions import agent_checklists, shadow_agreement
from rollouts.models import Kpi, PromotionCriteria
from rollouts.selectors import RunRows, baseline_for, version_order
from rollouts.stats import NOT_ENOUGH_DATA, WORSE, RateStats, wilson_interval


@dataclass(frozen=True)
class Check:
    name: str
    met: bool
    evidence: str


@dataclass
class Readiness:
    criteria: object
    checks: list[Check] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return bool(self.checks) and all(c.met for c in self.checks)

    @property
    def label(self) -> str:
        c = self.criteria
        return f"{c.from_phase} → {c.to_phase}"


def _rate_text(rate: RateStats) -> str:
    if rate.n == 0:
        return "no runs"
    low, high = wilson_interval(rate)
    return (
        f"{rate.rate * 100:.1f} % ({rate.successes:,} of {rate.n:,} runs; "
        f"95 % CI {low * 100:.1f}–{high * 100:.1f} %)"
    )


def _rate_check(name: str, rate: RateStats | None, limit) -> Check:
    if limit is None:
        return Check(name, True, "no limit set")
    limit = float(limit)
    if rate is None or rate.n == 0:
        return Check(name, False, f"no runs to measure (limit {limit:g} %)")
    met = rate.rate * 100.0 <= limit
    return Check(name, met, f"{_rate_text(rate)}; limit {limit:g} %")


def _agreement_check(
    criteria: PromotionCriteria, *, version: str, start_day: date, end_day: date
) -> Check:
    """Shadow agreement: the people's actions against the agent's recommendations in
    `from_phase`, met when the Wilson interval's lower bound reaches the minimum, so a
    handful of lucky agreements cannot promote an agent."""
    need = float(criteria.min_shadow_agreement)
    counts = shadow_agreement(
        project_id=criteria.project_id,
        agent=criteria.agent,
        phase=criteria.from_phase,
        version=version,
        start_day=start_day,
        end_day=end_day,
    )
    name = "Shadow agreement"
    if counts is None:
        return Check(name, False, "decision memory could not be read")
    n, agreed = counts
    of = f" of version {version}" if version else ""
    if n == 0:
        return Check(name, False, f"no decisions{of} with a person's action yet; need ≥ {need:g} %")
    rate = RateStats(n=n, successes=agreed)
    low, high = wilson_interval(rate)
    return Check(
        name,
        low * 100.0 >= need,
        f"{rate.rate * 100:.1f} % ({agreed:,} of {n:,} decisions{of}; 95 % CI "
        f"{low * 100:.1f}–{high * 100:.1f} %); need the interval's lower bound ≥ {need:g} %",
    )


def readiness_evaluate(
    *,
    criteria: PromotionCriteria,
    today: date,
    version: str = "",
    rows: RunRows | None = None,
    kpis: list[Kpi] | None = None,
    versions: dict[str, list[str]] | None = None,
    checklist: list | None = None,
) -> Readiness:
    """Evaluate one PromotionCriteria row.

    `rows` (covering the criteria's window), `kpis` (the project's, by name), `versions`
    (`version_order`) and `checklist` (the agent's readiness items over the criteria's
    window, `rollouts.extensions`) may be passed in by a caller that already loaded them;
    whatever is missing is read here.
    """
    window = max(int(criteria.window_days or 1), 1)
    start_day = today - timedelta(days=window - 1)
    if rows is None:
        rows = RunRows.load(
            project_id=criteria.project_id, start_day=start_day, end_day=today, agent=criteria.agent
        )
    window_rows = {"agent": criteria.agent, "start_day": start_day, "end_day": today}
    figures = rows.figures(group_by=("phase",), **window_rows)
    fig = figures.get((criteria.from_phase,))
    result = Readiness(criteria=criteria)
    runs = fig.runs if fig else 0
    where = f"in phase {criteria.from_phase}, last {window} day{'s' if window != 1 else ''}"
    result.checks.append(
        Check(
            "Runs",
            runs >= (criteria.min_runs or 0),
            f"{runs:,} runs {where}; need {criteria.min_runs:,}",
        )
    )
    result.checks.append(
        _rate_check("Exception rate", fig.exception if fig else None, criteria.max_exception_rate)
    )
    result.checks.append(
        _rate_check(
            "Intervention rate",
            fig.intervention if fig else None,
            criteria.max_intervention_rate,
        )
    )
    if criteria.min_shadow_agreement is not None:
        result.checks.append(
            _agreement_check(criteria, version=version, start_day=start_day, end_day=today)
        )
    required = [k for k in criteria.require_readiness or [] if isinstance(k, str)]
    if required:
        if checklist is None:
            checklist = agent_checklists(
                project=criteria.project,
                agents=[criteria.agent],
                start_day=start_day,
                end_day=today,
            )[criteria.agent]
        items = {item.key: item for item in checklist}
        for key in required:
            item = items.get(key)
            if item is None:
                result.checks.append(Check(f"Readiness: {key}", False, "not evaluated"))
            else:
                result.checks.append(Check(item.label, bool(item.met), item.evidence))
    if criteria.require_no_kpi_regression:
        if kpis is None:
            kpis = list(Kpi.objects.filter(project_id=criteria.project_id).order_by("name"))
        if versions is None:
            versions = version_order(project_id=criteria.project_id, agent=criteria.agent)
        declared = kpis
        if not declared:
            result.checks.append(Check("No KPI regression", True, "no KPI declared"))
        for kpi in declared:
            comparison = baseline_for(
                kpi=kpi,
                agent=criteria.agent,
                project_id=criteria.project_id,
                current_version=version,
                versions=versions,
            )
            if comparison is None:
                result.checks.append(
                    Check(f"No regression in {kpi}", False, "no baseline runs to compare with")
                )
                continue
            lift = rows.lift(
                kpi=kpi,
                treatment=comparison.treatment,
                baseline=comparison.baseline,
                **window_rows,
            )
            # Not enough data cannot rule a regression out, so it does not pass the gate.
            met = lift.verdict not in (WORSE, NOT_ENOUGH_DATA)
            result.checks.append(
                Check(f"No regression in {kpi}", met, f"vs {comparison.label}: {lift.summary()}")
            )
    return result


def readiness_for_agent(
    *,
    project_id: int,
    agent: str,
    today: date,
    phase: str = "",
    version: str = "",
    criteria: list[PromotionCriteria] | None = None,
    rows: RunRows | None = None,
    kpis: list[Kpi] | None = None,
    versions: dict[str, list[str]] | None = None,
    checklists: dict[int, list] | None = None,
) -> list[Readiness]:
    """Readiness for each criteria row of the agent (the current phase's first), or [].

    `criteria` is the agent's rows when the caller loaded them; `checklists` the agent's
    readiness items per criteria window (days); the other preloaded reads are handed on to
    `readiness_evaluate`.
    """
    if criteria is None:
        criteria = list(PromotionCriteria.objects.filter(project_id=project_id, agent=agent))
    ordered = sorted(criteria, key=lambda c: (c.from_phase != phase, c.from_phase, c.to_phase))
    return [
        readiness_evaluate(
            criteria=c,
            today=today,
            version=version,
            rows=rows,
            kpis=kpis,
            versions=versions,
            checklist=(checklists or {}).get(max(int(c.window_days or 1), 1)),
        )
        for c in ordered
    ]
