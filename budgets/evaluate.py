"""Budget evaluation: envelopes × rollups → usage, forecast, state, alerts.

`budgets_evaluate_all()` is what the periodic task runs; `budget_evaluate()` evaluates
one envelope (the admin's "evaluate now"). Both are plain functions; both are safe to
run concurrently with themselves and each other.

Where the numbers come from
---------------------------
From `budgets.selectors.usage_measure`, the one usage rule that the envelope's chart
follows too (which spend and which runs count is written there). Envelopes are grouped
by (project, period bounds) and each group is measured together: one aggregate query
per source, grouped by the dimensions its envelopes narrow on. The alert lists the
runs behind the usage (`_alert_traces_find`); per-run cap alerts list the runs at or
above the cap, most expensive (or longest) first.

Spans are bucketed by their start, so a span that arrives late still counts in its
own bucket and period. So that a period that has just ended is not left with its last
minutes unchecked, calendar envelopes that existed during their previous period
re-measure it for the first GRACE after it ends and raise its missing threshold and
run-cap alerts (`Evaluation.late_alerts`; the state always describes the current
period).

Forecast
--------
Linear pace: value / elapsed fraction of the period, for cost and token budgets on
calendar periods only, and only once 10 % of the period and at least one 15-minute
bucket have passed (an hour-old month says nothing about the month). It feeds the
state and alerts only when the envelope's `forecast` is on.

State
-----
- exceeded: value ≥ limit;
- warning: value ≥ the lowest threshold below 100 % of the limit, or (forecast on)
  the forecast is above the limit;
- ok otherwise.
A change of state is a `StateChange` row, written only by the evaluator whose
compare-and-set on (state, last_period_start) moved the envelope: two evaluators never
record the same transition. A new calendar period is measured from zero, so it
starts clean: an exceeded envelope goes back to ok at the turn of the month.

Alerts
------
Keyed (envelope, period_start, kind, threshold) under a unique constraint, inserted
in a savepoint: however many evaluators run, each key is alerted once.
- threshold: one per listed threshold the value has reached in the period — a jump
  from 10 % to 120 % alerts 80 and 100 both (per-run caps have no threshold alerts).
  Thresholds alerted together by one evaluation are notified once, by the highest
  one's alert, whose message names them all; the lower ones are `covered_by` it;
- forecast (threshold 0): once per period, when the forecast is above the limit
  while the value is still under it;
- run_cap (threshold 0): once per period, when a run reached the cap.
A rolling window moves every 15 minutes, so its alerts are keyed by the start of the
window in which the envelope left ok (the period_start of that StateChange): one
alert per threshold per excursion, not per window.
Open (firing or acknowledged) alerts are resolved when the envelope returns to ok,
and alerts of a calendar period once that period has ended (plus GRACE).
An alert's value is the measured value (for a forecast alert too: the forecast is in
its message); trace_ids are up to 10 traces behind the usage of the period in scope.
Every new alert not covered by another gets its deliveries (budgets.notify; skipped
while the envelope is snoozed or for a muted channel) and the sending of the pending
ones is enqueued when the transaction commits.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from functools import partial
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import IntegrityError, connection, transaction
from django.db.models import F, OuterRef, Subquery

from budgets.formatting import format_value
from budgets.models import Alert, BudgetEnvelope, Delivery, State, StateChange
from budgets.periods import CALENDAR_PERIODS, elapsed_fraction, period_bounds, zone
from budgets.selectors import (
    RUN_CAP_METRICS,
    UsageScope,
    usage_measure,
    usage_trace_queryset,
    usage_value,
)
from traces.dberrors import is_outage
from traces.models import TraceStatus
from traces.rollups import BUCKET
from traces.spanstore import span_store

logger = logging.getLogger(__name__)

Metric = BudgetEnvelope.Metric
Period = BudgetEnvelope.Period

FORECAST_METRICS = (Metric.COST, Metric.TOKENS)
FORECAST_MIN_FRACTION = 0.10
FORECAST_MIN_ELAPSED = BUCKET
# How long after a calendar period ends it is still re-measured for late spans, and
# after which its open alerts are resolved.
GRACE = timedelta(minutes=15)
TOP_TRACES = 10
OPEN = (Alert.Status.FIRING, Alert.Status.ACKNOWLEDGED)
_DB_PLACES = Decimal("0.0000000001")
_DB_MAX = Decimal(10) ** 13  # last_value/last_forecast hold 14 integer digits


# ------------------------------------------------------------------ results


@dataclass
class Evaluation:
    """One envelope's evaluation; `state_change` and `alerts` are what *this* call wrote."""

    envelope_id: int
    name: str
    state: str
    previous_state: str
    value: Decimal
    limit: Decimal
    percent: Decimal
    forecast: Decimal | None
    period_start: datetime
    period_end: datetime
    # The period the envelope was last evaluated in, as read: the compare-and-set's key.
    previous_period_start: datetime | None = None
    state_change: StateChange | None = None
    alerts: list[Alert] = field(default_factory=list)
    # Alerts of the previous period, raised during its grace time by late spans.
    late_alerts: list[Alert] = field(default_factory=list)


