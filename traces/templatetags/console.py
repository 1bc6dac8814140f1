"""Template filters for figures, backed by traces.display."""

from django import template

from traces import display

register = template.Library()

register.filter("usd", display.usd)
register.filter("duration", display.duration)
register.filter("tokens", display.tokens)
register.filter("percent", display.percent)


@register.filter
def trace_cost(trace) -> str:
    """A trace's cost, with its unpriced calls spelled out."""
    return display.cost_with_unpriced(trace.cost_usd, trace.unpriced_count)
