"""Lift of a KPI between two groups, with its uncertainty.

Pure functions on *sufficient statistics* (the rollups never keep raw samples):

* a mean KPI (cost per run, latency, tokens…) arrives as ``MeanStats(n, total, total_sq)``;
* a rate KPI (0/1 outcomes: resolved, exception, human intervention…) as
  ``RateStats(n, successes)``.

``welch_diff`` and ``newcombe_diff`` compare a treatment group (an agent version, a rollout
phase) against a baseline (previous version, shadow phase, human control group) and return a
``Lift``: absolute and relative lift, a two-sided confidence interval, the sample sizes and a
verdict in plain words. Standard library only: the Student t quantile is computed here (Newton
iteration on the t CDF, itself the regularised incomplete beta function), the normal quantile by
``statistics.NormalDist``.

Verdict rules (``Lift.verdict``):

* ``"not_enough_data"`` — either group has fewer than ``MIN_SAMPLES`` (30) observations, or,
  for rates, the two groups pooled have fewer than ``MIN_OUTCOMES`` (5) successes or fewer than
  5 failures (the usual "np ≥ 5 and n(1−p) ≥ 5" rule of thumb for the normal approximation
  under the score intervals, applied to the pooled data so that a genuine 0 % vs 20 % difference
  is not hidden). The interval is still computed whenever it is mathematically defined, so the
  console may show it greyed out, but no conclusion is drawn.
* ``"better"`` / ``"worse"`` — the interval for treatment − baseline excludes 0; the sign
  together with ``higher_is_better`` decides which (for an exception rate or a cost, pass
  ``higher_is_better=False``).
* ``"no_significant_difference"`` — otherwise (the interval contains 0). This is not proof of
  equality: the interval says how large a difference the data still allow.

Edge cases never raise (only a confidence level outside (0, 1) does):

* n = 0: the group's value is ``None``; the lift and its interval are ``None``.
* n = 1 (means): the value is known but the variance is not, so the interval is ``None``.
* Zero variance in both mean groups (every run had the same value, e.g. a flat fee): the
  standard error is 0 and Welch's t is undefined. The interval degenerates to the point
  ``(d, d)``: with no spread at all there is no sampling uncertainty to express. Equal means
  give "no significant difference", different means "better"/"worse" (given enough samples).
  Sums of squares that differ from ``total²/n`` only by floating-point rounding count as zero
  variance.
* Rates at 0 % or 100 %: Wilson and Newcombe intervals stay inside [0, 1] / [−1, 1] and are
  well defined.
* Baseline value 0: the relative lift and its bounds are ``None``.

Relative lift is ``absolute / |baseline|`` (``|…|`` so that the sign of the relative lift is the
sign of the absolute one even for a negative baseline mean); its bounds are the absolute bounds
divided by the same number, i.e. they treat the baseline estimate as a fixed, known quantity.
They therefore ignore the baseline's own sampling error and are somewhat too narrow when the
baseline group is small; the absolute interval is the one the verdict uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

__all__ = [
    "MIN_OUTCOMES",
    "MIN_SAMPLES",
    "Lift",
    "MeanStats",
    "OutcomeSums",
    "RateStats",
    "mean_interval",
    "newcombe_diff",
    "normal_quantile",
    "t_quantile",
    "welch_diff",
    "wilson_interval",
]

MIN_SAMPLES = 30
"""Fewer observations than this in either group → verdict ``not_enough_data``."""

MIN_OUTCOMES = 5
"""For rates: fewer pooled successes or pooled failures than this → ``not_enough_data``."""

NOT_ENOUGH_DATA = "not_enough_data"
NO_SIGNIFICANT_DIFFERENCE = "no_significant_difference"
BETTER = "better"
WORSE = "worse"

_EPS = 2.220446049250313e-16


# --------------------------------------------------------------------------- quantiles


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")


def normal_quantile(p: float) -> float:
    """Quantile of the standard normal distribution."""
    return NormalDist().inv_cdf(p)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < tiny:
        d = tiny
    d = 1.0 / d
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return h


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """Regularised incomplete beta I_x(a, b); ``y`` is 1 − x, passed to avoid cancellation."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, y) / b


def _t_upper_tail(t: float, df: float) -> float:
    """P(T > t) for t ≥ 0."""
    t2 = t * t
    return 0.5 * _betainc(df / 2.0, 0.5, df / (df + t2), t2 / (df + t2))


