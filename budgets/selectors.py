"""Reads for the budget, alert and cost pages and their API.

Everything that returns project data goes through `project_list_for_user`, so another
project's envelope or alert is a 404 and never appears in a list. An envelope's usage is
measured by one rule, `usage_measure` (see "usage" below), for the evaluation and the
chart alike. Cost comes from the 15-minute rollups (`traces.Rollup`), never from spans.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Count, Max, Q, QuerySet, Sum
from django.db.models.functions import ExtractMinute, Floor, TruncHour
from django.http import Http404
from django.utils import timezone

from budgets.models import Alert, BudgetEnvelope, Channel, Delivery, StateChange
from budgets.periods import period_bounds
from traces.models import Project, Rollup, Trace, TraceStatus
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


@dataclass
class EnvelopeRow:
    """An envelope with what its row (list, detail header, Overview card) shows."""

    envelope: BudgetEnvelope
    usage_percent: float | None
    forecast_percent: float | None
    scope: str
    tz: tzinfo

    @classmethod
    def of(cls, envelope: BudgetEnvelope) -> EnvelopeRow:
        return cls(
            envelope=envelope,
            usage_percent=envelope_usage_percent(envelope),
            forecast_percent=envelope_forecast_percent(envelope),
            scope=envelope_scope_text(envelope),
            tz=envelope_tz(envelope),
        )


def envelope_rows_for_user(*, user, project_slug: str = "") -> list[EnvelopeRow]:
    """The Budgets page: every envelope the user can see, as its row."""
    return [EnvelopeRow.of(e) for e in envelope_list_for_user(user=user, project_slug=project_slug)]


def cost_envelope_rows(*, project: Project) -> list[EnvelopeRow]:
    """The project's enabled cost envelopes for the day and the month (the Overview's
    budget card). The caller has already checked that the user may see the project."""
    envelopes = BudgetEnvelope.objects.filter(
        project=project,
        enabled=True,
        metric=Metric.COST,
        period__in=[BudgetEnvelope.Period.DAY, BudgetEnvelope.Period.MONTH],
    ).order_by("period", "name")
    return [EnvelopeRow.of(e) for e in envelopes]


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
    """The zone an envelope's times are shown in: its own for a calendar period (where its
    days start), the reader's for a rolling window (a trailing range, in no zone)."""
    if envelope.period == BudgetEnvelope.Period.ROLLING:
        return timezone.get_current_timezone()
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


# ------------------------------------------------------------------ usage: the one rule
#
# Every figure of an envelope's usage — the evaluation that sets its state and fires its
# alerts, the chart of its period, the Budgets page and the API (both show what the
# evaluation stored) — comes from `usage_measure`. Which spend and which runs count:
#
# - cost and tokens: every span in scope as soon as it is folded, finished run or not.
#   From the rollups, in the 15-minute bucket of the span's start, for the span's own
#   agent, model and service. A user or session scope reads the trace summaries (rollups
#   have no such dimension): a trace counts whole, in the bucket of its start, for its
#   own agent and service; a model cannot narrow it.
# - runs (error rate, p95 run latency): a run counts once its root span has arrived, in
#   the bucket of its start; its status and duration are the root span's. A run still
#   in progress is in no ratio: its outcome and length are not known yet.
# - per-run caps: every run that started in the period, finished or not (a run already
#   past its cap is over it); the value is the worst run.
# Nothing is read in pages of rows: sums are taken in the database, whatever the period
# holds, and only p95 over the trace summaries reads one duration per finished run.

CUMULATIVE_METRICS = {Metric.COST, Metric.TOKENS}
RUN_CAP_METRICS = {Metric.RUN_COST, Metric.RUN_DURATION}
_FINISHED = Q(status__in=(TraceStatus.OK, TraceStatus.ERROR))


