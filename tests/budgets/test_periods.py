from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from budgets.periods import elapsed_fraction, period_bounds


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def bounds(period, at, tz="UTC", minutes=None):
    return period_bounds(period=period, at=at, tz=tz, rolling_minutes=minutes)


# ------------------------------------------------------------------ month ends


def test_month_of_jan_31_ends_at_feb_1():
    assert bounds("month", utc(2025, 1, 31, 23, 59)) == (utc(2025, 1, 1), utc(2025, 2, 1))


def test_jan_31_late_evening_utc_is_already_february_in_paris():
    # 23:30 UTC on Jan 31 is 00:30 on Feb 1 in Paris; 2024 is a leap year.
    start, end = bounds("month", utc(2024, 1, 31, 23, 30), "Europe/Paris")
    assert (start, end) == (utc(2024, 1, 31, 23), utc(2024, 2, 29, 23))
    assert end - start == timedelta(days=29)


def test_feb_29_of_a_leap_year():
    at = utc(2024, 2, 29, 12)
    assert bounds("month", at) == (utc(2024, 2, 1), utc(2024, 3, 1))
    assert bounds("day", at) == (utc(2024, 2, 29), utc(2024, 3, 1))
    assert bounds("month", utc(2025, 2, 28, 12)) == (utc(2025, 2, 1), utc(2025, 3, 1))


def test_december_rolls_over_into_january_of_the_next_year():
    at = utc(2026, 1, 1, 4, 59)  # Dec 31 23:59 in New York
    assert bounds("month", at, "America/New_York") == (utc(2025, 12, 1, 5), utc(2026, 1, 1, 5))
    assert bounds("month", at) == (utc(2026, 1, 1), utc(2026, 2, 1))
    # The week of Wednesday Dec 31 runs Monday Dec 29 to Monday Jan 5.
    assert bounds("week", at, "America/New_York") == (utc(2025, 12, 29, 5), utc(2026, 1, 5, 5))


# ------------------------------------------------------------------ DST


@pytest.mark.parametrize(
    ("tz", "at", "start", "hours"),
    [
        ("Europe/Paris", utc(2025, 3, 30, 12), utc(2025, 3, 29, 23), 23),
        ("Europe/Paris", utc(2025, 10, 26, 12), utc(2025, 10, 25, 22), 25),
        ("America/New_York", utc(2025, 3, 9, 12), utc(2025, 3, 9, 5), 23),
        ("America/New_York", utc(2025, 11, 2, 12), utc(2025, 11, 2, 4), 25),
    ],
)
def test_a_dst_day_is_23_or_25_hours_long(tz, at, start, hours):
    s, e = bounds("day", at, tz)
    assert s == start
    assert e - s == timedelta(hours=hours)
    assert e.astimezone(ZoneInfo(tz)).hour == 0


@pytest.mark.parametrize(
    ("tz", "at", "start", "length"),
    [
        # Spring forward on Sunday Mar 30: the week Mon 24 – Mon 31 is an hour short.
        ("Europe/Paris", utc(2025, 3, 27, 12), utc(2025, 3, 23, 23), timedelta(days=7, hours=-1)),
        # Fall back on Sunday Nov 2: the week Mon Oct 27 – Mon Nov 3 is an hour long.
        (
            "America/New_York",
            utc(2025, 11, 2, 12),
            utc(2025, 10, 27, 4),
            timedelta(days=7, hours=1),
        ),
    ],
)
def test_the_week_containing_a_dst_change_starts_monday_local_midnight(tz, at, start, length):
    s, e = bounds("week", at, tz)
    assert s == start
    assert s.astimezone(ZoneInfo(tz)).weekday() == 0
    assert e - s == length


def test_the_repeated_hour_of_a_fall_back_night_is_two_hours():
    # 02:00–03:00 happens twice in Paris on Oct 26 2025: first CEST, then CET.
    first = bounds("hour", utc(2025, 10, 26, 0, 30), "Europe/Paris")
    second = bounds("hour", utc(2025, 10, 26, 1, 30), "Europe/Paris")
    assert first == (utc(2025, 10, 26, 0), utc(2025, 10, 26, 1))
    assert second == (utc(2025, 10, 26, 1), utc(2025, 10, 26, 2))


def test_the_month_of_a_dst_change_ends_at_local_midnight():
    s, e = bounds("month", utc(2025, 3, 15), "Europe/Paris")
    assert (s, e) == (utc(2025, 2, 28, 23), utc(2025, 3, 31, 22))
    assert e - s == timedelta(days=31, hours=-1)


# ------------------------------------------------------------------ odd offsets


def test_kolkata_days_start_at_half_past_six_utc():
    s, e = bounds("day", utc(2025, 6, 15, 20), "Asia/Kolkata")  # 01:30 on Jun 16 local
    assert (s, e) == (utc(2025, 6, 15, 18, 30), utc(2025, 6, 16, 18, 30))


def test_kathmandu_days_and_hours_fall_on_quarter_hours():
    s, e = bounds("day", utc(2025, 1, 1, 20), "Asia/Kathmandu")  # +5:45
    assert (s, e) == (utc(2025, 1, 1, 18, 15), utc(2025, 1, 2, 18, 15))
    assert bounds("hour", utc(2025, 1, 1, 20), "Asia/Kathmandu") == (
        utc(2025, 1, 1, 19, 15),
        utc(2025, 1, 1, 20, 15),
    )


@pytest.mark.parametrize(
    "tz",
    [
        "UTC",
        "Europe/Paris",
        "America/New_York",
        "Asia/Kolkata",
        "Asia/Kathmandu",
        "Australia/Sydney",
    ],
)
@pytest.mark.parametrize("period", ["hour", "day", "week", "month"])
def test_periods_tile_the_year_on_bucket_boundaries(tz, period):
    """Every instant of 2025 lies in exactly one period; periods meet without gap or
    overlap and every bound is a 15-minute rollup boundary."""
    at = utc(2025, 1, 1)
    step = timedelta(minutes=45) if period == "hour" else timedelta(hours=5)
    previous = None
    while at < utc(2026, 1, 2):
        s, e = bounds(period, at, tz)
        assert s <= at < e
        assert s.timestamp() % 900 == 0 and e.timestamp() % 900 == 0
        if previous and previous != (s, e):
            assert s == previous[1]
        previous = (s, e)
        at += step


# ------------------------------------------------------------------ rolling windows


def test_a_rolling_window_ends_at_the_end_of_the_current_bucket():
    assert bounds("rolling", utc(2025, 5, 5, 10, 7), "Asia/Kathmandu", 60) == (
        utc(2025, 5, 5, 9, 15),
        utc(2025, 5, 5, 10, 15),
    )
    assert bounds("rolling", utc(2025, 5, 5, 10, 15), minutes=60) == (
        utc(2025, 5, 5, 9, 30),
        utc(2025, 5, 5, 10, 30),
    )


def test_it_refuses_what_it_cannot_compute():
    with pytest.raises(ValueError, match="rolling_minutes"):
        bounds("rolling", utc(2025, 5, 5))
    with pytest.raises(ValueError, match="aware"):
        bounds("day", datetime(2025, 5, 5))
    with pytest.raises(ValueError, match="unknown period"):
        bounds("fortnight", utc(2025, 5, 5))


def test_elapsed_fraction_is_clamped():
    s, e = utc(2025, 11, 1), utc(2025, 12, 1)
    assert elapsed_fraction(s, e, utc(2025, 11, 16)) == 0.5
    assert elapsed_fraction(s, e, utc(2025, 10, 1)) == 0.0
    assert elapsed_fraction(s, e, utc(2026, 1, 1)) == 1.0
