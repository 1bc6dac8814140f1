"""Reads for the budget, alert and cost pages and their API.

Everything that returns project data goes through `project_list_for_user`, so another
project's envelope or alert is a 404 and never appears in a list. Usage and cost come
from the 15-minute rollups (`traces.Rollup`), never from spans; only envelopes scoped to
a user or session id, and per-run caps, read the trace summaries, because rollups do
not keep those dimensions.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404

from budgets.models import Alert, BudgetEnvelope, Delivery, StateChange
from budgets.periods import period_bounds
from traces.models import Project, Trace, TraceStatus
from traces.rollups import BUCKET, Histogram, bucket_floor
from traces.selectors import project_list_for_user, rollup_queryset

Metric = BudgetEnvelope.Metric

# ------------------------------------------------------------------ envelopes


def envelope_list_for_user(*, user, project_slug: str = "") -> QuerySet[BudgetEnvelope]:
    """Envelopes of the projects the user can see, by project then name."""
    qs = BudgetEnvelope.objects.filter(project__in=project_list_for_user(user=user))
    if project_slug:
        qs = qs.filter(project__slug=project_slug)
    return qs.select_related("project").order_by("project__name", "name", "pk")


def envelope_get_for_user(*, user, envelope_id: int) -> BudgetEnvelope:
    """One envelope, or 404 when it does not exist or belongs to a project the user cannot see."""
    try:
        return (
            BudgetEnvelope.objects.select_related("project")
            .filter(project__in=project_list_for_user(user=user))
            .get(pk=envelope_id)
        )
    except BudgetEnvelope.DoesNotExist:
        raise Http404("No such budget") from None


def state_change_list(*, envelope: BudgetEnvelope, limit: int = 20) -> list[StateChange]:
    return list(envelope.state_changes.order_by("-created_at", "-pk")[:limit])


def envelope_usage_percent(envelope: BudgetEnvelope) -> float | None:
    """Last evaluated usage as a percentage of the limit, None before the first evaluation."""
    return _percent(envelope.last_value, envelope.limit)


def envelope_forecast_percent(envelope: BudgetEnvelope) -> float | None:
    return _percent(envelope.last_forecast, envelope.limit)


def _percent(value, limit) -> float | None:
    if value is None or not limit:
        return None
    return float(Decimal(value) / Decimal(limit) * 100)


def envelope_tz(envelope: BudgetEnvelope) -> tzinfo:
    try:
        return ZoneInfo(envelope.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def envelope_current_period(
    *, envelope: BudgetEnvelope, now: datetime
) -> tuple[datetime, datetime]:
    """The period the envelope is in at `now`: the evaluated one while it lasts, else
    computed by the one period helper (budgets.periods)."""
    start, end = envelope.last_period_start, envelope.last_period_end
    if start and end and start <= now < end:
        return start, end
    return period_bounds(
        period=envelope.period,
        at=now,
        tz=envelope.timezone or "UTC",
        rolling_minutes=envelope.rolling_minutes,
    )


def envelope_scope_text(envelope: BudgetEnvelope) -> str:
    """ "agent support-bot · model gpt-4o" or "whole project"."""
    parts = []
    if envelope.agent:
        parts.append(f"agent {envelope.agent}")
    if envelope.model:
        parts.append(f"model {envelope.model}")
    if envelope.service_name:
        parts.append(f"service {envelope.service_name}")
    if envelope.attribute and envelope.attribute_value:
        parts.append(f"{envelope.attribute} = {envelope.attribute_value}")
    return " · ".join(parts) or "whole project"


CUMULATIVE_METRICS = {Metric.COST, Metric.TOKENS}
RUN_CAP_METRICS = {Metric.RUN_COST, Metric.RUN_DURATION}


@dataclass
class UsageSeries:
    """An envelope's usage over its period, in the unit of its limit.

    kind: "cumulative" (cost, tokens: running sum at the end of each 15-minute bucket),
    "running" (p95 latency, error rate: the value over the period so far) or "runs"
    (per-run caps: one point per run, the most offending first).
    """

    kind: str
    points: list[tuple[datetime, float]] = field(default_factory=list)
    trace_ids: list[str] = field(default_factory=list)
    source: str = "rollups"
    note: str = ""
    unpriced: int = 0  # model calls in scope with no known price (not in a cost)


RUN_POINTS_LIMIT = 300
TRACE_SCAN_LIMIT = 50_000


def envelope_usage_series(
    *, envelope: BudgetEnvelope, start: datetime, end: datetime, now: datetime
) -> UsageSeries:
    """Usage over [start, min(end, now)) — one or two queries whatever the period's length."""
    stop = min(end, now)
    metric = envelope.metric
    if metric in RUN_CAP_METRICS:
        return _run_points(envelope=envelope, start=start, stop=stop)
    kind = "cumulative" if metric in CUMULATIVE_METRICS else "running"
    if envelope.attribute and envelope.attribute_value:
        per_bucket = _buckets_from_traces(envelope=envelope, start=start, stop=stop)
        source = "traces"
        note = (
            f"Computed from the runs with {envelope.attribute} = {envelope.attribute_value}"
            + (" (a model scope cannot narrow runs)" if envelope.model else "")
            + "."
        )
    else:
        per_bucket = _buckets_from_rollups(envelope=envelope, start=start, stop=stop)
        source, note = "rollups", ""
    series = UsageSeries(kind=kind, source=source, note=note)
    series.points = _accumulate(metric=metric, per_bucket=per_bucket, start=start, stop=stop)
    series.unpriced = sum(s.unpriced for s in per_bucket.values())
    return series


