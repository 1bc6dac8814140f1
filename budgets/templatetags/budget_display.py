"""Template filters for budget figures: a value in the unit of its envelope's metric."""

from __future__ import annotations

from django import template

from budgets.formatting import format_value

register = template.Library()


@register.filter
def metric_value(value, metric: str) -> str:
    """$12.34, 1,200,000 tokens, 2.41 s, 3.5 % — "—" before the first evaluation."""
    return format_value(metric, value)


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
