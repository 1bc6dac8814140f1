"""Template filters for budget figures: a value in the unit of its envelope's metric."""

from __future__ import annotations

from decimal import Decimal

from django import template

from traces import display

register = template.Library()

COST_METRICS = {"cost_usd", "run_cost_usd"}
SECONDS_METRICS = {"p95_run_latency_s", "run_duration_s"}


def metric_text(value, metric: str) -> str:
    """$12.34, 1,200,000 tokens, 2.40 s, 3.5 % — "—" before the first evaluation."""
    if value is None or value == "":
        return "—"
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    if metric in COST_METRICS:
        return display.usd(d)
    if metric == "tokens":
        return f"{int(d):,} tokens"
    if metric in SECONDS_METRICS:
        return display.duration(float(d) * 1000)
    if metric == "error_rate":
        return f"{d:.1f} %"
    return f"{d.normalize():,}"


@register.filter
def metric_value(value, metric: str) -> str:
    return metric_text(value, metric)


@register.filter
def percent(value, digits: int = 0) -> str:
    """47 %; "—" when unknown; <1 % for small non-zero shares."""
    if value is None:
        return "—"
    value = float(value)
    if 0 < value < 1 and not digits:
        return "<1 %"
    return f"{value:,.{int(digits)}f} %"


@register.filter
def bar_width(value) -> str:
    """A usage percentage as a CSS width, clamped to 0..100 %."""
    if value is None:
        return "0%"
    return f"{max(0.0, min(100.0, float(value))):.1f}%"
