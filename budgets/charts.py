"""Plotly figures as plain data (dicts of lists of floats and strings).

Views hand them to the page with `json_script`; static/agentops/charts.js draws them
with the plotly.js served from /static/vendor/. Plotly shows date strings as they are,
so every time is written as a wall-clock string in the zone the page names (the
envelope's for a budget, the console's for the cost explorer).
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from decimal import Decimal

from django.urls import reverse

from budgets.formatting import format_value
from budgets.models import BudgetEnvelope
from budgets.selectors import CUMULATIVE_METRICS, CostSeries, UsageSeries
from traces import display
from traces.charts_style import CONFIG, FONT, axis  # one look for every chart

Metric = BudgetEnvelope.Metric

# The console's palette (console.css): accent, danger, warn, muted.
ACCENT = "#2c59d6"
DANGER = "#c0312b"
WARN = "#c27a00"
MUTED = "#8a93a0"
FORECAST = "#7857e8"
# Tableau 10: distinct, readable for most colour-vision deficiencies.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
)
OTHER_COLOUR = "#bab0ac"
MAX_STACKED = len(PALETTE)  # more groups than colours fold into "other"


def local(dt: datetime, tz: tzinfo) -> str:
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def _layout(*, height: int = 300, **extra) -> dict:
    layout = {
        "height": height,
        "margin": {"l": 8, "r": 12, "t": 12, "b": 8},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": FONT,
        "hovermode": "x unified",
        "hoverlabel": {"font": {"size": 12}},
        "showlegend": True,
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        "xaxis": axis(type="date"),
        "yaxis": axis(rangemode="tozero"),
    }
    layout.update(extra)
    return layout


def _figure(data: list[dict], layout: dict) -> dict:
    return {"data": data, "layout": layout, "config": CONFIG}


def _value_format(metric: str, limit: float) -> dict:
    """Axis prefix/suffix and d3 hover format for a metric's unit."""
    if metric in (Metric.COST, Metric.RUN_COST):
        return {"tickprefix": "$", "hoverformat": "$,.2f" if limit >= 10 else "$,.4~f"}
    if metric == Metric.TOKENS:
        return {"tickformat": "~s", "hoverformat": ",.0f"}
    if metric in (Metric.P95_LATENCY, Metric.RUN_DURATION):
        return {"ticksuffix": " s", "hoverformat": ",.2f"}
    return {"ticksuffix": " %", "hoverformat": ".1f"}


USAGE_NAMES = {
    Metric.COST: "Cost so far",
    Metric.TOKENS: "Tokens so far",
    Metric.P95_LATENCY: "p95 run latency so far",
    Metric.ERROR_RATE: "Error rate so far",
    Metric.RUN_COST: "Cost of a run",
    Metric.RUN_DURATION: "Duration of a run",
}