@dataclass
class _Sums:
    cost: Decimal = Decimal(0)
    tokens: int = 0
    runs: int = 0
    errors: int = 0
    unpriced: int = 0
    hist: dict = field(default_factory=dict)


def _buckets_from_rollups(*, envelope, start, stop) -> dict[datetime, _Sums]:
    qs = rollup_queryset(
        project_id=envelope.project_id,
        start=start,
        end=stop,
        agent=envelope.agent,
        model=envelope.model,
        service_name=envelope.service_name,
    )
    out: dict[datetime, _Sums] = defaultdict(_Sums)
    if envelope.metric == Metric.P95_LATENCY:
        for bucket, hist in qs.filter(trace_count__gt=0).values_list("bucket_start", "run_latency"):
            Histogram.merge(out[bucket].hist, hist or {})
        return out
    rows = (
        qs.values("bucket_start")
        .annotate(
            cost=Sum("cost_usd"),
            inp=Sum("input_tokens"),
            outp=Sum("output_tokens"),
            runs=Sum("trace_count"),
            errors=Sum("run_error_count"),
            unpriced=Sum("unpriced_count"),
        )
        .order_by()
    )
    for r in rows:
        s = out[r["bucket_start"]]
        s.cost = Decimal(r["cost"] or 0)
        s.tokens = (r["inp"] or 0) + (r["outp"] or 0)
        s.runs = r["runs"] or 0
        s.errors = r["errors"] or 0
        s.unpriced = r["unpriced"] or 0
    return out


def _scoped_traces(*, envelope, start, stop) -> QuerySet[Trace]:
    qs = Trace.objects.filter(
        project_id=envelope.project_id, started_at__gte=start, started_at__lt=stop
    )
    if envelope.agent:
        qs = qs.filter(agent=envelope.agent)
    if envelope.service_name:
        qs = qs.filter(service_name=envelope.service_name)
    if envelope.attribute and envelope.attribute_value:
        qs = qs.filter(**{envelope.attribute: envelope.attribute_value})
    return qs