@dataclass
class EvaluationSummary:
    evaluated: int = 0
    ok: int = 0
    warning: int = 0
    exceeded: int = 0
    state_changes: int = 0
    alerts: int = 0
    errors: int = 0
    seconds: float = 0.0
    evaluations: list[Evaluation] = field(default_factory=list)
    # Projects whose envelopes could not be evaluated at all this time (see the log).
    failed_projects: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            k: getattr(self, k)
            for k in (
                "evaluated",
                "ok",
                "warning",
                "exceeded",
                "state_changes",
                "alerts",
                "errors",
                "seconds",
                "failed_projects",
            )
        }


@dataclass
class _Usage:
    value: Decimal = Decimal(0)
    forecast: Decimal | None = None


@dataclass
class _Job:
    """One envelope measured over one period: the current one, or the previous one
    during its grace time (`late`, alerts only)."""

    env: BudgetEnvelope
    start: datetime
    end: datetime
    late: bool = False
    usage: _Usage = field(default_factory=_Usage)


# ------------------------------------------------------------------ entry points


def budget_evaluate(*, envelope: BudgetEnvelope, now: datetime) -> Evaluation:
    """Evaluate one envelope (enabled or not) at `now` and record what changed."""
    summary = _evaluate([envelope], now=now, sweep_envelope_ids=[envelope.pk])
    if summary.errors:
        raise ValueError(f"envelope {envelope.pk} cannot be evaluated: see the log")
    return summary.evaluations[0]


def budgets_evaluate_all(
    *, now: datetime | None = None, project_ids: Iterable[int] | None = None
) -> EvaluationSummary:
    """Evaluate every enabled envelope at `now` (default: the current time), or only
    those of `project_ids` (e.g. the projects whose rollups just received spans)."""
    now = now or datetime.now(UTC)
    qs = BudgetEnvelope.objects.filter(enabled=True).order_by("pk")
    if project_ids is not None:
        qs = qs.filter(project_id__in=list(project_ids))
    by_project: dict[int, list[BudgetEnvelope]] = defaultdict(list)
    for env in qs:
        by_project[env.project_id].append(env)
    started = time.perf_counter()
    total = EvaluationSummary()
    # One project at a time (its envelopes still share their queries), so that a row
    # of one project that cannot be evaluated leaves every other project's budgets
    # checked. A database outage stops the run: the next one comes a minute later.
    for project_id, envelopes in sorted(by_project.items()):
        try:
            summary = _evaluate(envelopes, now=now, sweep_envelope_ids=[])
        except Exception as exc:
            if is_outage(exc):
                raise
            logger.exception(
                "budgets of project %s not evaluated (%d envelopes)", project_id, len(envelopes)
            )
            total.errors += len(envelopes)
            total.failed_projects.append(project_id)
            continue
        for name in ("evaluated", "ok", "warning", "exceeded", "state_changes", "alerts"):
            setattr(total, name, getattr(total, name) + getattr(summary, name))
        total.errors += summary.errors
        total.evaluations.extend(summary.evaluations)
    _sweep(now, None)
    total.seconds = round(time.perf_counter() - started, 3)
    return total


