"""rollouts.stats against independent references: SciPy (a test-only dependency), hand formulas
and the worked examples of Newcombe (1998)."""

import math
import random
import statistics

import pytest
from scipy import stats as sps

from rollouts.stats import (
    MIN_SAMPLES,
    Lift,
    MeanStats,
    OutcomeSums,
    RateStats,
    mean_interval,
    newcombe_diff,
    normal_quantile,
    t_quantile,
    welch_diff,
    wilson_interval,
)

# --------------------------------------------------------------------------- quantiles


@pytest.mark.parametrize("df", [1, 2, 3, 5, 29, 30, 100, 10_000, 1.5, 7.3, 0.7, 99_999.5, 1e6])
@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99, 0.999])
def test_t_quantile_matches_scipy(df, confidence):
    p = 0.5 + confidence / 2
    expected = sps.t.ppf(p, df)
    assert t_quantile(p, df) == pytest.approx(expected, rel=1e-9)
    assert t_quantile(1 - p, df) == pytest.approx(-expected, rel=1e-9)


@pytest.mark.parametrize("p", [0.001, 0.2, 0.5, 0.6, 0.975, 0.9999])
def test_t_quantile_other_probabilities(p):
    for df in (1, 4, 12.5, 250):
        assert t_quantile(p, df) == pytest.approx(sps.t.ppf(p, df), rel=1e-9, abs=1e-12)


def test_t_quantile_limits():
    assert t_quantile(0.0, 5) == -math.inf
    assert t_quantile(1.0, 5) == math.inf
    assert math.isnan(t_quantile(0.9, 0))
    assert t_quantile(0.975, math.inf) == pytest.approx(1.959963984540054)


def test_normal_quantile():
    assert normal_quantile(0.975) == pytest.approx(sps.norm.ppf(0.975), rel=1e-12)


# --------------------------------------------------------------------------- groups


def test_mean_stats_from_values():
    values = [1.0, 2.0, 4.0, 8.0]
    stats = MeanStats.from_values(values)
    assert stats == MeanStats(n=4, total=15.0, total_sq=85.0)
    assert stats.mean == 3.75
    assert stats.variance == pytest.approx(statistics.variance(values), rel=1e-12)
    assert MeanStats.from_values([]).mean is None
    assert MeanStats.from_values([]).variance is None
    assert MeanStats.from_values([3.0]).variance is None


def test_variance_rounding_noise_is_zero():
    stats = MeanStats.from_values([0.1] * 1000)
    assert stats.variance == 0.0


def test_rate_stats():
    assert RateStats(8, 2).rate == 0.25
    assert RateStats(0, 0).rate is None


@pytest.mark.parametrize("n", [2, 5, 31, 400])
def test_mean_interval_matches_scipy(n):
    rng = random.Random(n)
    values = [rng.gauss(10, 3) for _ in range(n)]
    low, high = mean_interval(MeanStats.from_values(values), confidence=0.9)
    ref = sps.ttest_1samp(values, 0).confidence_interval(confidence_level=0.9)
    assert low == pytest.approx(ref.low, rel=1e-9)
    assert high == pytest.approx(ref.high, rel=1e-9)


def test_mean_interval_edge_cases():
    assert mean_interval(MeanStats(0, 0.0, 0.0)) == (-math.inf, math.inf)
    assert mean_interval(MeanStats.from_values([4.0])) == (-math.inf, math.inf)
    assert mean_interval(MeanStats.from_values([4.0, 4.0, 4.0])) == (4.0, 4.0)


# --------------------------------------------------------------------------- Wilson


def wilson_by_hand(k, n, z):
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


@pytest.mark.parametrize(
    ("k", "n"), [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (56, 70), (48, 80), (1, 1000)]
)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_scipy_and_hand_formula(k, n, confidence):
    low, high = wilson_interval(RateStats(n, k), confidence=confidence)
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert low == pytest.approx(ref.low, abs=1e-12)
    assert high == pytest.approx(ref.high, abs=1e-12)
    z = sps.norm.ppf(0.5 + confidence / 2)
    hand_low, hand_high = wilson_by_hand(k, n, z)
    assert low == pytest.approx(max(0.0, hand_low), abs=1e-12)
    assert high == pytest.approx(min(1.0, hand_high), abs=1e-12)


def test_wilson_bounds_at_extremes():
    assert wilson_interval(RateStats(0, 0)) == (0.0, 1.0)
    assert wilson_interval(RateStats(20, 0))[0] == 0.0
    assert wilson_interval(RateStats(20, 20))[1] == 1.0