def _buckets_from_traces(*, envelope, start, stop) -> dict[datetime, _Sums]:
    out: dict[datetime, _Sums] = defaultdict(_Sums)
    rows = _scoped_traces(envelope=envelope, start=start, stop=stop).values_list(
        "started_at",
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "duration_ms",
        "status",
        "unpriced_count",
    )[:TRACE_SCAN_LIMIT]
    for started_at, cost, inp, outp, duration_ms, status, unpriced in rows:
        s = out[bucket_floor(started_at)]
        s.unpriced += unpriced
        s.cost += Decimal(cost or 0)
        s.tokens += inp + outp
        s.runs += 1
        s.errors += status == TraceStatus.ERROR
        Histogram.add_value(s.hist, duration_ms)
    return out


def _accumulate(*, metric, per_bucket, start, stop) -> list[tuple[datetime, float]]:
    """One point at the end of every bucket from start to stop (dense, so flat stretches
    draw flat); cumulative metrics start from zero at the period start."""
    points: list[tuple[datetime, float]] = []
    if metric in CUMULATIVE_METRICS:
        points.append((start, 0.0))
    total = _Sums()
    at = bucket_floor(start)
    while at < stop:
        s = per_bucket.get(at)
        if s is not None:
            total.cost += s.cost
            total.tokens += s.tokens
            total.runs += s.runs
            total.errors += s.errors
            Histogram.merge(total.hist, s.hist)
        point_at = min(at + BUCKET, stop)
        if metric == Metric.COST:
            points.append((point_at, float(total.cost)))
        elif metric == Metric.TOKENS:
            points.append((point_at, float(total.tokens)))
        elif metric == Metric.ERROR_RATE:
            if total.runs:
                points.append((point_at, total.errors / total.runs * 100))
        elif metric == Metric.P95_LATENCY:
            ms = Histogram.quantile(total.hist, 0.95)
            if ms is not None:
                points.append((point_at, ms / 1000))
        at += BUCKET
    return points


def _run_points(*, envelope, start, stop) -> UsageSeries:
    """Per-run caps: the most offending runs of the period, one point each."""
    field_name = "cost_usd" if envelope.metric == Metric.RUN_COST else "duration_ms"
    rows = list(
        _scoped_traces(envelope=envelope, start=start, stop=stop)
        .order_by(f"-{field_name}", "-started_at")
        .values_list("started_at", field_name, "trace_id")[:RUN_POINTS_LIMIT]
    )
    scale = 1 if envelope.metric == Metric.RUN_COST else 1 / 1000
    rows.sort(key=lambda r: r[0])
    note = ""
    if len(rows) == RUN_POINTS_LIMIT:
        note = f"The {RUN_POINTS_LIMIT} {'costliest' if scale == 1 else 'longest'} runs."
    return UsageSeries(
        kind="runs",
        points=[(at, float(value or 0) * scale) for at, value, _ in rows],
        trace_ids=[tid for _, _, tid in rows],
        source="traces",
        note=note,
    )


# ------------------------------------------------------------------ alerts

ALERT_TABS = ("firing", "acknowledged", "resolved", "all")


def alert_list_for_user(
    *, user, status: str = "", project_slug: str = "", envelope_id: int | None = None
) -> QuerySet[Alert]:
    """Alerts of the user's projects, newest first."""
    qs = Alert.objects.filter(project__in=project_list_for_user(user=user))
    if status:
        qs = qs.filter(status=status)
    if project_slug:
        qs = qs.filter(project__slug=project_slug)
    if envelope_id is not None:
        qs = qs.filter(envelope_id=envelope_id)
    return qs.select_related("project", "envelope", "acknowledged_by").order_by(
        "-created_at", "-pk"
    )


def alert_status_counts_for_user(*, user, project_slug: str = "") -> dict[str, int]:
    """{"firing": n, "acknowledged": n, "resolved": n, "all": n} in one query."""
    qs = Alert.objects.filter(project__in=project_list_for_user(user=user))
    if project_slug:
        qs = qs.filter(project__slug=project_slug)
    counts = qs.aggregate(
        **{s: Count("pk", filter=Q(status=s)) for s in Alert.Status.values},
        all=Count("pk"),
    )
    return {k: v or 0 for k, v in counts.items()}