def _evaluate(
    envelopes: list[BudgetEnvelope], *, now: datetime, sweep_envelope_ids: list[int] | None
) -> EvaluationSummary:
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    started = time.perf_counter()
    summary = EvaluationSummary()
    jobs: list[_Job] = []
    for env in envelopes:
        try:
            jobs.extend(_jobs_for(env, now))
        except (ValueError, ZoneInfoNotFoundError) as exc:
            # Bad settings saved around the validation: skip it, keep the others going.
            logger.error("budget envelope %s (%s) not evaluated: %s", env.pk, env.name, exc)
            summary.errors += 1
    _measure(jobs, now)

    current = [j for j in jobs if not j.late]
    evaluations = [_judge(j) for j in current]
    _record(current, evaluations, [j for j in jobs if j.late], now)
    _sweep(now, sweep_envelope_ids)

    for ev in evaluations:
        summary.evaluated += 1
        setattr(summary, ev.state, getattr(summary, ev.state) + 1)
        summary.state_changes += ev.state_change is not None
        summary.alerts += len(ev.alerts) + len(ev.late_alerts)
    summary.evaluations = evaluations
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _jobs_for(env: BudgetEnvelope, now: datetime) -> list[_Job]:
    start, end = period_bounds(
        period=env.period, at=now, tz=env.timezone, rolling_minutes=env.rolling_minutes
    )
    jobs = [_Job(env, start, end)]
    if env.period in CALENDAR_PERIODS and now - start < GRACE:
        prev_start, prev_end = period_bounds(
            period=env.period, at=start - timedelta(microseconds=1), tz=env.timezone
        )
        # Only a period the envelope existed in: a budget created at 00:05 does not
        # alert about yesterday.
        if env.created_at is None or env.created_at < prev_end:
            jobs.append(_Job(env, prev_start, prev_end, late=True))
    return jobs


# ------------------------------------------------------------------ measuring


def _measure(jobs: list[_Job], now: datetime) -> None:
    """Fill every job's usage by the one usage rule (budgets.selectors.usage_measure),
    measuring together the envelopes of a project that share a period."""
    groups: dict[tuple, list[_Job]] = defaultdict(list)
    for job in jobs:
        groups[(job.env.project_id, job.start, job.end)].append(job)
    for (project_id, start, end), group in groups.items():
        scopes = {id(job): UsageScope.of(job.env) for job in group}
        used = usage_measure(
            project_id=project_id, start=start, end=end, scopes=list(scopes.values())
        )
        for job in group:
            scope = scopes[id(job)]
            job.usage.value = usage_value(scope.metric, used[scope][None])

    for job in jobs:
        env = job.env
        if job.late or env.metric not in FORECAST_METRICS or env.period not in CALENDAR_PERIODS:
            continue
        fraction = elapsed_fraction(job.start, job.end, now)
        if fraction >= FORECAST_MIN_FRACTION and now - job.start >= FORECAST_MIN_ELAPSED:
            job.usage.forecast = job.usage.value / Decimal(repr(fraction))


# ------------------------------------------------------------------ judging


def _percent(value: Decimal, limit: Decimal) -> Decimal:
    return value * 100 / limit if limit > 0 else Decimal(0)


def _state(env: BudgetEnvelope, value: Decimal, forecast: Decimal | None) -> str:
    limit = env.limit
    if value >= limit:
        return State.EXCEEDED
    below = [t for t in env.thresholds or [] if isinstance(t, int) and t < 100]
    if below and _percent(value, limit) >= min(below):
        return State.WARNING
    if env.forecast and forecast is not None and forecast > limit:
        return State.WARNING
    return State.OK


def _judge(job: _Job) -> Evaluation:
    env = job.env
    return Evaluation(
        envelope_id=env.pk,
        name=env.name,
        state=_state(env, job.usage.value, job.usage.forecast),
        previous_state=env.state,
        value=job.usage.value,
        limit=env.limit,
        percent=_percent(job.usage.value, env.limit),
        forecast=job.usage.forecast,
        period_start=job.start,
        period_end=job.end,
        previous_period_start=env.last_period_start,
    )