# --------------------------------------------------------------------------- Welch


@pytest.mark.parametrize(
    ("n_t", "mu_t", "sd_t", "n_b", "mu_b", "sd_b"),
    [
        (2, 5.0, 1.0, 3, 4.0, 2.0),
        (12, 1.0, 0.1, 40, 1.1, 1.5),
        (30, 100.0, 20.0, 30, 90.0, 5.0),
        (200, 0.02, 0.01, 1500, 0.021, 0.03),
        (5000, -3.0, 7.0, 4000, -3.1, 7.5),
    ],
)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_welch_matches_scipy(n_t, mu_t, sd_t, n_b, mu_b, sd_b, confidence):
    rng = random.Random(f"{n_t}-{n_b}-{confidence}")
    treatment = [rng.gauss(mu_t, sd_t) for _ in range(n_t)]
    baseline = [rng.gauss(mu_b, sd_b) for _ in range(n_b)]
    lift = welch_diff(
        MeanStats.from_values(treatment), MeanStats.from_values(baseline), confidence=confidence
    )
    ref = sps.ttest_ind(treatment, baseline, equal_var=False)
    ci = ref.confidence_interval(confidence_level=confidence)
    scale = abs(ci.high - ci.low)
    assert lift.absolute == pytest.approx(sum(treatment) / n_t - sum(baseline) / n_b)
    assert lift.absolute_low == pytest.approx(ci.low, abs=1e-9 * scale)
    assert lift.absolute_high == pytest.approx(ci.high, abs=1e-9 * scale)
    assert lift.n_treatment == n_t
    assert lift.n_baseline == n_b
    # Cross-check the verdict with SciPy's p-value (same test, same level).
    if min(n_t, n_b) < MIN_SAMPLES:
        assert lift.verdict == "not_enough_data"
    elif ref.pvalue < 1 - confidence:
        assert lift.verdict == ("better" if lift.absolute > 0 else "worse")
    else:
        assert lift.verdict == "no_significant_difference"


def test_welch_clear_effect_respects_direction():
    rng = random.Random(7)
    fast = MeanStats.from_values([rng.gauss(1.0, 0.2) for _ in range(100)])
    slow = MeanStats.from_values([rng.gauss(2.0, 0.2) for _ in range(100)])
    assert welch_diff(slow, fast).verdict == "better"
    assert welch_diff(slow, fast, higher_is_better=False).verdict == "worse"
    assert welch_diff(fast, slow, higher_is_better=False).verdict == "better"
    assert welch_diff(fast, slow).verdict == "worse"


def test_welch_identical_groups():
    rng = random.Random(3)
    group = MeanStats.from_values([rng.gauss(5, 1) for _ in range(50)])
    lift = welch_diff(group, group)
    assert lift.absolute == 0.0
    assert lift.absolute_low < 0 < lift.absolute_high
    assert lift.verdict == "no_significant_difference"
    assert lift.relative == 0.0


def test_welch_tiny_samples():
    lift = welch_diff(MeanStats.from_values([1.0] * 12), MeanStats.from_values([9.0] * 9))
    assert lift.verdict == "not_enough_data"
    assert lift.absolute == -8.0
    assert lift.summary() == "Not enough data: 12 vs 9 runs (need at least 30 in each)"


def test_welch_empty_and_single():
    empty = MeanStats(0, 0.0, 0.0)
    one = MeanStats.from_values([2.0])
    many = MeanStats.from_values([float(i) for i in range(40)])
    lift = welch_diff(empty, many)
    assert (lift.absolute, lift.absolute_low, lift.absolute_high) == (None, None, None)
    assert lift.treatment_value is None
    assert lift.verdict == "not_enough_data"
    assert lift.summary() == "Not enough data: 0 vs 40 runs (need at least 30 in each)"
    lift = welch_diff(one, many)
    assert lift.absolute == 2.0 - 19.5
    assert lift.absolute_low is None
    assert lift.verdict == "not_enough_data"
    assert welch_diff(empty, empty).verdict == "not_enough_data"