@dataclass(frozen=True)
class UsageScope:
    """What an envelope measures: one metric over a narrowing of its project."""

    metric: str
    agent: str = ""
    model: str = ""
    service_name: str = ""
    attribute: str = ""
    attribute_value: str = ""

    @classmethod
    def of(cls, envelope: BudgetEnvelope) -> UsageScope:
        attribute = envelope.attribute or ""
        return cls(
            metric=envelope.metric,
            agent=envelope.agent or "",
            model=envelope.model or "",
            service_name=envelope.service_name or "",
            attribute=attribute,
            attribute_value=(envelope.attribute_value or "") if attribute else "",
        )

    @property
    def source(self) -> str:
        """Where the usage is read: "rollups", or "traces" where rollups cannot narrow."""
        if self.metric in RUN_CAP_METRICS or self.attribute:
            return "traces"
        return "rollups"

    def matches(self, row: dict) -> bool:
        """Whether a grouped row is in scope; a dimension the row lacks does not narrow."""
        for name in ("agent", "model", "service_name"):
            wanted = getattr(self, name)
            if wanted and name in row and row[name] != wanted:
                return False
        return not self.attribute or row.get(self.attribute) == self.attribute_value


@dataclass
class UsageSums:
    """What a scope used over some time: enough to compute any metric's value."""

    cost: Decimal = Decimal(0)
    tokens: int = 0
    runs: int = 0  # finished runs
    run_errors: int = 0
    unpriced: int = 0  # model calls in scope with no known price (not in `cost`)
    hist: dict = field(default_factory=dict)  # run latency (ms), rollups' histogram
    worst_cost: Decimal = Decimal(0)  # of one run, for per-run caps
    worst_ms: float = 0.0

    def add(self, other: UsageSums) -> None:
        self.cost += other.cost
        self.tokens += other.tokens
        self.runs += other.runs
        self.run_errors += other.run_errors
        self.unpriced += other.unpriced
        Histogram.merge(self.hist, other.hist)
        self.worst_cost = max(self.worst_cost, other.worst_cost)
        self.worst_ms = max(self.worst_ms, other.worst_ms)


def usage_value(metric: str, sums: UsageSums) -> Decimal:
    """The metric's value, in the unit of its limit, from what the scope used."""
    if metric == Metric.COST:
        return sums.cost
    if metric == Metric.TOKENS:
        return Decimal(sums.tokens)
    if metric == Metric.ERROR_RATE:
        return Decimal(100 * sums.run_errors) / Decimal(sums.runs) if sums.runs else Decimal(0)
    if metric == Metric.P95_LATENCY:
        ms = Histogram.quantile(sums.hist, 0.95)
        return Decimal(repr(ms)) / 1000 if ms is not None else Decimal(0)
    if metric == Metric.RUN_COST:
        return sums.worst_cost
    if metric == Metric.RUN_DURATION:
        return Decimal(repr(sums.worst_ms)) / 1000
    raise ValueError(f"unknown budget metric {metric!r}")


def usage_measure(
    *,
    project_id: int,
    start: datetime,
    end: datetime,
    scopes: Iterable[UsageScope],
    by_bucket: bool = False,
) -> dict[UsageScope, dict[datetime | None, UsageSums]]:
    """What each scope used in [start, end): under the key None, or per 15-minute bucket
    start with `by_bucket` (per-run caps are never split by bucket).

    Scopes are measured together: one aggregate query per source for all of them (plus
    one of latency histograms when a p95 scope is among them, and one per kind of
    attribute for per-run caps), grouped by the dimensions they narrow on, whose rows
    are added up per scope in Python.
    """
    scopes = list(dict.fromkeys(scopes))
    out: dict[UsageScope, dict[datetime | None, UsageSums]] = {
        s: defaultdict(UsageSums) for s in scopes
    }
    window = {"project_id": project_id, "start": start, "end": end, "by_bucket": by_bucket}
    rollup_scopes = [s for s in scopes if s.source == "rollups"]
    trace_scopes = [s for s in scopes if s.source == "traces" and s.metric not in RUN_CAP_METRICS]
    caps: dict[str, list[UsageScope]] = defaultdict(list)
    for s in scopes:
        if s.metric in RUN_CAP_METRICS:
            caps[s.attribute].append(s)
    if rollup_scopes:
        _usage_from_rollups(rollup_scopes, out, **window)
    if trace_scopes:
        _usage_from_traces(trace_scopes, out, **window)
    for attribute, group in caps.items():
        _usage_of_worst_runs(group, attribute, out, project_id=project_id, start=start, end=end)
    return out


