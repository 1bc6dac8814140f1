"""How figures read on the pages: money, durations, token counts.

Plain functions so the waterfall payload (built in Python, drawn in JS) and the
templates (through `traces.templatetags.console`) format numbers the same way.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# Below this a cost is shown as "<$0.000001": more digits stop meaning anything.
TINY_USD = Decimal("0.000001")


def usd(value: Decimal | float | int | None) -> str:
    """A cost, one rule on every page: $1 and more with two decimals ($12.34, $1,234.50);
    under $1 three significant digits, never fewer than two decimals ($0.123, $0.10,
    $0.0123, $0.000735); "—" when unknown.

    A trace of cheap calls costs fractions of a cent, and "$0.00" would hide it.
    """
    if value is None:
        return "—"
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    if d == 0:
        return "$0"
    sign = "-" if d < 0 else ""
    d = abs(d)
    if d < TINY_USD:
        return f"{sign}<$0.000001"
    if d < 1:
        # three significant digits: 0.000735 → exponent -4 → quantize to 1e-6
        d = d.quantize(Decimal(1).scaleb(d.adjusted() - 2), rounding=ROUND_HALF_UP)
    if d >= 1:
        return f"{sign}${d.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"
    text = f"{d:f}".rstrip("0")
    if len(text.split(".")[1]) < 2:
        text = f"{d:.2f}"
    return f"{sign}${text}"


def known_cost(value: Decimal | None, unpriced: int) -> Decimal | None:
    """The cost of a sum of calls, None when it is unknown: some calls had no known price
    and none of the others cost anything. With priced calls beside unpriced ones it is the
    priced part (the unpriced count says what is missing)."""
    if unpriced > 0 and (value is None or value == 0):
        return None
    return value


def cost_with_unpriced(value: Decimal | None, unpriced: int) -> str:
    """A trace's cost that never lets an unpriced model call read as $0."""
    if unpriced <= 0:
        return usd(value)
    calls = f"{unpriced} unpriced"
    if known_cost(value, unpriced) is None:
        return calls
    return f"{usd(value)} + {calls}"


def duration(ms: float | int | None) -> str:
    """A human duration: 0.42 ms, 123 ms, 1.24 s, 12.3 s, 2 min 05 s, 1 h 02 min."""
    if ms is None:
        return "—"
    ms = float(ms)
    if ms < 0:
        ms = 0.0
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    s = ms / 1000
    if s < 10:
        return f"{s:.2f} s"
    if s < 60:
        return f"{s:.1f} s"
    total = round(s)
    if total < 3600:
        return f"{total // 60} min {total % 60:02d} s"
    return f"{total // 3600} h {(total % 3600) // 60:02d} min"


def tokens(n: int | None) -> str:
    """Token counts with thousands separators; "—" for none."""
    if not n:
        return "—"
    return f"{n:,}"


def percent(rate: float | None) -> str:
    """A rate in 0..1 as a percentage: "0 %", "0.4 %", "12 %", "100 %"; "" for None."""
    if rate is None:
        return ""
    p = rate * 100
    if p == 0 or p >= 10:
        return f"{p:.0f} %"
    if p < 0.1:
        return "<0.1 %"
    return f"{p:.1f} %"