def firing_alert_count_for_user(*, user) -> int:
    return Alert.objects.filter(
        project__in=project_list_for_user(user=user), status=Alert.Status.FIRING
    ).count()


def alert_get_for_user(*, user, alert_id: int) -> Alert:
    """One alert, or 404 when it does not exist or belongs to a project the user cannot see."""
    try:
        return (
            Alert.objects.select_related("project", "envelope", "acknowledged_by")
            .filter(project__in=project_list_for_user(user=user))
            .get(pk=alert_id)
        )
    except Alert.DoesNotExist:
        raise Http404("No such alert") from None


def delivery_list_for_alert(*, alert: Alert) -> list[Delivery]:
    return list(alert.deliveries.select_related("channel").order_by("channel__name", "pk"))


def trace_list_for_alert(*, alert: Alert) -> tuple[list[Trace], list[str]]:
    """The traces stored on the alert, in the evaluator's order (costliest, largest,
    slowest or latest failed first, by metric), and the ids no longer stored."""
    ids = list(dict.fromkeys(str(t).lower() for t in (alert.trace_ids or [])))[:100]
    if not ids:
        return [], []
    found = {
        t.trace_id: t
        for t in Trace.objects.filter(project_id=alert.project_id, trace_id__in=ids).select_related(
            "project"
        )
    }
    return [found[i] for i in ids if i in found], [i for i in ids if i not in found]


# ------------------------------------------------------------------ cost explorer

BUCKET_SIZES = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
WINDOWS = {
    "24h": (timedelta(hours=24), "15m"),
    "7d": (timedelta(days=7), "1h"),
    "30d": (timedelta(days=30), "1d"),
}
MAX_BUCKETS = 2000
MAX_WINDOW = timedelta(days=400)
GROUP_BYS = ("agent", "model")
NO_GROUP = {"agent": "(no agent)", "model": "(no model)"}


def bucket_for_window(span: timedelta) -> str:
    """15 minutes up to two days, hours up to two weeks, days beyond."""
    if span <= timedelta(days=2):
        return "15m"
    if span <= timedelta(days=14):
        return "1h"
    return "1d"


def bucket_floor_in(dt: datetime, *, bucket: str, tz: tzinfo) -> datetime:
    """Start of the bucket holding dt; hours and days count in `tz`."""
    if bucket == "15m":
        return bucket_floor(dt)
    local = dt.astimezone(tz)
    if bucket == "1h":
        # An hour in any zone is whole 15-minute buckets; floor the local clock.
        floored = local.replace(minute=0, second=0, microsecond=0)
        return floored.astimezone(UTC)
    return datetime.combine(local.date(), time(0), tzinfo=tz).astimezone(UTC)


def bucket_starts(*, start: datetime, end: datetime, bucket: str, tz: tzinfo) -> list[datetime]:
    """Starts of every bucket overlapping [start, end)."""
    at = bucket_floor_in(start, bucket=bucket, tz=tz)
    starts = []
    while at < end and len(starts) <= MAX_BUCKETS:
        starts.append(at)
        if bucket == "1d":
            local = at.astimezone(tz).date() + timedelta(days=1)
            at = datetime.combine(local, time(0), tzinfo=tz).astimezone(UTC)
        else:
            at = at + BUCKET_SIZES[bucket]
    return starts


def cost_window(*, window: str, now: datetime, tz: tzinfo) -> tuple[datetime, datetime, str]:
    """The last 24 h / 7 d / 30 d up to the end of the current bucket."""
    span, bucket = WINDOWS[window]
    end = bucket_floor_in(now, bucket=bucket, tz=tz)
    if bucket == "1d":
        nxt = end.astimezone(tz).date() + timedelta(days=1)
        end = datetime.combine(nxt, time(0), tzinfo=tz).astimezone(UTC)
        start = datetime.combine(nxt - timedelta(days=span.days), time(0), tzinfo=tz)
        return start.astimezone(UTC), end, bucket
    end = end + BUCKET_SIZES[bucket]
    return end - span, end, bucket