def _add_rows(scopes, out, rows, *, bucket_of) -> None:
    for row in rows:
        bucket = bucket_of(row)
        for scope in scopes:
            if scope.matches(row):
                sums = out[scope][bucket]
                sums.add(row["sums"])
                # Histograms are merged only where a percentile is read: the costly part.
                if scope.metric == Metric.P95_LATENCY and row.get("hist"):
                    Histogram.merge(sums.hist, row["hist"])


def _usage_from_rollups(scopes, out, *, project_id, start, end, by_bucket) -> None:
    qs = Rollup.objects.filter(
        project_id=project_id, bucket_start__gte=start, bucket_start__lt=end
    ).order_by()
    # Only the columns the scopes narrow on: fewer groups, fewer rows.
    dims = [n for n in ("agent", "model", "service_name") if any(getattr(s, n) for s in scopes)]
    group = [*dims, "bucket_start"] if by_bucket else dims
    aggregates = {
        "cost": Sum("cost_usd"),
        "inp": Sum("input_tokens"),
        "outp": Sum("output_tokens"),
        "runs": Sum("trace_count"),
        "errors": Sum("run_error_count"),
        "unpriced": Sum("unpriced_count"),
    }
    # values() without fields would group by every column: no narrowing, one total.
    rows = list(qs.values(*group).annotate(**aggregates)) if group else [qs.aggregate(**aggregates)]
    hists: dict[tuple, dict] = {}
    if any(s.metric == Metric.P95_LATENCY for s in scopes):
        for *key, hist in qs.filter(trace_count__gt=0).values_list(*group, "run_latency"):
            Histogram.merge(hists.setdefault(tuple(key), {}), hist or {})
    for row in rows:
        row["sums"] = UsageSums(
            cost=Decimal(row["cost"] or 0),
            tokens=(row["inp"] or 0) + (row["outp"] or 0),
            runs=row["runs"] or 0,
            run_errors=row["errors"] or 0,
            unpriced=row["unpriced"] or 0,
        )
        row["hist"] = hists.get(tuple(row[d] for d in group))
    _add_rows(scopes, out, rows, bucket_of=lambda r: r["bucket_start"] if by_bucket else None)


def _trace_window(*, project_id: int, start: datetime, end: datetime) -> QuerySet[Trace]:
    return Trace.objects.filter(
        project_id=project_id, started_at__gte=start, started_at__lt=end
    ).order_by()


def _attribute_filter(scopes) -> Q:
    wanted: dict[str, set[str]] = defaultdict(set)
    for s in scopes:
        wanted[s.attribute].add(s.attribute_value)
    cond = Q()
    for attribute, values in wanted.items():
        cond |= Q(**{f"{attribute}__in": values})
    return cond


def _bucket_of_start(row: dict) -> datetime:
    """The 15-minute bucket from the (UTC hour, quarter) the database grouped by."""
    return row["hour"].astimezone(UTC) + BUCKET * int(row["quarter"])


