"""What the Agents, KPI lift and version comparison pages show, read in a fixed number of
queries: each page loads its rollup rows once and the project's declarations once, then
groups and compares in memory, however many agents, versions and KPIs there are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, timedelta
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from rollouts import charts
from rollouts.estimates import kpi_diff, kpi_estimate, mean_estimate, rate_estimate
from rollouts.extensions import agent_checklists
from rollouts.models import BASELINE_PHASE, AgentPhase, Kpi, PromotionCriteria
from rollouts.readiness import readiness_for_agent
from rollouts.selectors import RunRows, baseline_for, version_order
from rollouts.stats import MeanStats, RateStats, newcombe_diff, welch_diff
from traces import display
from traces.models import Phase, Project

DIMS = {"agent_version": "Agent version", "prompt_version": "Prompt version", "phase": "Phase"}


def utc_today() -> date:
    # Run rollups are by UTC day, so the pages' windows are too.
    return timezone.now().astimezone(UTC).date()


@dataclass(frozen=True)
class Window:
    days: int
    start_day: date
    end_day: date


def traces_url(project: Project, **params) -> str:
    return f"{reverse('trace-list')}?" + urlencode({"project": project.slug, **params})


def compare_url(project: Project, *, agent: str) -> str:
    return f"{reverse('agent-compare')}?" + urlencode({"project": project.slug, "agent": agent})


def _declared_kpis(project: Project) -> list[Kpi]:
    return list(Kpi.objects.filter(project=project).order_by("name"))


# ------------------------------------------------------------------ agents


def _current_versions(rows) -> dict[str, str]:
    """Newest agent_version per agent: the one seen on the latest day (most runs on ties)."""
    best: dict[str, tuple] = {}
    for day, key, fig in rows:
        agent, version = key
        if not version:
            continue
        rank = (day, fig.runs)
        if agent not in best or rank > best[agent][0]:
            best[agent] = (rank, version)
    return {agent: v for agent, (_rank, v) in best.items()}


def agents_page_read(*, project: Project, window: Window) -> list[dict]:
    """One row per agent that ran in the window: phase, version, figures, KPI lifts against
    each KPI's baseline, promotion readiness and the production readiness checklist
    (`rollouts.extensions`). A fixed number of queries, however many agents."""
    start_day, end_day = window.start_day, window.end_day
    criteria = list(PromotionCriteria.objects.filter(project=project))
    # Readiness reads each criteria's own window (ending today), so load the widest.
    longest = max([window.days, *(max(int(c.window_days or 1), 1) for c in criteria)])
    rows = RunRows.load(
        project_id=project.pk, start_day=end_day - timedelta(days=longest - 1), end_day=end_day
    )
    in_window = {"start_day": start_day, "end_day": end_day}
    by_agent = rows.figures(group_by=("agent",), **in_window)
    by_phase = rows.figures(group_by=("agent", "phase"), **in_window)
    versions = _current_versions(rows.series(group_by=("agent", "agent_version"), **in_window))
    declared_phase: dict[str, str] = {}
    for ap in AgentPhase.objects.filter(project=project, since__lte=timezone.now()).order_by(
        "agent", "-since"
    ):
        declared_phase.setdefault(ap.agent, ap.phase)
    declared_kpis = _declared_kpis(project)
    order = version_order(project_id=project.pk)
    agents = [a for (a,) in by_agent if a]
    # Production readiness over the page's window, and over each criteria window that
    # requires readiness items: one read per window, for every agent at once.
    checklists = agent_checklists(
        project=project, agents=agents, start_day=start_day, end_day=end_day
    )
    required: dict[int, list[str]] = {}
    for c in criteria:
        if c.require_readiness and c.agent in checklists:
            required.setdefault(max(int(c.window_days or 1), 1), []).append(c.agent)
    by_window: dict[int, dict[str, list]] = {
        days: (
            checklists
            if days == window.days
            else agent_checklists(
                project=project,
                agents=sorted(set(names)),
                start_day=end_day - timedelta(days=days - 1),
                end_day=end_day,
            )
        )
        for days, names in required.items()
    }
    result = []
    for (agent,), fig in sorted(by_agent.items(), key=lambda kv: -kv[1].runs):
        if not agent:
            continue
        items = checklists.get(agent, [])
        reported = sorted(
            ((f.runs, phase) for (a, phase), f in by_phase.items() if a == agent and phase),
            reverse=True,
        )
        phase = declared_phase.get(agent) or (reported[0][1] if reported else "")
        version = versions.get(agent, "")
        lifts = []
        for kpi in declared_kpis:
            comparison = baseline_for(
                kpi=kpi,
                agent=agent,
                project_id=project.pk,
                current_version=version,
                versions=order,
            )
            lift = None
            if comparison is not None and version:
                lift = rows.lift(
                    kpi=kpi,
                    agent=agent,
                    treatment=comparison.treatment,
                    baseline=comparison.baseline,
                    **in_window,
                )
            lifts.append({"kpi": kpi, "lift": lift, "comparison": comparison})
        result.append(
            {
                "agent": agent,
                "phase": phase,
                "phase_source": "declared" if agent in declared_phase else "reported",
                "version": version,
                "fig": fig,
                "exception": rate_estimate(fig.exception),
                "intervention": rate_estimate(fig.intervention),
                "evals": [(n, mean_estimate(s)) for n, s in sorted(fig.evals.items())],
                "lifts": lifts,
                "readiness": readiness_for_agent(
                    project_id=project.pk,
                    agent=agent,
                    today=end_day,
                    phase=phase,
                    version=version,
                    criteria=[c for c in criteria if c.agent == agent],
                    rows=rows,
                    kpis=declared_kpis,
                    versions=order,
                    checklists={
                        days: lists[agent] for days, lists in by_window.items() if agent in lists
                    },
                ),
                "checklist": items,
                "checklist_met": sum(1 for i in items if i.met),
                "traces_url": traces_url(project, agent=agent),
                "compare_url": compare_url(project, agent=agent),
            }
        )
    return result


# ------------------------------------------------------------------ KPI lift


def _baseline_group(kpi: Kpi, dim: str, groups: list[str]) -> str:
    if dim == "phase":
        want = BASELINE_PHASE.get(kpi.baseline)
        # "Previous version" means nothing across phases: shadow, else the human control.
        for phase in (want, Phase.SHADOW, Phase.HUMAN):
            if phase in groups:
                return phase
        return groups[0] if groups else ""
    # Previous version: groups come oldest first, so the one before the newest.
    return groups[-2] if len(groups) >= 2 else (groups[0] if groups else "")


def kpi_page_read(*, project: Project, window: Window, dim: str, agent: str) -> dict:
    """Each declared KPI by group of `dim` for one agent (the busiest when none is named),
    with intervals, lift against the KPI's baseline group, and lift per day. Two queries."""
    start_day, end_day = window.start_day, window.end_day
    rows = RunRows.load(project_id=project.pk, start_day=start_day, end_day=end_day)
    figures = rows.figures(group_by=("agent", dim))
    agents = sorted({a for (a, _g) in figures if a})
    if not agent and agents:
        agent = max(agents, key=lambda a: sum(f.runs for (x, _g), f in figures.items() if x == a))
    groups_fig = {g: f for (a, g), f in figures.items() if a == agent and g}
    first_seen: dict[str, date] = {}
    daily: dict[date, dict[str, object]] = {}
    for day, key, fig in rows.series(group_by=(dim,), agent=agent):
        g = key[0] if key else ""
        if not g:
            continue
        first_seen[g] = min(first_seen.get(g, day), day)
        daily.setdefault(day, {})[g] = fig
    groups = sorted(groups_fig, key=lambda g: (first_seen.get(g, end_day), g))
    sections = []
    for kpi in _declared_kpis(project):
        percent = kpi.kind == Kpi.Kind.RATE
        estimates = [(g, kpi_estimate(kpi, groups_fig[g])) for g in groups]
        base = _baseline_group(kpi, dim, groups)
        lifts = [(g, kpi_diff(kpi, groups_fig[g], groups_fig[base])) for g in groups if g != base]
        over_time: dict[str, list] = {}
        for day in sorted(daily):
            base_fig = daily[day].get(base)
            for g in groups:
                if g == base or g not in daily[day] or base_fig is None:
                    continue
                lift = kpi_diff(kpi, daily[day][g], base_fig)
                # A day's lift is drawn only with its interval.
                if lift.absolute is not None and lift.absolute_low is not None:
                    over_time.setdefault(f"{g} − {base}", []).append(
                        (day, lift.absolute, lift.absolute_low, lift.absolute_high)
                    )
        title = kpi.label or kpi.name
        axis = f"{title}{f' ({kpi.unit})' if kpi.unit and not percent else ''}"
        sections.append(
            {
                "kpi": kpi,
                "estimates": estimates,
                "baseline": base,
                "lifts": lifts,
                "figure": charts.interval_bar_figure(
                    labels=[g for g, _e in estimates],
                    values=[e.value for _g, e in estimates],
                    lows=[e.low for _g, e in estimates],
                    highs=[e.high for _g, e in estimates],
                    ns=[e.n for _g, e in estimates],
                    axis_title=axis,
                    percent=percent,
                ),
                "time_figure": (
                    charts.lift_over_time_figure(
                        series=over_time, axis_title="Lift per day", percent=percent
                    )
                    if over_time
                    else None
                ),
            }
        )
    return {"sections": sections, "agents": agents, "agent": agent}


