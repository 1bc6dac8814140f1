"""Overview, agents, KPI lift and version comparison pages.

Every figure comes from ``traces.kpis`` (run rollups by day); these views pick the
project, the window and the groups, and render. A rate or a mean is never shown without
its n and its interval, or the words "not enough data".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from traces import charts_kpi
from traces.models import AgentPhase, Kpi
from traces.readiness import readiness_for_agent
from traces.selectors import project_from_query, rollup_totals
from traces.stats import (
    MIN_SAMPLES,
    NOT_ENOUGH_DATA,
    MeanStats,
    RateStats,
    mean_interval,
    newcombe_diff,
    welch_diff,
    wilson_interval,
)

WINDOWS = {"7": 7, "14": 14, "30": 30, "90": 90}
DIMS = {"agent_version": "Agent version", "prompt_version": "Prompt version", "phase": "Phase"}
SPARK_DAYS = 14


def _kpis():
    # Imported late: the module is owned by the rollup side and the pages must still load
    # (and tests patch it) while it changes.
    from traces import kpis

    return kpis


def _project(request, *, switch: str):
    projects, project = project_from_query(user=request.user, slug=request.GET.get("project", ""))
    context = {
        "projects": projects,
        "nav_projects": projects,
        "project": project,
        "current_project": project.slug if project else "",
        "switch_url": reverse(switch),
    }
    return project, context


def _utc_today() -> date:
    # Run rollups are by UTC day, so the windows are too.
    return timezone.now().astimezone(UTC).date()


def _window(request) -> tuple[int, date, date]:
    days = WINDOWS.get(request.GET.get("days", ""), 14)
    today = _utc_today()
    return days, today - timedelta(days=days - 1), today


# ------------------------------------------------------------------ figures in words


@dataclass
class Estimate:
    """A rate or mean with its n and interval, ready for a template."""

    value: float | None
    low: float | None
    high: float | None
    n: int
    percent: bool = False
    unit: str = ""

    @property
    def enough(self) -> bool:
        return self.n >= MIN_SAMPLES and self.value is not None

    def _fmt(self, x: float) -> str:
        if self.percent:
            return f"{x * 100:.1f} %"
        if abs(x) >= 100:
            return f"{x:,.0f}{self.unit}"
        return f"{x:,.3g}{self.unit}"

    @property
    def text(self) -> str:
        return "—" if self.value is None else self._fmt(self.value)

    @property
    def interval_text(self) -> str:
        if self.value is None:
            return "no runs"
        if self.low is None or self.high is None:
            return "no interval"
        return f"95 % CI {self._fmt(self.low)} – {self._fmt(self.high)}"


def rate_estimate(rate: RateStats | None) -> Estimate:
    if rate is None or rate.n == 0:
        return Estimate(None, None, None, 0, percent=True)
    low, high = wilson_interval(rate)
    return Estimate(rate.rate, low, high, rate.n, percent=True)


def mean_estimate(stats: MeanStats | None, unit: str = "") -> Estimate:
    if stats is None or stats.n == 0:
        return Estimate(None, None, None, 0, unit=unit)
    low, high = mean_interval(stats)
    finite = math.isfinite(low) and math.isfinite(high)
    return Estimate(
        stats.mean, low if finite else None, high if finite else None, stats.n, unit=unit
    )


def kpi_estimate(kpi: Kpi, fig) -> Estimate:
    if fig is None:
        return Estimate(None, None, None, 0, percent=kpi.kind == Kpi.Kind.RATE)
    if kpi.kind == Kpi.Kind.RATE:
        return rate_estimate(fig.kpi_rates.get(kpi.name))
    unit = f" {kpi.unit}" if kpi.unit else ""
    return mean_estimate(fig.kpis.get(kpi.name), unit=unit)


def kpi_diff(kpi: Kpi, a, b):
    """Lift of group a over group b for one KPI, from their figures."""
    if kpi.kind == Kpi.Kind.RATE:
        return newcombe_diff(
            (a and a.kpi_rates.get(kpi.name)) or RateStats(0, 0),
            (b and b.kpi_rates.get(kpi.name)) or RateStats(0, 0),
            higher_is_better=kpi.higher_is_better,
        )
    return welch_diff(
        (a and a.kpis.get(kpi.name)) or MeanStats(0, 0.0, 0.0),
        (b and b.kpis.get(kpi.name)) or MeanStats(0, 0.0, 0.0),
        higher_is_better=kpi.higher_is_better,
    )


def _traces_url(project, **params) -> str:
    return f"{reverse('trace-list')}?" + urlencode({"project": project.slug, **params})


def _compare_url(project, *, agent: str) -> str:
    return f"{reverse('agent-compare')}?" + urlencode({"project": project.slug, "agent": agent})


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


# ------------------------------------------------------------------ overview


def overview_page(request):
    project, context = _project(request, switch="overview")
    context["nav"] = "overview"
    if project is None:
        return render(request, "traces/kpi/overview.html", context)
    kpis = _kpis()
    today = _utc_today()
    week_start = today - timedelta(days=6)
    spark_start = today - timedelta(days=SPARK_DAYS - 1)
    today_fig = kpis.run_figures(
        project_id=project.pk, start_day=today, end_day=today, group_by=()
    ).get(())
    week_fig = kpis.run_figures(
        project_id=project.pk, start_day=week_start, end_day=today, group_by=()
    ).get(())
    series = {
        day: fig
        for day, _key, fig in kpis.run_series(
            project_id=project.pk, start_day=spark_start, end_day=today
        )
    }
    days = [spark_start + timedelta(days=i) for i in range(SPARK_DAYS)]
    tomorrow = _day_start(today + timedelta(days=1))
    cost_today = rollup_totals(
        project_id=project.pk, start=_day_start(today), end=tomorrow, with_latency=False
    ).cost_usd
    cost_month = rollup_totals(
        project_id=project.pk,
        start=_day_start(today.replace(day=1)),
        end=tomorrow,
        with_latency=False,
    ).cost_usd

    def spark(attr, fmt=",.2f", scale=1.0):
        values = []
        for d in days:
            fig = series.get(d)
            v = attr(fig) if fig is not None else None
            values.append(v * scale if v is not None else None)
        return charts_kpi.sparkline_figure(days=days, values=values, name="", hoverformat=fmt)

    since = _day_start(week_start).strftime("%Y-%m-%dT%H:%M:%SZ")
    cards = [
        {
            "id": "cost",
            "label": "Cost",
            "value": cost_today,
            "kind": "usd",
            "hint": "today",
            "second": cost_month,
            "second_hint": "this month",
            "figure": spark(lambda f: float(f.cost_usd or 0), "$,.2f"),
            "link": reverse("cost") + "?" + urlencode({"project": project.slug, "window": "30d"}),
            "link_text": "Cost explorer · budgets",
        },
        {
            "id": "runs",
            "label": "Runs",
            "value": today_fig.runs if today_fig else 0,
            "kind": "int",
            "hint": "today",
            "second": week_fig.runs if week_fig else 0,
            "second_hint": "last 7 days",
            "figure": spark(lambda f: f.runs, ",.0f"),
            "link": _traces_url(project, since=since),
            "link_text": "Traces",
        },
        {
            "id": "exceptions",
            "label": "Exception rate",
            "estimate": rate_estimate(week_fig.exception if week_fig else None),
            "hint": "last 7 days",
            "figure": spark(lambda f: f.exception.rate, ".1f", 100.0),
            "link": _traces_url(project, since=since, status="error"),
            "link_text": "Failed runs",
        },
        {
            "id": "p95",
            "label": "Cycle time p95",
            "value": week_fig.cycle_p95_ms if week_fig else None,
            "kind": "ms",
            "hint": "last 7 days",
            "second": week_fig.cycle_p50_ms if week_fig else None,
            "second_hint": "p50",
            "figure": spark(lambda f: (f.cycle_p95_ms or 0) / 1000.0 or None, ",.2f"),
            "link": reverse("agents") + "?" + urlencode({"project": project.slug}),
            "link_text": "Agents",
        },
        {
            "id": "interventions",
            "label": "Intervention rate",
            "estimate": rate_estimate(week_fig.intervention if week_fig else None),
            "hint": "last 7 days",
            "figure": spark(lambda f: f.intervention.rate, ".1f", 100.0),
            "link": reverse("agents") + "?" + urlencode({"project": project.slug}),
            "link_text": "Agents",
        },
    ]
    context.update({"cards": cards, "today": today, "has_runs": bool(week_fig and week_fig.runs)})
    return render(request, "traces/kpi/overview.html", context)


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


def agents_page(request):
    project, context = _project(request, switch="agents")
    context["nav"] = "agents"
    if project is None:
        return render(request, "traces/kpi/agents.html", context)
    kpis = _kpis()
    days, start_day, end_day = _window(request)
    by_agent = kpis.run_figures(
        project_id=project.pk, start_day=start_day, end_day=end_day, group_by=("agent",)
    )
    by_phase = kpis.run_figures(
        project_id=project.pk, start_day=start_day, end_day=end_day, group_by=("agent", "phase")
    )
    versions = _current_versions(
        kpis.run_series(
            project_id=project.pk,
            start_day=start_day,
            end_day=end_day,
            group_by=("agent", "agent_version"),
        )
    )
    declared_phase: dict[str, str] = {}
    for ap in AgentPhase.objects.filter(project=project, since__lte=timezone.now()).order_by(
        "agent", "-since"
    ):
        declared_phase.setdefault(ap.agent, ap.phase)
    declared_kpis = list(Kpi.objects.filter(project=project).order_by("name"))
    rows = []
    for (agent,), fig in sorted(by_agent.items(), key=lambda kv: -kv[1].runs):
        if not agent:
            continue
        reported = sorted(
            ((f.runs, phase) for (a, phase), f in by_phase.items() if a == agent and phase),
            reverse=True,
        )
        phase = declared_phase.get(agent) or (reported[0][1] if reported else "")
        version = versions.get(agent, "")
        lifts = []
        for kpi in declared_kpis:
            comparison = kpis.baseline_for(
                kpi=kpi, agent=agent, project_id=project.pk, current_version=version
            )
            if comparison is None or not version:
                lifts.append({"kpi": kpi, "lift": None, "comparison": comparison})
                continue
            lift = kpis.kpi_lift(
                project_id=project.pk,
                kpi=kpi,
                agent=agent,
                start_day=start_day,
                end_day=end_day,
                treatment=comparison.treatment,
                baseline=comparison.baseline,
            )
            lifts.append({"kpi": kpi, "lift": lift, "comparison": comparison})
        rows.append(
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
                    project_id=project.pk, agent=agent, today=end_day, phase=phase, version=version
                ),
                "traces_url": _traces_url(project, agent=agent),
                "compare_url": _compare_url(project, agent=agent),
            }
        )
    context.update(
        {
            "rows": rows,
            "days": days,
            "windows": list(WINDOWS),
            "start_day": start_day,
            "end_day": end_day,
        }
    )
    return render(request, "traces/kpi/agents.html", context)


# ------------------------------------------------------------------ KPI lift


def _baseline_group(kpi: Kpi, dim: str, groups: list[str]) -> str:
    if dim == "phase":
        want = {Kpi.Baseline.SHADOW: "shadow", Kpi.Baseline.CONTROL: "human"}.get(kpi.baseline)
        # "Previous version" means nothing across phases: shadow, else the human control.
        for phase in (want, "shadow", "human"):
            if phase in groups:
                return phase
        return groups[0] if groups else ""
    # Previous version: groups come oldest first, so the one before the newest.
    return groups[-2] if len(groups) >= 2 else (groups[0] if groups else "")


def kpi_page(request):
    project, context = _project(request, switch="kpis")
    context["nav"] = "kpis"
    if project is None:
        return render(request, "traces/kpi/kpis.html", context)
    kpis = _kpis()
    days, start_day, end_day = _window(request)
    dim = request.GET.get("dim", "agent_version")
    if dim not in DIMS:
        dim = "agent_version"
    agent = request.GET.get("agent", "").strip()
    figures = kpis.run_figures(
        project_id=project.pk, start_day=start_day, end_day=end_day, group_by=("agent", dim)
    )
    agents = sorted({a for (a, _g) in figures if a})
    if not agent and agents:
        agent = max(agents, key=lambda a: sum(f.runs for (x, _g), f in figures.items() if x == a))
    groups_fig = {g: f for (a, g), f in figures.items() if a == agent and g}
    series = kpis.run_series(
        project_id=project.pk, start_day=start_day, end_day=end_day, agent=agent, group_by=(dim,)
    )
    first_seen: dict[str, date] = {}
    daily: dict[date, dict[str, object]] = {}
    for day, key, fig in series:
        g = key[0] if key else ""
        if not g:
            continue
        first_seen[g] = min(first_seen.get(g, day), day)
        daily.setdefault(day, {})[g] = fig
    groups = sorted(groups_fig, key=lambda g: (first_seen.get(g, end_day), g))
    sections = []
    for kpi in Kpi.objects.filter(project=project).order_by("name"):
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
                "figure": charts_kpi.interval_bar_figure(
                    labels=[g for g, _e in estimates],
                    values=[e.value for _g, e in estimates],
                    lows=[e.low for _g, e in estimates],
                    highs=[e.high for _g, e in estimates],
                    ns=[e.n for _g, e in estimates],
                    axis_title=axis,
                    percent=percent,
                ),
                "time_figure": (
                    charts_kpi.lift_over_time_figure(
                        series=over_time, axis_title="Lift per day", percent=percent
                    )
                    if over_time
                    else None
                ),
            }
        )
    context.update(
        {
            "sections": sections,
            "agents": agents,
            "agent": agent,
            "dim": dim,
            "dims": DIMS,
            "dim_label": DIMS[dim],
            "days": days,
            "windows": list(WINDOWS),
            "start_day": start_day,
            "end_day": end_day,
            "min_samples": MIN_SAMPLES,
        }
    )
    return render(request, "traces/kpi/kpis.html", context)


# ------------------------------------------------------------------ version comparison


def _mean_diff_row(label, a: MeanStats | None, b: MeanStats | None, higher_is_better=True):
    return {
        "label": label,
        "a": mean_estimate(a),
        "b": mean_estimate(b),
        "lift": welch_diff(
            a or MeanStats(0, 0.0, 0.0),
            b or MeanStats(0, 0.0, 0.0),
            higher_is_better=higher_is_better,
        ),
    }


def _rate_diff_row(label, a: RateStats | None, b: RateStats | None, higher_is_better=False):
    return {
        "label": label,
        "a": rate_estimate(a),
        "b": rate_estimate(b),
        "lift": newcombe_diff(
            a or RateStats(0, 0), b or RateStats(0, 0), higher_is_better=higher_is_better
        ),
    }


def compare_redirect(request, agent: str):
    query = request.GET.copy()
    query["agent"] = agent
    return redirect(f"{reverse('agent-compare')}?{query.urlencode()}", permanent=True)


def compare_page(request):
    project, context = _project(request, switch="agents")
    context["nav"] = "agents"
    if project is None:
        raise Http404("No such project")
    agent = request.GET.get("agent", "")
    if not agent:
        raise Http404("No agent named")
    kpis = _kpis()
    days, start_day, end_day = _window(request)
    dim = request.GET.get("dim", "agent_version")
    if dim not in ("agent_version", "prompt_version"):
        dim = "agent_version"
    figures = kpis.run_figures(
        project_id=project.pk, start_day=start_day, end_day=end_day, group_by=(dim,), agent=agent
    )
    if not any(f.runs for f in figures.values()):
        raise Http404("No runs of this agent in the window")
    versions = sorted(k[0] for k in figures if k and k[0])
    a = request.GET.get("a", "") or (versions[-1] if versions else "")
    b = request.GET.get("b", "") or (versions[-2] if len(versions) > 1 else a)
    fa, fb = figures.get((a,)), figures.get((b,))
    rows = [
        _rate_diff_row("Exception rate", fa and fa.exception, fb and fb.exception),
        _rate_diff_row("Intervention rate", fa and fa.intervention, fb and fb.intervention),
    ]
    eval_names = sorted(set(fa.evals if fa else {}) | set(fb.evals if fb else {}))
    for name in eval_names:
        rows.append(
            _mean_diff_row(f"Quality: {name}", fa and fa.evals.get(name), fb and fb.evals.get(name))
        )
    for kpi in Kpi.objects.filter(project=project).order_by("name"):
        rows.append(
            {
                "label": f"KPI: {kpi.label or kpi.name}",
                "a": kpi_estimate(kpi, fa),
                "b": kpi_estimate(kpi, fb),
                "lift": kpi_diff(kpi, fa, fb),
            }
        )
    # Percentiles and cost per run come from histograms and sums: no spread, no interval.
    point_rows = [
        ("Cycle time p50", fa and fa.cycle_p50_ms, fb and fb.cycle_p50_ms, "ms"),
        ("Cycle time p95", fa and fa.cycle_p95_ms, fb and fb.cycle_p95_ms, "ms"),
        ("Cost per run", fa and fa.cost_per_run, fb and fb.cost_per_run, "usd"),
    ]
    context.update(
        {
            "agent": agent,
            "dim": dim,
            "dim_label": DIMS[dim],
            "versions": versions,
            "a": a,
            "b": b,
            "fa": fa,
            "fb": fb,
            "rows": rows,
            "point_rows": point_rows,
            "days": days,
            "windows": list(WINDOWS),
            "start_day": start_day,
            "end_day": end_day,
            "not_enough": NOT_ENOUGH_DATA,
        }
    )
    return render(request, "traces/kpi/compare.html", context)