def test_welch_zero_variance_in_both_groups():
    same = welch_diff(MeanStats.from_values([3.0] * 40), MeanStats.from_values([3.0] * 35))
    assert (same.absolute_low, same.absolute_high) == (0.0, 0.0)
    assert same.verdict == "no_significant_difference"
    differ = welch_diff(
        MeanStats.from_values([0.5] * 40), MeanStats.from_values([0.2] * 35), higher_is_better=False
    )
    assert differ.absolute_low == differ.absolute_high == pytest.approx(0.3)
    assert differ.verdict == "worse"


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # SciPy, constant group
def test_welch_zero_variance_in_one_group():
    rng = random.Random(11)
    values = [rng.gauss(3, 1) for _ in range(40)]
    lift = welch_diff(MeanStats.from_values(values), MeanStats.from_values([3.0] * 50))
    ci = sps.ttest_ind(values, [3.0] * 50, equal_var=False).confidence_interval()
    assert lift.absolute_low == pytest.approx(ci.low, rel=1e-9)
    assert lift.absolute_high == pytest.approx(ci.high, rel=1e-9)


def test_welch_baseline_zero_and_relative():
    rng = random.Random(5)
    treatment = MeanStats.from_values([rng.gauss(1, 1) for _ in range(60)])
    zero = MeanStats.from_values([-1.0, 1.0] * 30)
    lift = welch_diff(treatment, zero)
    assert lift.baseline_value == 0.0
    assert (lift.relative, lift.relative_low, lift.relative_high) == (None, None, None)
    assert lift.summary().startswith("+")

    baseline = MeanStats.from_values([rng.gauss(2, 0.5) for _ in range(60)])
    lift = welch_diff(treatment, baseline)
    assert lift.relative == pytest.approx(lift.absolute / lift.baseline_value)
    assert lift.relative_low == pytest.approx(lift.absolute_low / lift.baseline_value)
    assert lift.relative_high == pytest.approx(lift.absolute_high / lift.baseline_value)


# --------------------------------------------------------------------------- Newcombe

# Newcombe RG (1998), "Interval estimation for the difference between independent
# proportions: comparison of eleven methods", Statistics in Medicine 17:873-890, Table II,
# method 10 (score interval built from Wilson intervals, no continuity correction), 95 %.
NEWCOMBE_TABLE_II = [
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (6, 7, 2, 7, 0.0582, 0.8062),
    (5, 56, 0, 29, -0.0381, 0.1926),
    (0, 10, 0, 20, -0.1611, 0.2775),
    (0, 10, 0, 10, -0.2775, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0000),
    (10, 10, 0, 10, 0.6075, 1.0000),
]


@pytest.mark.parametrize(("k1", "n1", "k2", "n2", "low", "high"), NEWCOMBE_TABLE_II)
def test_newcombe_published_examples(k1, n1, k2, n2, low, high):
    lift = newcombe_diff(RateStats(n1, k1), RateStats(n2, k2))
    assert lift.absolute == pytest.approx(k1 / n1 - k2 / n2)
    assert round(lift.absolute_low, 4) == low
    assert round(lift.absolute_high, 4) == high


def newcombe_by_hand(k1, n1, k2, n2, z):
    """Method 10 in its other published form: d − z·√(l₁(1−l₁)/n₁ + u₂(1−u₂)/n₂), …"""
    l1, u1 = wilson_by_hand(k1, n1, z)
    l2, u2 = wilson_by_hand(k2, n2, z)
    d = k1 / n1 - k2 / n2
    delta = z * math.sqrt(l1 * (1 - l1) / n1 + u2 * (1 - u2) / n2)
    eps = z * math.sqrt(u1 * (1 - u1) / n1 + l2 * (1 - l2) / n2)
    return d - delta, d + eps


@pytest.mark.parametrize(
    ("k1", "n1", "k2", "n2"), [(56, 70, 48, 80), (3, 40, 9, 35), (700, 1204, 640, 1187)]
)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_newcombe_matches_hand_formula(k1, n1, k2, n2, confidence):
    lift = newcombe_diff(RateStats(n1, k1), RateStats(n2, k2), confidence=confidence)
    low, high = newcombe_by_hand(k1, n1, k2, n2, sps.norm.ppf(0.5 + confidence / 2))
    assert lift.absolute_low == pytest.approx(low, abs=1e-12)
    assert lift.absolute_high == pytest.approx(high, abs=1e-12)


def test_newcombe_empty_group():
    lift = newcombe_diff(RateStats(0, 0), RateStats(50, 20))
    assert lift.treatment_value is None
    assert (lift.absolute, lift.absolute_low, lift.absolute_high) == (None, None, None)
    assert lift.verdict == "not_enough_data"
    lift = newcombe_diff(RateStats(0, 0), RateStats(0, 0))
    assert lift.verdict == "not_enough_data"