def _wanted_alerts(env: BudgetEnvelope, usage: _Usage, *, late: bool) -> list[tuple[str, int]]:
    """(kind, threshold) of every alert the usage calls for in its period."""
    if env.metric in RUN_CAP_METRICS:
        return [(Alert.Kind.RUN_CAP, 0)] if usage.value >= env.limit else []
    pct = _percent(usage.value, env.limit)
    wanted = [
        (Alert.Kind.THRESHOLD, t)
        for t in sorted(t for t in env.thresholds or [] if isinstance(t, int))
        if pct >= t
    ]
    if (
        not late
        and env.forecast
        and usage.forecast is not None
        and usage.forecast > env.limit
        and usage.value < env.limit
    ):
        wanted.append((Alert.Kind.FORECAST, 0))
    return wanted


# ------------------------------------------------------------------ recording


def _db_decimal(value: Decimal | None) -> Decimal | None:
    if value is None:
        return None
    return min(value, _DB_MAX).quantize(_DB_PLACES)


def _record(
    current: list[_Job], evaluations: list[Evaluation], late: list[_Job], now: datetime
) -> None:
    # Rolling envelopes that stay out of ok key their alerts by the excursion's start.
    anchors = _rolling_anchors(
        [
            j.env.pk
            for j, ev in zip(current, evaluations, strict=True)
            if j.env.period == Period.ROLLING
            and ev.state != State.OK
            and ev.previous_state != State.OK
        ]
    )
    plans: list[tuple[_Job, Evaluation | None, list[tuple[str, int]]]] = []
    for job, ev in zip(current, evaluations, strict=True):
        plans.append((job, ev, _wanted_alerts(job.env, job.usage, late=False)))
    by_envelope = {ev.envelope_id: ev for ev in evaluations}
    for job in late:
        plans.append((job, None, _wanted_alerts(job.env, job.usage, late=True)))

    def alert_start(job: _Job) -> datetime:
        if job.env.period == Period.ROLLING:
            return anchors.get(job.env.pk) or job.start
        return job.start

    existing = _existing_alert_keys(
        {(job.env.pk, alert_start(job)) for job, _, wanted in plans if wanted}
    )

    steady: list[BudgetEnvelope] = []
    traces_cache: dict = {}
    for job, ev, wanted in plans:
        env = job.env
        missing = [w for w in wanted if (env.pk, alert_start(job), *w) not in existing]
        if ev is None:
            if missing:
                with transaction.atomic():
                    created = _alerts_create(job, missing, job.start, now, traces_cache)
                by_envelope[env.pk].late_alerts.extend(created)
            continue
        _set_last_fields(env, ev, now)
        if ev.state == ev.previous_state and not missing:
            steady.append(env)
            continue
        with transaction.atomic():
            start = alert_start(job)
            if ev.state != ev.previous_state:
                won = _transition(env, ev, now)
                if won and ev.previous_state == State.OK:
                    start = job.start  # this evaluation opened the excursion
                elif not won and env.period == Period.ROLLING:
                    # Someone else moved the envelope; key the alerts as they did.
                    start = _rolling_anchors([env.pk]).get(env.pk) or job.start
                if start != alert_start(job):
                    missing = wanted  # new key: the constraint sorts out duplicates
            else:
                steady.append(env)
            if missing and ev.state != State.OK:
                ev.alerts = _alerts_create(job, missing, start, now, traces_cache)

    if steady:
        # No transition: the evaluation fields only, last writer wins. `state` is not
        # among them, so a concurrent transition is never overwritten.
        _last_fields_write(steady)


_LAST_FIELDS = [
    "last_value",
    "last_forecast",
    "last_period_start",
    "last_period_end",
    "last_evaluated_at",
]