def _t_pdf(t: float, df: float) -> float:
    return math.exp(
        math.lgamma((df + 1.0) / 2.0)
        - math.lgamma(df / 2.0)
        - 0.5 * math.log(df * math.pi)
        - (df + 1.0) / 2.0 * math.log1p(t * t / df)
    )


def _cornish_fisher(z: float, df: float) -> float:
    """Abramowitz & Stegun 26.7.5: t quantile from the normal one, error O(df⁻⁵)."""
    z2 = z * z
    g1 = (z2 + 1.0) * z / 4.0
    g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0
    g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0
    g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92160.0
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t distribution with ``df`` (> 0, not necessarily integer) degrees
    of freedom, i.e. the inverse of its CDF.

    df = 1 and df = 2 have closed forms; df ≥ 1,000 uses the Cornish–Fisher expansion (error
    below 1e-13 there); otherwise Newton's method on the CDF, computed through the
    regularised incomplete beta function, starting from the normal quantile. For t > 0 the
    upper tail is convex and decreasing and the normal quantile lies below the t quantile, so
    the iteration approaches the root monotonically from below and cannot overshoot.
    """
    if not 0.0 < p < 1.0:
        if p == 0.0:
            return -math.inf
        if p == 1.0:
            return math.inf
        return math.nan
    if not df > 0.0:
        return math.nan
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if math.isinf(df):
        return normal_quantile(p)
    if df == 1.0:
        return math.tan(math.pi * (p - 0.5))
    if df == 2.0:
        return (2.0 * p - 1.0) / math.sqrt(2.0 * p * (1.0 - p))
    q = 1.0 - p
    z = normal_quantile(p)
    # From df = 1,000 the expansion's next term is below 1e-13 even at p = 0.9995, and
    # the incomplete beta's continued fraction converges slowly there (pages compare
    # groups of hundreds of thousands of runs): use the expansion.
    if df >= 1000:
        return _cornish_fisher(z, df)
    t = z
    for _ in range(500):
        step = (_t_upper_tail(t, df) - q) / _t_pdf(t, df)
        t += step
        if abs(step) <= 4.0 * _EPS * t:
            break
    return t


# --------------------------------------------------------------------------- groups


@dataclass(frozen=True)
class MeanStats:
    """Sufficient statistics of a mean KPI: count, sum and sum of squares."""

    n: int
    total: float
    total_sq: float

    @classmethod
    def from_values(cls, values: list[float]) -> MeanStats:
        values = list(values)
        return cls(
            n=len(values),
            total=math.fsum(values),
            total_sq=math.fsum(v * v for v in values),
        )

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n > 0 else None

    @property
    def variance(self) -> float | None:
        """Sample variance (divisor n − 1); ``None`` for n < 2.

        Computed from the sums, so it is clamped at 0 and snapped to 0 when the centred sum of
        squares is within floating-point rounding of zero.
        """
        if self.n < 2:
            return None
        centred = self.total_sq - self.total * self.total / self.n
        if centred <= 8.0 * self.n * _EPS * abs(self.total_sq):
            return 0.0
        return centred / (self.n - 1)


@dataclass(frozen=True)
class RateStats:
    """Sufficient statistics of a rate KPI: trials and successes (0/1 outcomes)."""

    n: int
    successes: int

    @property
    def rate(self) -> float | None:
        return self.successes / self.n if self.n > 0 else None

    @property
    def failures(self) -> int:
        return self.n - self.successes


@dataclass
class OutcomeSums:
    """The running sums every KPI and eval figure is read from: count, sum, sum of squares
    and the number of values equal to 1 (so one set of sums serves a mean and a rate).

    Stored in `RunRollup.outcomes` as {"n", "sum", "sumsq", "ones"}.
    """

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    ones: int = 0

    def add_value(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.total_sq += value * value
        self.ones += value == 1

    def merge(self, stored: dict) -> None:
        """Add sums stored as {"n", "sum", "sumsq", "ones"}."""
        self.n += stored["n"]
        self.total += stored["sum"]
        self.total_sq += stored["sumsq"]
        self.ones += stored["ones"]

    def as_json(self) -> dict:
        return {"n": self.n, "sum": self.total, "sumsq": self.total_sq, "ones": self.ones}

    @property
    def mean(self) -> MeanStats:
        return MeanStats(n=self.n, total=self.total, total_sq=self.total_sq)

    @property
    def rate(self) -> RateStats:
        return RateStats(n=self.n, successes=self.ones)


def mean_interval(stats: MeanStats, *, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided t interval for the mean. No information (n < 2) gives (−inf, +inf);
    zero variance gives the point (mean, mean)."""
    _check_confidence(confidence)
    mean, variance = stats.mean, stats.variance
    if mean is None or variance is None:
        return (-math.inf, math.inf)
    half = t_quantile(0.5 + confidence / 2.0, stats.n - 1) * math.sqrt(variance / stats.n)
    return (mean - half, mean + half)