@dataclass
class GroupSums:
    cost_usd: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    runs: int = 0
    errors: int = 0
    unpriced: int = 0
    llm_calls: int = 0
    run_latency: dict = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.runs * 100 if self.runs else None

    def latency_ms(self, q: float) -> float | None:
        return Histogram.quantile(self.run_latency, q)

    @property
    def p95(self) -> float | None:
        return self.latency_ms(0.95)

    def add(self, other: GroupSums) -> None:
        self.cost_usd += other.cost_usd
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.runs += other.runs
        self.errors += other.errors
        self.unpriced += other.unpriced
        self.llm_calls += other.llm_calls
        Histogram.merge(self.run_latency, other.run_latency)


@dataclass
class CostBucket(GroupSums):
    start: datetime | None = None
    groups: dict[str, GroupSums] = field(default_factory=dict)


@dataclass
class CostSeries:
    project: Project
    start: datetime
    end: datetime
    bucket: str
    group_by: str
    tz: tzinfo
    buckets: list[CostBucket]
    groups: list[str]  # costliest first
    group_totals: dict[str, GroupSums]
    totals: GroupSums


def cost_series(
    *,
    project: Project,
    start: datetime,
    end: datetime,
    bucket: str,
    tz: tzinfo,
    group_by: str = "agent",
) -> CostSeries:
    """Cost, tokens, runs, errors, unpriced calls and run latency per time bucket and per
    agent or model, from the rollups: two queries whatever the window."""
    starts = bucket_starts(start=start, end=end, bucket=bucket, tz=tz)
    buckets = [CostBucket(start=s) for s in starts]
    group_totals: dict[str, GroupSums] = defaultdict(GroupSums)
    totals = GroupSums()
    if not starts:
        return CostSeries(project, start, end, bucket, group_by, tz, [], [], {}, totals)
    qs = rollup_queryset(project_id=project.pk, start=starts[0], end=end)
    sums = (
        qs.values("bucket_start", group_by)
        .annotate(
            cost=Sum("cost_usd"),
            inp=Sum("input_tokens"),
            outp=Sum("output_tokens"),
            runs=Sum("trace_count"),
            errors=Sum("run_error_count"),
            unpriced=Sum("unpriced_count"),
            llm=Sum("llm_call_count"),
        )
        .order_by()
    )

    def slot(at: datetime, key: str) -> tuple[CostBucket, GroupSums]:
        b = buckets[bisect.bisect_right(starts, at) - 1]
        return b, b.groups.setdefault(key or NO_GROUP[group_by], GroupSums())

    for r in sums:
        b, g = slot(r["bucket_start"], r[group_by])
        g.cost_usd += Decimal(r["cost"] or 0)
        g.input_tokens += r["inp"] or 0
        g.output_tokens += r["outp"] or 0
        g.runs += r["runs"] or 0
        g.errors += r["errors"] or 0
        g.unpriced += r["unpriced"] or 0
        g.llm_calls += r["llm"] or 0
    # Only rows with runs carry a run histogram; merging them is the window's percentile.
    for at, key, hist in qs.filter(trace_count__gt=0).values_list(
        "bucket_start", group_by, "run_latency"
    ):
        _, g = slot(at, key)
        Histogram.merge(g.run_latency, hist or {})
    for b in buckets:
        for key, g in b.groups.items():
            b.add(g)
            group_totals[key].add(g)
        totals.add(b)
    groups = sorted(
        group_totals, key=lambda k: (-group_totals[k].cost_usd, -group_totals[k].tokens, k)
    )
    return CostSeries(
        project, start, end, bucket, group_by, tz, buckets, groups, dict(group_totals), totals
    )