# ------------------------------------------------------------------ version comparison


def _with_text(row: dict, unit: str = "") -> dict:
    """The row's difference written with its sign and unit (pp for rates, `unit` for means)."""
    row["lift_text"] = row["lift"].summary(unit=unit)
    return row


def _signed(diff: float, text) -> str:
    """A point difference: its sign, then its absolute value written by `text`."""
    if diff == 0:
        return text(0)
    return ("+" if diff > 0 else "−") + text(abs(diff))


def _point_diff(va, vb, kind: str) -> str:
    """A − B of two point figures in their unit ($ or a duration); "" when one is missing."""
    if va is None or vb is None:
        return ""
    if kind == "usd":
        return _signed(va - vb, display.usd)
    return _signed(float(va) - float(vb), display.duration)


def _mean_diff_row(label, a: MeanStats | None, b: MeanStats | None, higher_is_better=True):
    return _with_text(
        {
            "label": label,
            "a": mean_estimate(a),
            "b": mean_estimate(b),
            "lift": welch_diff(
                a or MeanStats(0, 0.0, 0.0),
                b or MeanStats(0, 0.0, 0.0),
                higher_is_better=higher_is_better,
            ),
        }
    )


def _rate_diff_row(label, a: RateStats | None, b: RateStats | None, higher_is_better=False):
    return _with_text(
        {
            "label": label,
            "a": rate_estimate(a),
            "b": rate_estimate(b),
            "lift": newcombe_diff(
                a or RateStats(0, 0), b or RateStats(0, 0), higher_is_better=higher_is_better
            ),
        }
    )