def _last_fields_write(envelopes: list[BudgetEnvelope], *, batch: int = 500) -> None:
    """Write the evaluation fields of many envelopes, one UPDATE … FROM (VALUES …) per
    batch. bulk_update() builds a CASE per field and row: 1.7 s of Python for 1,000
    envelopes against 20 ms for this."""
    if connection.vendor not in ("postgresql", "sqlite") or (
        connection.vendor == "sqlite" and connection.Database.sqlite_version_info < (3, 33)
    ):
        BudgetEnvelope.objects.bulk_update(envelopes, _LAST_FIELDS, batch_size=batch)
        return
    qn = connection.ops.quote_name
    fields = [BudgetEnvelope._meta.get_field(name) for name in _LAST_FIELDS]
    table = qn(BudgetEnvelope._meta.db_table)
    columns = ", ".join(qn(f.column) for f in fields)
    # PostgreSQL types a VALUES column from its values, and an all-NULL column as text.
    if connection.vendor == "postgresql":
        assign = [
            f"{qn(f.column)} = CAST(v.{qn(f.column)} AS {f.db_type(connection)})" for f in fields
        ]
    else:
        assign = [f"{qn(f.column)} = v.{qn(f.column)}" for f in fields]
    row = "(" + ", ".join(["%s"] * (len(fields) + 1)) + ")"
    envelopes = sorted(envelopes, key=lambda e: e.pk)
    for i in range(0, len(envelopes), batch):
        chunk = envelopes[i : i + batch]
        params: list = []
        for env in chunk:
            params.append(env.pk)
            params.extend(f.get_db_prep_save(getattr(env, f.attname), connection) for f in fields)
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # An UPDATE … FROM locks its rows in join order: two evaluators writing
                # the same envelopes could deadlock. Lock them in id order first.
                list(
                    BudgetEnvelope.objects.filter(pk__in=[e.pk for e in chunk])
                    .order_by("pk")
                    .select_for_update()
                    .values_list("pk", flat=True)
                )
            cursor.execute(
                f"WITH v (id, {columns}) AS (VALUES {', '.join([row] * len(chunk))}) "
                f"UPDATE {table} SET {', '.join(assign)} FROM v WHERE {table}.id = v.id",
                params,
            )


def _set_last_fields(env: BudgetEnvelope, ev: Evaluation, now: datetime) -> None:
    env.last_value = _db_decimal(ev.value)
    env.last_forecast = _db_decimal(ev.forecast)
    env.last_period_start = ev.period_start
    env.last_period_end = ev.period_end
    env.last_evaluated_at = now


def _transition(env: BudgetEnvelope, ev: Evaluation, now: datetime) -> bool:
    """Move the envelope to ev.state with a compare-and-set on the state and period it
    was read with; record the StateChange only if this call moved it."""
    expected_state = ev.previous_state
    expected_period = ev.previous_period_start
    for _ in range(3):
        n = BudgetEnvelope.objects.filter(
            pk=env.pk,
            state=expected_state,
            **(
                {"last_period_start": expected_period}
                if expected_period
                else {"last_period_start__isnull": True}
            ),
        ).update(state=ev.state, state_since=now, **{f: getattr(env, f) for f in _LAST_FIELDS})
        if n == 1:
            ev.state_change = StateChange.objects.create(
                envelope_id=env.pk,
                old_state=expected_state,
                new_state=ev.state,
                value=_db_decimal(ev.value),
                limit=env.limit,
                period_start=ev.period_start,
                period_end=ev.period_end,
                created_at=now,
            )
            ev.previous_state = expected_state
            env.state, env.state_since = ev.state, now
            if ev.state == State.OK:
                Alert.objects.filter(envelope_id=env.pk, status__in=OPEN).update(
                    status=Alert.Status.RESOLVED, resolved_at=now
                )
            return True
        fresh = (
            BudgetEnvelope.objects.filter(pk=env.pk)
            .values_list("state", "state_since", "last_period_start")
            .first()
        )
        if fresh is None:
            return False  # deleted meanwhile
        if fresh[0] == ev.state:
            env.state, env.state_since = fresh[0], fresh[1]
            return False  # another evaluator recorded this very transition
        # The envelope moved under us (another state, or just a newer period): retry
        # from what it is now.
        expected_state, expected_period = fresh[0], fresh[2]
    return False


