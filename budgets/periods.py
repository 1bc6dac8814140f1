"""Budget periods: the one place that turns (period, instant, zone) into UTC bounds.

Calendar periods (hour, day, week, month) are counted on the envelope's local wall
clock, in its IANA zone: the bounds are local midnights (or hours) converted to UTC,
so a local day is 23 or 25 hours long on a DST change and a month is whatever its
calendar says (Jan 31 → Feb 1, Feb 29 in leap years). Every zone in use today has an
offset that is a multiple of 15 minutes (Asia/Kolkata +5:30, Asia/Kathmandu +5:45),
so every bound falls on a rollup bucket boundary and a period is an exact sum of
15-minute rollups.

A rolling window is the last N minutes ending at the *end of the current 15-minute
bucket*: rollups have 15-minute granularity, so the window moves in 15-minute steps
and always includes the partly elapsed current bucket (it covers between N-15 and N
minutes of elapsed time). Rolling windows ignore the time zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from traces.rollups import BUCKET, bucket_floor

HOUR = "hour"
DAY = "day"
WEEK = "week"
MONTH = "month"
ROLLING = "rolling"
CALENDAR_PERIODS = (HOUR, DAY, WEEK, MONTH)


def zone(tz: str | ZoneInfo) -> ZoneInfo:
    """A ZoneInfo from a name; raises ZoneInfoNotFoundError (a KeyError) when unknown."""
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    # A wall time that does not exist (a zone whose DST starts at midnight) maps, with
    # fold=0, to the transition instant itself; one that exists twice maps to its first
    # occurrence. Both neighbouring periods compute the bound the same way, so they
    # always meet exactly.
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def period_bounds(
    *,
    period: str,
    at: datetime,
    tz: str | ZoneInfo = "UTC",
    rolling_minutes: int | None = None,
) -> tuple[datetime, datetime]:
    """[start, end) of the period containing `at`, as aware UTC datetimes.

    - hour: the elapsed hour that starts on a local :00 (an hour is always 60 minutes;
      the repeated hour of a fall-back day is two distinct periods);
    - day: local midnight to the next local midnight (23, 24 or 25 hours);
    - week: Monday 00:00 local to the next Monday 00:00 local;
    - month: the 1st 00:00 local to the 1st of the next month 00:00 local;
    - rolling: `rolling_minutes` ending at the end of the 15-minute bucket holding `at`.
    """
    if at.tzinfo is None:
        raise ValueError("period_bounds needs an aware datetime")
    if period == ROLLING:
        if not rolling_minutes or rolling_minutes <= 0:
            raise ValueError("a rolling period needs rolling_minutes > 0")
        end = bucket_floor(at) + BUCKET
        return end - timedelta(minutes=rolling_minutes), end

    tzinfo = zone(tz)
    local = at.astimezone(tzinfo)
    if period == HOUR:
        # Subtracting the local minutes from the instant keeps the fold of the repeated
        # hour, which rebuilding a wall time would lose.
        start = at.astimezone(UTC) - timedelta(
            minutes=local.minute, seconds=local.second, microseconds=local.microsecond
        )
        return start, start + timedelta(hours=1)
    if period == DAY:
        first = local.date()
        following = first + timedelta(days=1)
    elif period == WEEK:
        first = local.date() - timedelta(days=local.weekday())
        following = first + timedelta(days=7)
    elif period == MONTH:
        first = local.date().replace(day=1)
        following = (
            date(first.year + 1, 1, 1)
            if first.month == 12
            else date(first.year, first.month + 1, 1)
        )
    else:
        raise ValueError(f"unknown period {period!r}")
    return _local_midnight(first, tzinfo), _local_midnight(following, tzinfo)


def elapsed_fraction(start: datetime, end: datetime, at: datetime) -> float:
    """How much of [start, end) has passed at `at`, clamped to 0..1."""
    total = (end - start).total_seconds()
    if total <= 0:
        return 1.0
    return min(1.0, max(0.0, (at - start).total_seconds() / total))