def wilson_interval(rate: RateStats, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion. n = 0 (no information) gives (0, 1)."""
    _check_confidence(confidence)
    n, k = rate.n, rate.successes
    if n <= 0:
        return (0.0, 1.0)
    z = normal_quantile(0.5 + confidence / 2.0)
    p = k / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    low = 0.0 if k <= 0 else max(0.0, centre - half)
    high = 1.0 if k >= n else min(1.0, centre + half)
    return (low, high)


# --------------------------------------------------------------------------- lift


def _fmt_count(n: int) -> str:
    return f"{n:,}"


def _decimals(scale: float) -> int:
    if scale == 0.0 or not math.isfinite(scale):
        return 1
    if scale >= 100:
        return 0
    if scale >= 10:
        return 1
    return min(6, 2 - math.floor(math.log10(scale)))


def _fmt_signed(x: float, decimals: int) -> str:
    text = f"{abs(x):,.{decimals}f}"
    if not text.strip("0.,"):  # rounds to zero: no sign
        return text
    return ("+" if x > 0 else "−") + text


@dataclass(frozen=True)
class Lift:
    """Treatment − baseline for one KPI, with a two-sided confidence interval.

    For rates the values are proportions (0.042 = 4.2 pp); ``summary()`` shows percentage
    points. Values that cannot be computed are ``None``.
    """

    absolute: float | None
    absolute_low: float | None
    absolute_high: float | None
    relative: float | None
    relative_low: float | None
    relative_high: float | None
    n_treatment: int
    n_baseline: int
    treatment_value: float | None
    baseline_value: float | None
    verdict: str
    kind: str = "mean"  # "mean" or "rate"
    confidence: float = 0.95
    reason: str = ""  # why the verdict is not_enough_data, in words

    @property
    def significant(self) -> bool:
        return self.verdict in (BETTER, WORSE)

    def summary(self, noun: str = "runs", unit: str = "") -> str:
        """One line of plain text, e.g. "+4.2 pp (+6.1 %; 95 % CI +1.1 to +7.3), 1,204 vs
        1,187 runs" for a rate, "−0.00212 (−14.3 %; 95 % CI −0.00243 to −0.00180), 300 vs
        300 runs" for a mean. The relative lift (against the baseline's value) is shown
        when the baseline is not 0; the interval is the absolute difference's. A mean's
        difference carries `unit` when given ("+1.2 min")."""
        counts = f"{_fmt_count(self.n_treatment)} vs {_fmt_count(self.n_baseline)} {noun}"
        if self.verdict == NOT_ENOUGH_DATA:
            return f"Not enough data: {counts} ({self.reason or self._default_reason()})"
        scale = 100.0 if self.kind == "rate" else 1.0
        unit = " pp" if self.kind == "rate" else (f" {unit}" if unit else "")
        absolute = (self.absolute or 0.0) * scale
        low = (self.absolute_low if self.absolute_low is not None else math.nan) * scale
        high = (self.absolute_high if self.absolute_high is not None else math.nan) * scale
        decimals = 1 if self.kind == "rate" else _decimals(max(abs(absolute), abs(low), abs(high)))
        level = f"{self.confidence * 100:g} %"
        relative = ""
        if self.relative is not None:
            relative = f"{_fmt_signed(self.relative * 100.0, 1)} %; "
        interval = f"{_fmt_signed(low, decimals)} to {_fmt_signed(high, decimals)}"
        text = (
            f"{_fmt_signed(absolute, decimals)}{unit} ({relative}{level} CI {interval}), {counts}"
        )
        if self.verdict == NO_SIGNIFICANT_DIFFERENCE:
            return f"No significant difference: {text}"
        return text

    def _default_reason(self) -> str:
        return f"need at least {MIN_SAMPLES} in each"


def _verdict(low: float | None, high: float | None, higher_is_better: bool) -> str:
    if low is None or high is None:
        return NOT_ENOUGH_DATA
    if low > 0.0:
        return BETTER if higher_is_better else WORSE
    if high < 0.0:
        return WORSE if higher_is_better else BETTER
    return NO_SIGNIFICANT_DIFFERENCE


def _relative(x: float | None, baseline: float | None) -> float | None:
    if x is None or baseline is None or baseline == 0.0:
        return None
    return x / abs(baseline)


def _lift(
    *,
    kind: str,
    confidence: float,
    treatment_value: float | None,
    baseline_value: float | None,
    low: float | None,
    high: float | None,
    n_treatment: int,
    n_baseline: int,
    higher_is_better: bool,
    reason: str,
) -> Lift:
    absolute = (
        treatment_value - baseline_value
        if treatment_value is not None and baseline_value is not None
        else None
    )
    verdict = NOT_ENOUGH_DATA if reason else _verdict(low, high, higher_is_better)
    return Lift(
        absolute=absolute,
        absolute_low=low,
        absolute_high=high,
        relative=_relative(absolute, baseline_value),
        relative_low=_relative(low, baseline_value),
        relative_high=_relative(high, baseline_value),
        n_treatment=n_treatment,
        n_baseline=n_baseline,
        treatment_value=treatment_value,
        baseline_value=baseline_value,
        verdict=verdict,
        kind=kind,
        confidence=confidence,
        reason=reason,
    )


def _sample_reason(n_treatment: int, n_baseline: int) -> str:
    if min(n_treatment, n_baseline) < MIN_SAMPLES:
        return f"need at least {MIN_SAMPLES} in each"
    return ""


def welch_diff(
    treatment: MeanStats,
    baseline: MeanStats,
    *,
    confidence: float = 0.95,
    higher_is_better: bool = True,
) -> Lift:
    """Difference of means (treatment − baseline) with Welch's t interval (unequal variances,
    Welch–Satterthwaite degrees of freedom)."""
    _check_confidence(confidence)
    mean_t, mean_b = treatment.mean, baseline.mean
    var_t, var_b = treatment.variance, baseline.variance
    low = high = None
    if mean_t is not None and mean_b is not None and var_t is not None and var_b is not None:
        diff = mean_t - mean_b
        a = var_t / treatment.n
        b = var_b / baseline.n
        se2 = a + b
        if se2 > 0.0:
            df = se2 * se2 / (a * a / (treatment.n - 1) + b * b / (baseline.n - 1))
            half = t_quantile(0.5 + confidence / 2.0, df) * math.sqrt(se2)
            low, high = diff - half, diff + half
        else:  # no spread in either group: the difference is known exactly
            low = high = diff
    return _lift(
        kind="mean",
        confidence=confidence,
        treatment_value=mean_t,
        baseline_value=mean_b,
        low=low,
        high=high,
        n_treatment=treatment.n,
        n_baseline=baseline.n,
        higher_is_better=higher_is_better,
        reason=_sample_reason(treatment.n, baseline.n),
    )


def newcombe_diff(
    treatment: RateStats,
    baseline: RateStats,
    *,
    confidence: float = 0.95,
    higher_is_better: bool = True,
) -> Lift:
    """Difference of proportions (treatment − baseline) with Newcombe's hybrid score interval
    (Newcombe 1998, method 10), built from the two Wilson intervals:

        low  = d − √((p₁ − l₁)² + (u₂ − p₂)²)
        high = d + √((u₁ − p₁)² + (p₂ − l₂)²)
    """
    _check_confidence(confidence)
    p1, p2 = treatment.rate, baseline.rate
    low = high = None
    if p1 is not None and p2 is not None:
        l1, u1 = wilson_interval(treatment, confidence=confidence)
        l2, u2 = wilson_interval(baseline, confidence=confidence)
        d = p1 - p2
        low = max(-1.0, d - math.hypot(p1 - l1, u2 - p2))
        high = min(1.0, d + math.hypot(u1 - p1, p2 - l2))
    reason = _sample_reason(treatment.n, baseline.n)
    if not reason:
        successes = treatment.successes + baseline.successes
        failures = treatment.failures + baseline.failures
        if min(successes, failures) < MIN_OUTCOMES:
            reason = (
                f"{successes:,} successes and {failures:,} failures in all; need at least "
                f"{MIN_OUTCOMES} of each"
            )
    return _lift(
        kind="rate",
        confidence=confidence,
        treatment_value=p1,
        baseline_value=p2,
        low=low,
        high=high,
        n_treatment=treatment.n,
        n_baseline=baseline.n,
        higher_is_better=higher_is_better,
        reason=reason,
    )