def _rolling_anchors(envelope_ids: list[int]) -> dict[int, datetime]:
    """Start of the window in which each envelope last left ok."""
    if not envelope_ids:
        return {}
    last_exit = (
        StateChange.objects.filter(envelope=OuterRef("pk"), old_state=State.OK)
        .order_by("-created_at", "-pk")
        .values("period_start")[:1]
    )
    return {
        pk: anchor
        for pk, anchor in BudgetEnvelope.objects.filter(pk__in=envelope_ids)
        .annotate(anchor=Subquery(last_exit))
        .values_list("pk", "anchor")
        if anchor is not None
    }


def _existing_alert_keys(pairs: set[tuple[int, datetime]]) -> set[tuple]:
    if not pairs:
        return set()
    ids = {pk for pk, _ in pairs}
    starts = {start for _, start in pairs}
    return {
        row
        for row in Alert.objects.filter(envelope_id__in=ids, period_start__in=starts).values_list(
            "envelope_id", "period_start", "kind", "threshold"
        )
        if (row[0], row[1]) in pairs
    }


def _alerts_create(
    job: _Job,
    missing: list[tuple[str, int]],
    key_start: datetime,
    now: datetime,
    traces_cache: dict | None = None,
) -> list[Alert]:
    """Insert the missing alerts, each in a savepoint: a duplicate key means another
    evaluator got there first. Deliveries are created with each alert and sent once the
    surrounding transaction commits."""
    from budgets.notify import deliveries_create
    from budgets.tasks import deliver

    env, usage = job.env, job.usage
    trace_ids: list[str] | None = None
    offenders = 0
    created: list[Alert] = []
    for kind, threshold in missing:
        if trace_ids is None:
            trace_ids, offenders = _alert_traces(job, {} if traces_cache is None else traces_cache)
        alert = Alert(
            envelope_id=env.pk,
            project_id=env.project_id,
            kind=kind,
            threshold=threshold,
            period_start=key_start,
            period_end=job.end,
            value=_db_decimal(usage.value),
            limit=env.limit,
            message=alert_message(
                env,
                kind=kind,
                threshold=threshold,
                value=usage.value,
                forecast=usage.forecast,
                start=job.start,
                end=job.end,
                offenders=offenders,
            ),
            trace_ids=trace_ids,
            created_at=now,
        )
        try:
            with transaction.atomic():
                alert.save(force_insert=True)
        except IntegrityError:
            continue
        created.append(alert)
    _burst_group(job, created)
    for alert in created:
        if alert.covered_by_id is not None:
            continue
        for delivery in deliveries_create(alert=alert, now=now):
            if delivery.status == Delivery.Status.PENDING:
                transaction.on_commit(partial(deliver.delay, delivery.pk))
    return created


def _burst_group(job: _Job, created: list[Alert]) -> None:
    """Thresholds this call alerted together are notified once: the highest one's alert
    names them all, the lower ones point to it (`covered_by`) and get no delivery.
    Only the alerts this call inserted are grouped, so each threshold is still
    notified at most once however many evaluators run."""
    crossed = sorted(
        (a for a in created if a.kind == Alert.Kind.THRESHOLD), key=lambda a: a.threshold
    )
    if len(crossed) < 2:
        return
    top, lower = crossed[-1], crossed[:-1]
    top.message = alert_message(
        job.env,
        kind=top.kind,
        threshold=top.threshold,
        value=job.usage.value,
        forecast=job.usage.forecast,
        start=job.start,
        end=job.end,
        crossed=[a.threshold for a in crossed],
    )
    Alert.objects.filter(pk=top.pk).update(message=top.message)
    Alert.objects.filter(pk__in=[a.pk for a in lower]).update(covered_by=top)
    for alert in lower:
        alert.covered_by = top


