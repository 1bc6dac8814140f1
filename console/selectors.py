"""What the Overview shows: one project's figures across the apps, read in a fixed number of
queries."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from django.urls import reverse

from rollouts import charts
from rollouts.estimates import rate_estimate
from rollouts.pages import traces_url
from rollouts.selectors import RunRows
from traces.models import Trace, TraceStatus
from traces.selectors import rollup_totals

SPARK_DAYS = 14
TOP_RUNS = 5


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def overview_cards(*, project, today: date, received_today: int = 0) -> tuple[list[dict], bool]:
    """The Overview's cards (cost, runs, exception rate, cycle time, intervention rate), each
    with a 14-day trend, and whether the last 7 days had runs. Three queries.

    The run figures come from the run rollups, folded every minute, while cost comes from
    the span rollups: with `received_today` runs received and none folded yet, the runs
    card says the figures are warming up rather than showing 0."""
    week_start = today - timedelta(days=6)
    spark_start = today - timedelta(days=SPARK_DAYS - 1)
    rows = RunRows.load(project_id=project.pk, start_day=spark_start, end_day=today)
    today_fig = rows.figures(start_day=today, end_day=today).get(())
    week_fig = rows.figures(start_day=week_start, end_day=today).get(())
    series = {day: fig for day, _key, fig in rows.series()}
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

    def spark(attr, fmt=",.2f", scale=1.0, prefix="", suffix=""):
        values = []
        for d in days:
            fig = series.get(d)
            v = attr(fig) if fig is not None else None
            values.append(v * scale if v is not None else None)
        return charts.trend_figure(
            days=days,
            values=values,
            name="",
            hoverformat=fmt,
            tickprefix=prefix,
            ticksuffix=suffix,
        )

    since = _day_start(week_start).strftime("%Y-%m-%dT%H:%M:%SZ")
    agents_url = reverse("agents") + "?" + urlencode({"project": project.slug})
    cards = [
        {
            "id": "cost",
            "label": "Cost",
            "value": cost_today,
            "kind": "usd",
            "hint": "today",
            "second": cost_month,
            "second_hint": "this month",
            "figure": spark(lambda f: float(f.cost_usd or 0), "$,.2f", prefix="$"),
            "link": reverse("cost") + "?" + urlencode({"project": project.slug, "window": "30d"}),
            "link_text": "Cost explorer · budgets",
        },
        {
            "id": "runs",
            "label": "Runs",
            "value": today_fig.runs if today_fig else 0,
            "warming": received_today if not (today_fig and today_fig.runs) else 0,
            "kind": "int",
            "hint": "today",
            "second": week_fig.runs if week_fig else 0,
            "second_hint": "last 7 days",
            "figure": spark(lambda f: f.runs, ",.0f"),
            "link": traces_url(project, since=since),
            "link_text": "Traces",
        },
        {
            "id": "exceptions",
            "label": "Exception rate",
            "estimate": rate_estimate(week_fig.exception if week_fig else None),
            "hint": "last 7 days",
            "figure": spark(lambda f: f.exception.rate, ".1f", 100.0, suffix=" %"),
            "link": traces_url(project, since=since, status="error"),
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
            "figure": spark(lambda f: (f.cycle_p95_ms or 0) / 1000.0 or None, ",.2f", suffix=" s"),
            "link": agents_url,
            "link_text": "Agents",
        },
        {
            "id": "interventions",
            "label": "Intervention rate",
            "estimate": rate_estimate(week_fig.intervention if week_fig else None),
            "hint": "last 7 days",
            "figure": spark(lambda f: f.intervention.rate, ".1f", 100.0, suffix=" %"),
            "link": agents_url,
            "link_text": "Agents",
        },
    ]
    return cards, bool(week_fig and week_fig.runs)


def runs_of_the_day(*, project, today: date) -> dict:
    """Today's (UTC) costliest, slowest and failed runs, `TOP_RUNS` each, and how many runs
    were received today. Four queries on the traces' (project, start) index."""
    qs = Trace.objects.filter(
        project=project,
        started_at__gte=_day_start(today),
        started_at__lt=_day_start(today + timedelta(days=1)),
    ).only(
        "trace_id",
        "name",
        "agent",
        "agent_version",
        "started_at",
        "duration_ms",
        "cost_usd",
        "unpriced_count",
        "status",
        "error_count",
        "project_id",
    )
    since = _day_start(today).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "received": qs.count(),
        "lists": [
            {
                "id": "costliest",
                "title": "Costliest",
                "runs": list(
                    qs.filter(cost_usd__gt=0).order_by("-cost_usd", "-started_at")[:TOP_RUNS]
                ),
                "link": traces_url(project, since=since, order="cost"),
                "empty": "No priced run today.",
            },
            {
                "id": "slowest",
                "title": "Slowest",
                "runs": list(
                    qs.exclude(status=TraceStatus.INCOMPLETE).order_by(
                        "-duration_ms", "-started_at"
                    )[:TOP_RUNS]
                ),
                "link": traces_url(
                    project,
                    since=since,
                    order="duration",
                ),
                "empty": "No finished run today.",
            },
            {
                "id": "failed",
                "title": "Failed",
                "runs": list(
                    qs.filter(status=TraceStatus.ERROR).order_by("-started_at")[:TOP_RUNS]
                ),
                "link": traces_url(project, since=since, status="error"),
                "empty": "No failed run today.",
            },
        ],
    }
