"""How a budget figure is written, keyed by the envelope's metric.

The one formatter for values in a metric's unit: alert messages (budgets.evaluate),
notifications (budgets.transports), pages (the `metric_value` filter), the admin and
chart labels all call `format_value`, so an error rate reads "3.5 %" everywhere. Money
and durations are written as on the trace pages (traces.display).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from budgets.models import BudgetEnvelope
from traces import display

Metric = BudgetEnvelope.Metric

NONE = "—"  # before the first evaluation, or no forecast


def format_usd(value: Decimal) -> str:
    """$1,234.50, $0.0123, $0.000735: cheap runs keep their significant digits."""
    return display.usd(value)


def format_tokens(value: Decimal) -> str:
    """1,250,000 tokens."""
    return f"{int(value):,} tokens"


def format_seconds(value: Decimal) -> str:
    """A duration given in seconds: 2.41 s, 12.3 s, 2 min 05 s."""
    return display.duration(float(value) * 1000)


def format_percent(value: Decimal) -> str:
    """An error rate: 3.5 %."""
    return f"{value:.1f} %"


FORMATTERS: dict[str, Callable[[Decimal], str]] = {
    Metric.COST: format_usd,
    Metric.RUN_COST: format_usd,
    Metric.TOKENS: format_tokens,
    Metric.P95_LATENCY: format_seconds,
    Metric.RUN_DURATION: format_seconds,
    Metric.ERROR_RATE: format_percent,
}


def format_value(metric: str, value: Decimal | float | int | str | None) -> str:
    """`value` in the unit of `metric`; "—" when there is none."""
    if value is None or value == "":
        return NONE
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    formatter = FORMATTERS.get(metric)
    if formatter is None:
        return f"{d.normalize():,}"
    return formatter(d)