def _alert_traces(job: _Job, cache: dict) -> tuple[list[str], int]:
    """The traces behind the usage, for the alert (see _alert_traces_find), looked up
    once per scope and period in one evaluation."""
    env = job.env
    key = (
        env.project_id,
        job.start,
        job.end,
        env.metric,
        env.agent,
        env.model,
        env.service_name,
        env.attribute,
        env.attribute_value,
        env.limit if env.metric in RUN_CAP_METRICS else None,
    )
    if key not in cache:
        cache[key] = _alert_traces_find(job)
    return cache[key]


def _alert_traces_find(job: _Job) -> tuple[list[str], int]:
    """The most expensive traces (cost), the largest (tokens), the slowest (p95), the
    latest failed (error rate), or the runs at or above a per-run cap; and how many runs
    are at or above the cap."""
    env = job.env
    base = usage_trace_queryset(
        project_id=env.project_id, scope=UsageScope.of(env), start=job.start, end=job.end
    )
    if env.metric == Metric.RUN_COST:
        over = base.filter(cost_usd__gte=env.limit)
        ids = list(over.order_by("-cost_usd").values_list("trace_id", flat=True)[:TOP_TRACES])
        return ids, over.count()
    if env.metric == Metric.RUN_DURATION:
        over = base.filter(duration_ms__gte=float(env.limit) * 1000)
        ids = list(over.order_by("-duration_ms").values_list("trace_id", flat=True)[:TOP_TRACES])
        return ids, over.count()
    if env.metric == Metric.P95_LATENCY:
        # Finished runs only, as in the p95 itself.
        slowest = base.filter(status__in=(TraceStatus.OK, TraceStatus.ERROR))
        return list(
            slowest.order_by("-duration_ms").values_list("trace_id", flat=True)[:TOP_TRACES]
        ), 0
    if env.metric == Metric.ERROR_RATE:
        qs = base.filter(status=TraceStatus.ERROR).order_by("-started_at")
        return list(qs.values_list("trace_id", flat=True)[:TOP_TRACES]), 0
    if env.model:
        # A trace can use several models: rank by what its spans of this model used
        # (one GROUP BY in the span store; the trace filter a subquery on PostgreSQL).
        ranked = span_store().sum_spans(
            env.project_id,
            group="trace_id",
            measure="cost_usd" if env.metric == Metric.COST else "tokens",
            started=(job.start, job.end),
            equals={"model": env.model},
            trace_ids=base.values("trace_id") if env.agent or env.service_name else None,
            limit=TOP_TRACES,
        )
        return [trace_id for trace_id, _ in ranked], 0
    if env.metric == Metric.TOKENS:
        base = base.annotate(tokens=F("input_tokens") + F("output_tokens"))
        return list(base.order_by("-tokens").values_list("trace_id", flat=True)[:TOP_TRACES]), 0
    return list(base.order_by("-cost_usd").values_list("trace_id", flat=True)[:TOP_TRACES]), 0


def _sweep(now: datetime, envelope_ids: Iterable[int] | None) -> int:
    """Resolve open alerts of calendar periods that ended more than GRACE ago."""
    qs = Alert.objects.filter(status__in=OPEN, period_end__lte=now - GRACE).exclude(
        envelope__period=Period.ROLLING
    )
    if envelope_ids is not None:
        qs = qs.filter(envelope_id__in=list(envelope_ids))
    return qs.update(status=Alert.Status.RESOLVED, resolved_at=now)


# ------------------------------------------------------------------ wording

_ADJECTIVE = {
    Period.HOUR: "Hourly",
    Period.DAY: "Daily",
    Period.WEEK: "Weekly",
    Period.MONTH: "Monthly",
}
_NOUN = {
    Metric.COST: "cost budget",
    Metric.TOKENS: "token budget",
    Metric.P95_LATENCY: "p95 latency budget",
    Metric.ERROR_RATE: "error-rate budget",
    Metric.RUN_COST: "per-run cost cap",
    Metric.RUN_DURATION: "per-run duration cap",
}


def _minutes(n: int) -> str:
    if n % (24 * 60) == 0:
        days = n // (24 * 60)
        return f"{days}-day" if days > 1 else "24-hour"
    if n % 60 == 0:
        return f"{n // 60}-hour"
    return f"{n}-minute"


