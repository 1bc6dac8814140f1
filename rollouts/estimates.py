"""Figures in words: a rate or a mean with its n and interval, ready for a template.

A rate or a mean is never shown without its n and its interval, or the words "not enough
data".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rollouts.models import Kpi
from rollouts.stats import (
    MIN_SAMPLES,
    MeanStats,
    RateStats,
    mean_interval,
    newcombe_diff,
    welch_diff,
    wilson_interval,
)


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