def compare_page_read(
    *, project: Project, window: Window, agent: str, dim: str, a: str, b: str
) -> dict | None:
    """Versions `a` and `b` of an agent side by side, each figure with its difference and
    interval (the newest two versions when not named). None when the agent has no runs in
    the window. Two queries."""
    rows = RunRows.load(
        project_id=project.pk, start_day=window.start_day, end_day=window.end_day, agent=agent
    )
    figures = rows.figures(group_by=(dim,))
    if not any(f.runs for f in figures.values()):
        return None
    versions = sorted(k[0] for k in figures if k and k[0])
    a = a or (versions[-1] if versions else "")
    b = b or (versions[-2] if len(versions) > 1 else a)
    fa, fb = figures.get((a,)), figures.get((b,))
    table = [
        _rate_diff_row("Exception rate", fa and fa.exception, fb and fb.exception),
        _rate_diff_row("Intervention rate", fa and fa.intervention, fb and fb.intervention),
    ]
    eval_names = sorted(set(fa.evals if fa else {}) | set(fb.evals if fb else {}))
    for name in eval_names:
        table.append(
            _mean_diff_row(f"Quality: {name}", fa and fa.evals.get(name), fb and fb.evals.get(name))
        )
    for kpi in _declared_kpis(project):
        table.append(
            _with_text(
                {
                    "label": f"KPI: {kpi.label or kpi.name}",
                    "a": kpi_estimate(kpi, fa),
                    "b": kpi_estimate(kpi, fb),
                    "lift": kpi_diff(kpi, fa, fb),
                },
                unit=kpi.unit,
            )
        )
    # Percentiles and cost per run come from histograms and sums: no spread, no interval.
    point_rows = [
        (label, va, vb, kind, _point_diff(va, vb, kind))
        for label, va, vb, kind in (
            ("Cycle time p50", fa and fa.cycle_p50_ms, fb and fb.cycle_p50_ms, "ms"),
            ("Cycle time p95", fa and fa.cycle_p95_ms, fb and fb.cycle_p95_ms, "ms"),
            ("Cost per run", fa and fa.cost_per_run, fb and fb.cost_per_run, "usd"),
        )
    ]
    return {
        "versions": versions,
        "a": a,
        "b": b,
        "fa": fa,
        "fb": fb,
        "rows": table,
        "point_rows": point_rows,
    }