def budget_title(env: BudgetEnvelope) -> str:
    """'Monthly cost budget 'Support bot'', 'Rolling 1-hour p95 latency budget 'API''."""
    if env.period == Period.ROLLING:
        adjective = f"Rolling {_minutes(env.rolling_minutes or 0)}"
    else:
        adjective = _ADJECTIVE.get(env.period, str(env.period).title())
    return f"{adjective} {_NOUN.get(env.metric, 'budget')} '{env.name}'"


def period_label(*, period: str, start: datetime, end: datetime, tz: str | ZoneInfo) -> str:
    """The period as people say it, in its zone: 'Nov 1–30 Europe/Paris', 'Nov 14 UTC',
    'Nov 14 15:00–16:00 UTC', 'Oct 27–Nov 2 UTC', 'window 14:30–15:30 UTC'."""
    z = zone(tz)
    a, b = start.astimezone(z), end.astimezone(z)
    last = (end - timedelta(microseconds=1)).astimezone(z)
    if period == Period.HOUR:
        text = f"{a:%b} {a.day} {a:%H:%M}–{b:%H:%M}"
    elif period == Period.DAY:
        text = f"{a:%b} {a.day}"
    elif period in (Period.WEEK, Period.MONTH):
        tail = f"{last.day}" if a.month == last.month else f"{last:%b} {last.day}"
        text = f"{a:%b} {a.day}–{tail}"
    else:
        text = f"window {a:%H:%M}–{b:%H:%M}"
    return f"{text} {z.key}"


def alert_message(
    env: BudgetEnvelope,
    *,
    kind: str,
    threshold: int,
    value: Decimal,
    forecast: Decimal | None,
    start: datetime,
    end: datetime,
    offenders: int = 0,
    crossed: list[int] | None = None,
) -> str:
    title = budget_title(env)
    where = period_label(period=env.period, start=start, end=end, tz=env.timezone)
    limit = format_value(env.metric, env.limit)
    pct = _percent(value, env.limit).to_integral_value(rounding=ROUND_FLOOR)
    if kind == Alert.Kind.RUN_CAP:
        runs = "1 run" if offenders == 1 else f"{offenders} runs"
        return (
            f"{title}: {runs} at or over {limit}, the worst at "
            f"{format_value(env.metric, value)} (period {where})"
        )
    if kind == Alert.Kind.FORECAST:
        return (
            f"{title} is on pace for {format_value(env.metric, forecast)} of {limit} "
            f"(now {format_value(env.metric, value)}, {pct} %, period {where})"
        )
    if crossed and len(crossed) > 1:
        listed = ", ".join(f"{t} %" for t in crossed[:-1]) + f" and {crossed[-1]} %"
        return (
            f"{title} passed {listed} at once: at {pct} % "
            f"({format_value(env.metric, value)} of {limit}, period {where})"
        )
    return (
        f"{title} passed {threshold} %: at {pct} % "
        f"({format_value(env.metric, value)} of {limit}, period {where})"
    )


def forecast_absent_reason(
    env: BudgetEnvelope, *, start: datetime, end: datetime, now: datetime, tz, evaluated: bool
) -> str:
    """Why the envelope shows no forecast for [start, end) at `now` ("" when it has one or
    will): the rules `_measure` applies, said to the reader, times in `tz`."""
    if env.metric not in FORECAST_METRICS:
        return "only cost and token budgets are forecast"
    if env.period not in CALENDAR_PERIODS:
        return "a rolling window has no end to forecast to"
    begins = max(start + (end - start) * FORECAST_MIN_FRACTION, start + FORECAST_MIN_ELAPSED)
    if now < begins:
        at, pct = begins.astimezone(tz), f"{FORECAST_MIN_FRACTION * 100:.0f} %"
        return (
            f"not enough data yet: forecasts start after {pct} of the period, "
            f"at {at:%b} {at.day}, {at:%H:%M}"
        )
    if not evaluated:
        return "not evaluated in this period yet"
    return ""
