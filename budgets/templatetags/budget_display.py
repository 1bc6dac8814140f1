"""Template filters for budget figures: a value in the unit of its envelope's metric."""

from __future__ import annotations

from django import template
from django.utils import timezone

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


@register.filter
def window_length(minutes) -> str:
    """A rolling window's length as people say it: 24 h, 90 min, 7 d."""
    try:
        n = int(minutes)
    except (TypeError, ValueError):
        return "?"
    if n and n % 1440 == 0 and n > 1440:
        return f"{n // 1440} d"
    if n and n % 60 == 0:
        return f"{n // 60} h"
    return f"{n} min"


@register.simple_tag
def forecast_note(envelope) -> str:
    """Why an envelope's row shows no forecast, from its last evaluation."""
    from budgets.evaluate import forecast_absent_reason
    from budgets.selectors import envelope_tz

    start, end = envelope.last_period_start, envelope.last_period_end
    if start is None or end is None or envelope.last_value is None:
        return "not evaluated yet"
    return forecast_absent_reason(
        envelope,
        start=start,
        end=end,
        now=timezone.now(),
        tz=envelope_tz(envelope),
        evaluated=True,
    )