def _usage_from_traces(scopes, out, *, project_id, start, end, by_bucket) -> None:
    """User- or session-scoped cost, tokens and runs from the trace summaries, grouped
    by user or session, agent and service (and bucket), so one scan serves them all."""
    qs = _trace_window(project_id=project_id, start=start, end=end).filter(
        _attribute_filter(scopes)
    )
    dims = [*sorted({s.attribute for s in scopes}), "agent", "service_name"]
    group = list(dims)
    if by_bucket:
        # Buckets are 15 minutes of UTC: the hour and its quarter, grouped in SQL.
        qs = qs.annotate(
            hour=TruncHour("started_at", tzinfo=UTC),
            quarter=Floor(ExtractMinute("started_at", tzinfo=UTC) / 15),
        )
        group += ["hour", "quarter"]
    rows = list(
        qs.values(*group).annotate(
            cost=Sum("cost_usd"),
            inp=Sum("input_tokens"),
            outp=Sum("output_tokens"),
            runs=Count("pk", filter=_FINISHED),
            errors=Count("pk", filter=Q(status=TraceStatus.ERROR)),
            unpriced=Sum("unpriced_count"),
        )
    )

    def bucket_of(row):
        return _bucket_of_start(row) if by_bucket else None

    for row in rows:
        row["sums"] = UsageSums(
            cost=Decimal(row["cost"] or 0),
            tokens=(row["inp"] or 0) + (row["outp"] or 0),
            runs=row["runs"] or 0,
            run_errors=row["errors"] or 0,
            unpriced=row["unpriced"] or 0,
        )
    _add_rows(scopes, out, rows, bucket_of=bucket_of)
    p95 = [s for s in scopes if s.metric == Metric.P95_LATENCY]
    if p95:
        # Run durations through the rollups' log-scale histogram, so p95 means the same
        # whichever source a scope reads.
        for *key, started_at, ms in (
            qs.filter(_FINISHED).values_list(*dims, "started_at", "duration_ms").iterator()
        ):
            row = dict(zip(dims, key, strict=True))
            for scope in p95:
                if scope.matches(row):
                    hist = out[scope][bucket_floor(started_at) if by_bucket else None].hist
                    Histogram.add_value(hist, ms)


def _usage_of_worst_runs(scopes, attribute, out, *, project_id, start, end) -> None:
    """Per-run caps: the worst run per agent × service (× attribute), one query."""
    qs = _trace_window(project_id=project_id, start=start, end=end)
    dims = ["agent", "service_name"]
    if attribute:
        qs = qs.filter(_attribute_filter(scopes))
        dims.append(attribute)
    for row in qs.values(*dims).annotate(cost=Max("cost_usd"), ms=Max("duration_ms")):
        for scope in scopes:
            if scope.matches(row):
                out[scope][None].add(
                    UsageSums(worst_cost=Decimal(row["cost"] or 0), worst_ms=row["ms"] or 0.0)
                )


def usage_trace_queryset(
    *, project_id: int, scope: UsageScope, start: datetime, end: datetime
) -> QuerySet[Trace]:
    """The runs behind a trace-read scope's usage (and, narrowed by agent and service,
    the runs an alert lists for any scope)."""
    qs = _trace_window(project_id=project_id, start=start, end=end)
    if scope.agent:
        qs = qs.filter(agent=scope.agent)
    if scope.service_name:
        qs = qs.filter(service_name=scope.service_name)
    if scope.attribute:
        qs = qs.filter(**{scope.attribute: scope.attribute_value})
    return qs


@dataclass
class UsageSeries:
    """An envelope's usage over its period, in the unit of its limit.

    kind: "cumulative" (cost, tokens: running sum at the end of each 15-minute bucket),
    "running" (p95 latency, error rate: the value over the period so far) or "runs"
    (per-run caps: one point per run, the most offending first). The last point of a
    cumulative or running series is the value the evaluation computes at that time.
    """

    kind: str
    points: list[tuple[datetime, float]] = field(default_factory=list)
    trace_ids: list[str] = field(default_factory=list)
    source: str = "rollups"
    note: str = ""
    unpriced: int = 0  # model calls in scope with no known price (not in a cost)


RUN_POINTS_LIMIT = 300


def envelope_usage_series(
    *, envelope: BudgetEnvelope, start: datetime, end: datetime, now: datetime
) -> UsageSeries:
    """Usage over [start, min(end, now)), bucket by bucket, by the one usage rule."""
    stop = min(end, now)
    scope = UsageScope.of(envelope)
    if scope.metric in RUN_CAP_METRICS:
        return _run_points(envelope=envelope, scope=scope, start=start, stop=stop)
    per_bucket = usage_measure(
        project_id=envelope.project_id, start=start, end=stop, scopes=[scope], by_bucket=True
    )[scope]
    note = ""
    if scope.source == "traces":
        note = f"Computed from the runs with {scope.attribute} = {scope.attribute_value}."
    series = UsageSeries(
        kind="cumulative" if scope.metric in CUMULATIVE_METRICS else "running",
        source=scope.source,
        note=note,
    )
    series.points = _accumulate(metric=scope.metric, per_bucket=per_bucket, start=start, stop=stop)
    series.unpriced = sum(s.unpriced for s in per_bucket.values())
    return series


