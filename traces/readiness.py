"""Promotion readiness: does an agent meet its PromotionCriteria to leave its phase?

Each criterion is evaluated over the criteria's window (``window_days`` ending today) from
``traces.kpis.run_figures`` of the runs in ``from_phase``, and comes back met / not met with
the evidence in words, interval included, so a reader can argue with the number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from traces.stats import NOT_ENOUGH_DATA, WORSE, RateStats, wilson_interval


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


def readiness_evaluate(*, criteria, today: date, version: str = "") -> Readiness:
    """Evaluate one PromotionCriteria row. Reads through traces.kpis only."""
    from traces import kpis
    from traces.models import Kpi

    window = max(int(criteria.window_days or 1), 1)
    start_day = today - timedelta(days=window - 1)
    figures = kpis.run_figures(
        project_id=criteria.project_id,
        start_day=start_day,
        end_day=today,
        group_by=("phase",),
        agent=criteria.agent,
    )
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
    if criteria.require_no_kpi_regression:
        declared = list(Kpi.objects.filter(project_id=criteria.project_id).order_by("name"))
        if not declared:
            result.checks.append(Check("No KPI regression", True, "no KPI declared"))
        for kpi in declared:
            comparison = kpis.baseline_for(
                kpi=kpi,
                agent=criteria.agent,
                project_id=criteria.project_id,
                current_version=version,
            )
            if comparison is None:
                result.checks.append(
                    Check(f"No regression in {kpi}", False, "no baseline runs to compare with")
                )
                continue
            lift = kpis.kpi_lift(
                project_id=criteria.project_id,
                kpi=kpi,
                agent=criteria.agent,
                start_day=start_day,
                end_day=today,
                treatment=comparison.treatment,
                baseline=comparison.baseline,
            )
            # Not enough data cannot rule a regression out, so it does not pass the gate.
            met = lift.verdict not in (WORSE, NOT_ENOUGH_DATA)
            result.checks.append(
                Check(f"No regression in {kpi}", met, f"vs {comparison.label}: {lift.summary()}")
            )
    return result


def readiness_for_agent(
    *, project_id: int, agent: str, today: date, phase: str = "", version: str = ""
):
    """Readiness for each criteria row of the agent (the current phase's first), or []."""
    from traces.models import PromotionCriteria

    rows = list(PromotionCriteria.objects.filter(project_id=project_id, agent=agent))
    rows.sort(key=lambda c: (c.from_phase != phase, c.from_phase, c.to_phase))
    return [readiness_evaluate(criteria=c, today=today, version=version) for c in rows]