def test_newcombe_all_failures_and_all_successes():
    none_ = newcombe_diff(RateStats(100, 0), RateStats(120, 0))
    assert none_.absolute == 0.0
    assert none_.absolute_low < 0 < none_.absolute_high
    assert none_.verdict == "not_enough_data"  # no successes at all
    assert none_.relative is None  # baseline rate 0
    assert "0 successes" in none_.summary()
    every = newcombe_diff(RateStats(100, 100), RateStats(120, 120))
    assert every.verdict == "not_enough_data"
    # 0 % against 20 %: enough pooled outcomes, a real difference.
    lift = newcombe_diff(RateStats(100, 0), RateStats(100, 20), higher_is_better=False)
    assert lift.absolute_high < 0
    assert lift.verdict == "better"
    assert lift.relative == pytest.approx(-1.0)


def test_newcombe_identical_groups():
    lift = newcombe_diff(RateStats(500, 120), RateStats(500, 120))
    assert lift.verdict == "no_significant_difference"
    assert lift.summary().startswith("No significant difference: 0.0 pp (0.0 %; 95 % CI −")


def test_newcombe_tiny_samples():
    lift = newcombe_diff(RateStats(12, 11), RateStats(9, 1))
    assert lift.absolute_low > 0  # interval computed…
    assert lift.verdict == "not_enough_data"  # …but no conclusion drawn
    assert lift.summary() == "Not enough data: 12 vs 9 runs (need at least 30 in each)"


def test_newcombe_direction():
    resolved = newcombe_diff(RateStats(1204, 700), RateStats(1187, 590))
    assert resolved.verdict == "better"
    exceptions = newcombe_diff(RateStats(1204, 700), RateStats(1187, 590), higher_is_better=False)
    assert exceptions.verdict == "worse"
    assert newcombe_diff(RateStats(1187, 590), RateStats(1204, 700)).verdict == "worse"


# --------------------------------------------------------------------------- summaries


def test_summary_significant_rate():
    lift = Lift(
        absolute=0.042, absolute_low=0.011, absolute_high=0.073,
        relative=0.1, relative_low=0.03, relative_high=0.17,
        n_treatment=1204, n_baseline=1187, treatment_value=0.462, baseline_value=0.42,
        verdict="better", kind="rate",
    )  # fmt: skip
    # Absolute lift in percentage points, relative lift against the baseline's rate.
    assert lift.summary() == "+4.2 pp (+10.0 %; 95 % CI +1.1 to +7.3), 1,204 vs 1,187 runs"


def test_summary_no_difference_rate():
    lift = Lift(
        absolute=-0.008, absolute_low=-0.039, absolute_high=0.023,
        relative=None, relative_low=None, relative_high=None,
        n_treatment=1204, n_baseline=1187, treatment_value=0.5, baseline_value=0.508,
        verdict="no_significant_difference", kind="rate",
    )  # fmt: skip
    assert lift.summary() == (
        "No significant difference: −0.8 pp (95 % CI −3.9 to +2.3), 1,204 vs 1,187 runs"
    )


def test_summary_mean_and_confidence_label():
    rng = random.Random(9)
    treatment = MeanStats.from_values([rng.gauss(0.0125, 0.002) for _ in range(300)])
    baseline = MeanStats.from_values([rng.gauss(0.0150, 0.002) for _ in range(300)])
    lift = welch_diff(treatment, baseline, confidence=0.99, higher_is_better=False)
    assert lift.verdict == "better"
    text = lift.summary(noun="traces")
    assert text.startswith("−0.00")
    assert " %; 99 % CI −0.00" in text
    relative = f"{lift.relative * 100:.1f}".replace("-", "−")
    assert f" ({relative} %; 99 % CI " in text
    assert text.endswith("300 vs 300 traces")


def test_rejects_bad_confidence():
    with pytest.raises(ValueError, match="confidence"):
        welch_diff(MeanStats(0, 0, 0), MeanStats(0, 0, 0), confidence=95)


def test_outcome_sums_added_value_by_value_or_merged_from_storage_agree():
    values = [1.0, 0.0, 2.5, 1.0, -3.0]
    one = OutcomeSums()
    for v in values:
        one.add_value(v)
    halves = OutcomeSums()
    for part in (values[:2], values[2:]):
        stored = OutcomeSums()
        for v in part:
            stored.add_value(v)
        halves.merge(stored.as_json())
    assert one == halves
    assert one.mean == MeanStats.from_values(values)
    assert one.rate == RateStats(n=5, successes=2)
    assert one.as_json() == {"n": 5, "sum": 1.5, "sumsq": 17.25, "ones": 2}