def envelope_usage_figure(
    *,
    envelope: BudgetEnvelope,
    series: UsageSeries,
    start: datetime,
    end: datetime,
    now: datetime,
    tz: tzinfo,
    forecast: Decimal | None = None,
) -> dict:
    """Usage over the period against the limit and threshold lines, with the forecast
    to the period's end (cumulative metrics only)."""
    limit = float(envelope.limit)
    fmt = _value_format(envelope.metric, limit)
    hover_y = fmt.pop("hoverformat")
    x0, x1 = local(start, tz), local(end, tz)
    data: list[dict] = []
    top = limit
    if series.kind == "runs":
        project = envelope.project.slug
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": USAGE_NAMES[envelope.metric],
                "x": [local(at, tz) for at, _ in series.points],
                "y": [v for _, v in series.points],
                "customdata": [
                    reverse("trace-timeline", args=[project, tid]) for tid in series.trace_ids
                ],
                "marker": {
                    "size": 7,
                    "color": [DANGER if v >= limit else ACCENT for _, v in series.points],
                },
                "hovertemplate": f"%{{y:{hover_y}}}<br>click to open the run<extra></extra>",
            }
        )
    else:
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": USAGE_NAMES[envelope.metric],
                "x": [local(at, tz) for at, _ in series.points],
                "y": [v for _, v in series.points],
                "line": {"color": ACCENT, "width": 2},
                "fill": "tozeroy" if series.kind == "cumulative" else "none",
                "fillcolor": "rgba(44,89,214,0.08)",
                "hovertemplate": f"%{{y:{hover_y}}}<extra>usage</extra>",
            }
        )
    if series.points:
        top = max(top, max(v for _, v in series.points))
    if (
        forecast is not None
        and envelope.metric in CUMULATIVE_METRICS
        and series.points
        and now < end
    ):
        last_at, last_value = series.points[-1]
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"Forecast at this pace: {format_value(envelope.metric, forecast)}",
                "x": [local(last_at, tz), x1],
                "y": [last_value, float(forecast)],
                "line": {"color": FORECAST, "width": 2, "dash": "dot"},
                "hovertemplate": f"%{{y:{hover_y}}}<extra>forecast</extra>",
            }
        )
        top = max(top, float(forecast))
    data.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": f"Limit {format_value(envelope.metric, envelope.limit)}",
            "x": [x0, x1],
            "y": [limit, limit],
            "line": {"color": DANGER, "width": 1.5},
            "hoverinfo": "skip",
        }
    )
    for pct in sorted({int(t) for t in envelope.thresholds or [] if int(t) != 100}):
        value = limit * pct / 100
        top = max(top, value)
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{pct} % threshold",
                "x": [x0, x1],
                "y": [value, value],
                "line": {"color": WARN if pct < 100 else DANGER, "width": 1, "dash": "dash"},
                "hoverinfo": "skip",
            }
        )
    shapes, annotations = [], []
    if start < now < end:
        x_now = local(now, tz)
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": x_now,
                "x1": x_now,
                "y0": 0,
                "y1": 1,
                "line": {"color": MUTED, "width": 1, "dash": "dot"},
            }
        )
        annotations.append(
            {
                "x": x_now,
                "y": 1,
                "xref": "x",
                "yref": "paper",
                "text": "now",
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "top",
                "xshift": 3,
                "font": {"color": "#596270", "size": 11},
            }
        )
    tz_name = getattr(tz, "key", str(tz))
    layout = _layout(
        height=340,
        xaxis=axis(type="date", range=[x0, x1], title={"text": f"Time ({tz_name})"}),
        yaxis=axis(range=[0, top * 1.1 or 1], **fmt),
        shapes=shapes,
        annotations=annotations,
        hovermode="closest" if series.kind == "runs" else "x unified",
    )
    return _figure(data, layout)


# ------------------------------------------------------------------ cost explorer

HOVER_DATE = {"15m": "%a %b %d, %H:%M", "1h": "%a %b %d, %H:%M", "1d": "%a %b %d, %Y"}


def _stack_groups(series: CostSeries, value) -> list[tuple[str, str, list[float]]]:
    """(name, colour, per-bucket values) of the costliest groups, the rest as "other"."""
    # A group keeps its colour across the charts of a page: it is picked by the
    # group's rank by cost, whichever groups a chart leaves out.
    colour = {name: PALETTE[i] for i, name in enumerate(series.groups[: MAX_STACKED - 1])}
    groups = [g for g in series.groups if value(series.group_totals[g])]
    shown, rest = groups[:MAX_STACKED], groups[MAX_STACKED:]
    if rest:
        shown = groups[: MAX_STACKED - 1]
        rest = groups[MAX_STACKED - 1 :]
    out = []
    for name in shown:
        out.append(
            (
                name,
                colour.get(name, PALETTE[-1]),
                [value(b.groups[name]) if name in b.groups else 0 for b in series.buckets],
            )
        )
    if rest:
        values = [sum(value(b.groups[n]) for n in rest if n in b.groups) for b in series.buckets]
        out.append((f"{len(rest)} more", OTHER_COLOUR, values))
    return out