def _accumulate(*, metric, per_bucket, start, stop) -> list[tuple[datetime, float]]:
    """One point at the end of every bucket from start to stop (dense, so flat stretches
    draw flat); cumulative metrics start from zero at the period start. Ratios have no
    point before their first finished run."""
    points: list[tuple[datetime, float]] = []
    if metric in CUMULATIVE_METRICS:
        points.append((start, 0.0))
    total = UsageSums()
    at = bucket_floor(start)
    while at < stop:
        if at in per_bucket:
            total.add(per_bucket[at])
        if metric in CUMULATIVE_METRICS or total.runs:
            points.append((min(at + BUCKET, stop), float(usage_value(metric, total))))
        at += BUCKET
    return points


def _run_points(*, envelope, scope, start, stop) -> UsageSeries:
    """Per-run caps: the most offending runs of the period, one point each (the worst
    one, the evaluated value, always among them)."""
    field_name = "cost_usd" if scope.metric == Metric.RUN_COST else "duration_ms"
    rows = list(
        usage_trace_queryset(project_id=envelope.project_id, scope=scope, start=start, end=stop)
        .order_by(f"-{field_name}", "-started_at")
        .values_list("started_at", field_name, "trace_id")[:RUN_POINTS_LIMIT]
    )
    scale = 1 if scope.metric == Metric.RUN_COST else 1 / 1000
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
    """Alerts of the user's projects, newest first: one per notification (the lower
    thresholds a burst covered are shown with the alert that covers them)."""
    qs = Alert.objects.filter(project__in=project_list_for_user(user=user), covered_by=None)
    if status:
        qs = qs.filter(status=status)
    if project_slug:
        qs = qs.filter(project__slug=project_slug)
    if envelope_id is not None:
        qs = qs.filter(envelope_id=envelope_id)
    return qs.select_related("project", "envelope", "acknowledged_by").order_by(
        "-created_at", "-pk"
    )


def alert_list_for_envelope(*, envelope: BudgetEnvelope, limit: int = 20) -> list[Alert]:
    """The envelope's latest alerts, newest first."""
    return list(
        Alert.objects.filter(envelope=envelope, covered_by=None)
        .select_related("acknowledged_by")
        .prefetch_related("covers")
        .order_by("-created_at", "-pk")[:limit]
    )


def alert_status_counts_for_user(*, user, project_slug: str = "") -> dict[str, int]:
    """{"firing": n, "acknowledged": n, "resolved": n, "all": n} in one query."""
    qs = Alert.objects.filter(project__in=project_list_for_user(user=user), covered_by=None)
    if project_slug:
        qs = qs.filter(project__slug=project_slug)
    counts = qs.aggregate(
        **{s: Count("pk", filter=Q(status=s)) for s in Alert.Status.values},
        all=Count("pk"),
    )
    return {k: v or 0 for k, v in counts.items()}


def firing_alert_count_for_user(*, user) -> int:
    return Alert.objects.filter(
        project__in=project_list_for_user(user=user), status=Alert.Status.FIRING, covered_by=None
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


def channel_list_for_user(*, user, project_slug: str = "") -> QuerySet[Channel]:
    """Notification channels of the projects the user can see, by project then name."""
    qs = Channel.objects.filter(project__in=project_list_for_user(user=user))
    if project_slug:
        qs = qs.filter(project__slug=project_slug)
    return qs.select_related("project").order_by("project__name", "name", "pk")


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


def cost_window_default(*, project: Project | None, now: datetime, tz: tzinfo) -> str:
    """The smallest preset window that holds the project's oldest run (the largest when
    none does), so a young project's chart is not mostly empty days."""
    oldest = None
    if project is not None:
        oldest = (
            Trace.objects.filter(project=project)
            .order_by("started_at")
            .values_list("started_at", flat=True)
            .first()
        )
    if oldest is None:
        return "24h"
    for window in WINDOWS:
        if cost_window(window=window, now=now, tz=tz)[0] <= oldest:
            return window
    return list(WINDOWS)[-1]


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
