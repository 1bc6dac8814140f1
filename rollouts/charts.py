"""Plotly figures for the overview, agents and KPI lift pages, as plain data.

Intervals travel as asymmetric error bars, so no value is ever drawn without its interval.
"""

from __future__ import annotations

import math
from datetime import date

from traces.charts_style import ACCENT, CONFIG, FONT, MUTED, PALETTE, SPARK_CONFIG, axis


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def sparkline_figure(
    *, days: list[date], values: list[float | None], name: str, hoverformat: str = ",.2f"
) -> dict:
    """A 14-day trend line without axes: gaps where a day has no value."""
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": name,
                "x": [d.isoformat() for d in days],
                "y": [_finite(v) for v in values],
                "line": {"color": ACCENT, "width": 2},
                "marker": {"size": 3},
                "connectgaps": False,
                "hovertemplate": "%{x|%b %d}: %{y:" + hoverformat + "}<extra></extra>",
            }
        ],
        "layout": {
            "height": 60,
            "margin": {"l": 2, "r": 2, "t": 4, "b": 4},
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "font": FONT,
            "showlegend": False,
            "xaxis": {"visible": False, "type": "date"},
            "yaxis": {"visible": False, "rangemode": "tozero"},
        },
        "config": SPARK_CONFIG,
    }


def trend_figure(
    *,
    days: list[date],
    values: list[float | None],
    name: str,
    hoverformat: str = ",.2f",
    tickprefix: str = "",
    ticksuffix: str = "",
) -> dict:
    """A small daily trend with its axes: dates below (a tick a week), a few round values on
    the left, gaps where a day has no value."""
    figure = sparkline_figure(days=days, values=values, name=name, hoverformat=hoverformat)
    figure["layout"].update(
        height=120,
        margin={"l": 4, "r": 8, "t": 6, "b": 4},
        xaxis=axis(type="date", tickformat="%b %d", dtick=7 * 86_400_000, showgrid=False),
        yaxis=axis(
            rangemode="tozero",
            nticks=3,
            tickformat="~s" if not tickprefix else ",.2~f",
            tickprefix=tickprefix,
            ticksuffix=ticksuffix,
        ),
    )
    return figure


def interval_bar_figure(
    *,
    labels: list[str],
    values: list[float | None],
    lows: list[float | None],
    highs: list[float | None],
    ns: list[int],
    axis_title: str,
    percent: bool = False,
) -> dict:
    """One point per group with its confidence interval as error bars (no bare bars)."""
    scale = 100.0 if percent else 1.0
    ys, plus, minus = [], [], []
    for v, lo, hi in zip(values, lows, highs, strict=True):
        v, lo, hi = _finite(v), _finite(lo), _finite(hi)
        ys.append(v * scale if v is not None else None)
        plus.append((hi - v) * scale if v is not None and hi is not None else 0)
        minus.append((v - lo) * scale if v is not None and lo is not None else 0)
    fmt = ".1f" if percent else ",.3~f"
    suffix = " %" if percent else ""
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "markers",
                "x": labels,
                "y": ys,
                "customdata": ns,
                "marker": {"size": 10, "color": ACCENT},
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": plus,
                    "arrayminus": minus,
                    "color": ACCENT,
                    "thickness": 1.5,
                    "width": 6,
                },
                "hovertemplate": "%{x}: %{y:"
                + fmt
                + "}"
                + suffix
                + " (n=%{customdata})<extra>95 % CI shown</extra>",
            }
        ],
        "layout": {
            "height": 240,
            "margin": {"l": 8, "r": 12, "t": 12, "b": 8},
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "font": FONT,
            "showlegend": False,
            "xaxis": axis(type="category"),
            "yaxis": axis(title={"text": axis_title}, ticksuffix=suffix),
        },
        "config": CONFIG,
    }


def lift_over_time_figure(
    *,
    series: dict[str, list[tuple[date, float, float, float]]],
    axis_title: str,
    percent: bool = False,
) -> dict:
    """Daily lift (treatment − baseline) per group with its interval; a zero line for "no
    difference". ``series`` maps a group label to (day, lift, low, high) points."""
    scale = 100.0 if percent else 1.0
    data = []
    for i, (label, points) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": label,
                "x": [d.isoformat() for d, *_ in points],
                "y": [v * scale for _, v, _, _ in points],
                "line": {"color": colour},
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": [(hi - v) * scale for _, v, _, hi in points],
                    "arrayminus": [(v - lo) * scale for _, v, lo, _ in points],
                    "color": colour,
                    "thickness": 1,
                    "width": 3,
                },
            }
        )
    return {
        "data": data,
        "layout": {
            "height": 260,
            "margin": {"l": 8, "r": 12, "t": 12, "b": 8},
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "font": FONT,
            "hovermode": "x unified",
            "showlegend": True,
            "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
            "xaxis": axis(type="date", tickformat="%b %d", dtick=86_400_000),
            "yaxis": axis(
                title={"text": axis_title},
                ticksuffix=" pp" if percent else "",
                zeroline=True,
                zerolinecolor=MUTED,
                rangemode="tozero",  # keep "no difference" in view
            ),
        },
        "config": CONFIG,
    }