def _bar_geometry(series: CostSeries) -> tuple[list[str], list[float]]:
    """Bar starts (local wall clock) and widths in ms; a day bar is 23 or 25 hours on a
    DST change."""
    starts = [b.start for b in series.buckets]
    ends = [*starts[1:], series.end]
    if starts and ends[-1] <= starts[-1]:
        ends[-1] = starts[-1] + timedelta(days=1)
    x = [local(s, series.tz) for s in starts]
    widths = [(e - s).total_seconds() * 1000 * 0.92 for s, e in zip(starts, ends, strict=True)]
    return x, widths


def _stacked_bars(series: CostSeries, value, *, hover: str, yaxis: dict, text=None) -> dict:
    """Stacked bars per group; `text` (a value → label function), when given, writes the
    hover labels (the pages' money format) instead of the d3 format `hover`."""
    x, widths = _bar_geometry(series)
    data = [
        {
            "type": "bar",
            "name": name,
            "x": x,
            "y": values,
            "width": widths,
            "offset": 0,
            "marker": {"color": colour, "line": {"width": 0}},
            **(
                {
                    "text": [text(v) for v in values],
                    "textposition": "none",
                    "hovertemplate": "%{text}",
                }
                if text
                else {"hovertemplate": f"%{{y:{hover}}}"}
            ),
        }
        for name, colour, values in _stack_groups(series, value)
    ]
    layout = _layout(
        barmode="stack",
        bargap=0,
        xaxis=axis(type="date", hoverformat=HOVER_DATE[series.bucket], range=_x_range(series)),
        yaxis=axis(rangemode="tozero", **yaxis),
    )
    return _figure(data, layout)


def _x_range(series: CostSeries) -> list[str]:
    return [local(series.start, series.tz), local(series.end, series.tz)]


def cost_figure(series: CostSeries) -> dict:
    return _stacked_bars(
        series,
        lambda g: float(g.cost_usd),
        hover="$,.4~f",
        yaxis={"tickprefix": "$", "tickformat": ",.2~f"},
        text=display.usd,
    )


def tokens_figure(series: CostSeries) -> dict:
    return _stacked_bars(series, lambda g: g.tokens, hover=",.0f", yaxis={"tickformat": "~s"})


def latency_figure(series: CostSeries) -> dict:
    """p50 / p95 / p99 of run duration per bucket, as steps spanning each bucket."""
    x = [local(b.start, series.tz) for b in series.buckets]
    data = []
    # p99 first, so the p95 line draws over it where they meet (few runs per bucket).
    for q, name, colour, dash, width in (
        (0.99, "p99", "#e8a09d", "dot", 1.5),
        (0.95, "p95", ACCENT, "solid", 2),
        (0.5, "p50", "#59a14f", "solid", 1.5),
    ):
        y = [_seconds(b.latency_ms(q)) for b in series.buckets]
        xs = list(x)
        if y and y[-1] is not None:  # close the last step at the window's end
            xs.append(local(series.end, series.tz))
            y.append(y[-1])
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": name,
                "x": xs,
                "y": y,
                "line": {"color": colour, "width": width, "shape": "hv", "dash": dash},
                "connectgaps": False,
                "hovertemplate": "%{y:,.2f} s",
            }
        )
    layout = _layout(
        height=260,
        xaxis=axis(type="date", hoverformat=HOVER_DATE[series.bucket], range=_x_range(series)),
        yaxis=axis(rangemode="tozero", ticksuffix=" s"),
    )
    layout["legend"] = {**layout["legend"], "traceorder": "reversed"}
    return _figure(data, layout)


def unpriced_figure(series: CostSeries) -> dict:
    x, widths = _bar_geometry(series)
    data = [
        {
            "type": "bar",
            "name": "Unpriced model calls",
            "x": x,
            "y": [b.unpriced for b in series.buckets],
            "width": widths,
            "offset": 0,
            "marker": {"color": WARN},
            "hovertemplate": "%{y:,.0f} calls",
        }
    ]
    layout = _layout(
        height=170,
        showlegend=False,
        bargap=0,
        xaxis=axis(type="date", hoverformat=HOVER_DATE[series.bucket], range=_x_range(series)),
        yaxis=axis(rangemode="tozero", tickformat=",d"),
    )
    return _figure(data, layout)


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000, 4)
