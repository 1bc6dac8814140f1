"""Spans → 15-minute rollups, exactly once.

Ingest records each accepted request as an `IngestBatch` in the same transaction as
its spans. `rollup_pending()` claims pending batches (FOR UPDATE SKIP LOCKED on
PostgreSQL, so concurrent workers take different ones; SQLite serialises writers),
folds their spans into `Rollup` rows and deletes the batches, all in one transaction:
a crash rolls everything back and the batches are claimed again; a re-run finds
nothing to do. A batch that cannot be folded (its sums overflow a column) is quarantined
instead: kept with its error and retried with backoff, while the others go on (see
`rollup_pending`; staff see the count in the navigation and the batches in the admin).
Spans are bucketed by their *start* time, so a batch that arrives minutes late still
lands in the right bucket.

Cost, tokens and counts of model calls are attributed to the span's own agent and
versions when it has them, else to its trace's (LLM spans of most clients carry no
agent name). Run counts and run latency come from root spans.

`rollup_rebuild()` recomputes a project's rollups from its spans (after a change of
rules, or to backfill), within the span retention window only: rollups of the days whose
spans are gone are kept as they are (budgets and KPI history read them).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import itemgetter

import orjson
from django.db import connection, transaction
from django.db.models import Q

from traces.dberrors import is_outage
from traces.ingest import MAX_TRACE_COST
from traces.models import IngestBatch, Project, Rollup, Span, SpanStatus, Step, Trace
from traces.retention import cutoff_for, default_retention_days
from traces.spanstore import span_store
from traces.spanstore.relational import RelationalSpanStore
from traces.sql import insert_rows

logger = logging.getLogger(__name__)

BUCKET = timedelta(minutes=15)
BIGINT_MAX = 2**63 - 1
_BUCKET_S = int(BUCKET.total_seconds())
GROUP_FIELDS = ("agent", "model", "service_name", "agent_version", "prompt_version")
SUM_FIELDS = (
    "span_count",
    "trace_count",
    "error_count",
    "run_error_count",
    "llm_call_count",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unpriced_count",
)


def _json(value) -> str:
    return orjson.dumps(value).decode()


def bucket_floor(dt: datetime) -> datetime:
    ts = int(dt.timestamp())
    return datetime.fromtimestamp(ts - ts % _BUCKET_S, tz=UTC)


class Histogram:
    """Sparse log-scale histogram of durations in milliseconds, as a JSON-able dict.

    Bin i holds values in (GAMMA^(i-1), GAMMA^i]; GAMMA = 1.08 bounds the relative
    error of any quantile to 4 %. Bin "0" holds durations ≤ 1 ms. Two histograms merge
    by adding counts, which is what makes percentiles over any window possible.
    """

    GAMMA = 1.08
    _LOG = math.log(GAMMA)

    @classmethod
    def bin_of(cls, ms: float) -> str:
        if ms <= 1.0:
            return "0"
        return str(math.ceil(math.log(ms) / cls._LOG))

    @classmethod
    def add_value(cls, hist: dict[str, int], ms: float) -> None:
        key = cls.bin_of(ms)
        hist[key] = hist.get(key, 0) + 1

    @staticmethod
    def merge(into: dict[str, int], other: dict[str, int]) -> dict[str, int]:
        for key, count in other.items():
            into[key] = into.get(key, 0) + count
        return into

    @classmethod
    def quantile(cls, hist: dict[str, int], q: float) -> float | None:
        """The q-quantile (0..1) in ms, None for an empty histogram."""
        total = sum(hist.values())
        if not total:
            return None
        rank = q * total
        seen = 0
        for key in sorted(hist, key=int):
            seen += hist[key]
            if seen >= rank:
                i = int(key)
                # Middle of the bin (geometric), so the error is at most ±4 %.
                return 1.0 if i == 0 else cls.GAMMA ** (i - 0.5)
        return cls.GAMMA ** (int(max(hist, key=int)) - 0.5)

    @staticmethod
    def count(hist: dict[str, int]) -> int:
        return sum(hist.values())


@dataclass
class _Acc:
    sums: dict[str, int | Decimal] = field(
        default_factory=lambda: dict.fromkeys(SUM_FIELDS, 0) | {"cost_usd": Decimal(0)}
    )
    span_latency: dict[str, int] = field(default_factory=dict)
    run_latency: dict[str, int] = field(default_factory=dict)


@dataclass
class RollupResult:
    batches: int = 0
    spans: int = 0
    rows: int = 0
    quarantined: int = 0
    # Projects whose rollups received spans: what a consumer of fresh spend re-reads.
    project_ids: set[int] = field(default_factory=set)
    # A rebuild: the start of the window it recomputed (older buckets were kept).
    since: datetime | None = None


_SPAN_COLUMNS = (
    "project_id",
    "trace_id",
    "parent_span_id",
    "started_at",
    "duration_ms",
    "status",
    "step",
    "agent",
    "model",
    "service_name",
    "agent_version",
    "prompt_version",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cost_usd",
    "cost_source",
)


def _fold(spans, trace_info: dict[tuple[int, str], tuple[str, str, str]]) -> dict:
    acc: dict[tuple, _Acc] = defaultdict(_Acc)
    for (
        project_id,
        trace_id,
        parent,
        started_at,
        duration_ms,
        status,
        step,
        agent,
        model,
        service,
        agent_version,
        prompt_version,
        inp,
        out,
        cached,
        reasoning,
        cost,
        cost_source,
    ) in spans:
        t_agent, t_agent_version, t_service = trace_info.get((project_id, trace_id), ("", "", ""))
        key = (
            project_id,
            bucket_floor(started_at),
            agent or t_agent,
            model,
            service or t_service,
            agent_version or t_agent_version,
            prompt_version,
        )
        a = acc[key]
        s = a.sums
        s["span_count"] += 1
        is_error = status == SpanStatus.ERROR
        if is_error:
            s["error_count"] += 1
        if step == Step.LLM:
            s["llm_call_count"] += 1
        s["input_tokens"] += inp
        s["output_tokens"] += out
        s["cached_input_tokens"] += cached
        s["reasoning_tokens"] += reasoning
        if cost is not None:
            s["cost_usd"] += Decimal(cost)
        if cost_source == "unpriced":
            s["unpriced_count"] += 1
        Histogram.add_value(a.span_latency, duration_ms)
        if not parent:
            s["trace_count"] += 1
            if is_error:
                s["run_error_count"] += 1
            Histogram.add_value(a.run_latency, duration_ms)
    return acc


def _trace_info(spans) -> dict[tuple[int, str], tuple[str, str, str]]:
    keys = {(row[0], row[1]) for row in spans}
    if not keys:
        return {}
    cond = Q()
    by_project: dict[int, list[str]] = defaultdict(list)
    for project_id, trace_id in keys:
        by_project[project_id].append(trace_id)
    for project_id, trace_ids in by_project.items():
        cond |= Q(project_id=project_id, trace_id__in=trace_ids)
    return {
        (p, t): (agent, version, service)
        for p, t, agent, version, service in Trace.objects.filter(cond).values_list(
            "project_id", "trace_id", "agent", "agent_version", "service_name"
        )
    }


def _apply(acc: dict, *, fresh: bool = False) -> int:
    """Add accumulated groups to their Rollup rows (created when missing).

    fresh: the rows are known not to exist (a rebuild just deleted them)."""
    if not acc:
        return 0
    for a in acc.values():
        # Saturate like the trace summary: a bucket fed implausible (but individually
        # valid) costs stops at the column's bound instead of failing every fold.
        a.sums["cost_usd"] = min(a.sums["cost_usd"], MAX_TRACE_COST)
    if fresh:
        Rollup.objects.bulk_create(
            [
                Rollup(
                    project_id=k[0],
                    bucket_start=k[1],
                    **dict(zip(GROUP_FIELDS, k[2:], strict=True)),
                    **a.sums,
                    span_latency=a.span_latency,
                    run_latency=a.run_latency,
                )
                for k, a in acc.items()
            ],
            batch_size=2000,
        )
        return len(acc)
    # One upsert per chunk: sums added in SQL, histograms merged in SQL (bin counts
    # added key by key), rows locked in key order. Nothing is read back into Python.
    keys = sorted(acc, key=lambda k: (k[0], k[1], *k[2:]))
    adapt_dt = connection.ops.adapt_datetimefield_value
    adapt_money = connection.ops.adapt_decimalfield_value
    now = adapt_dt(datetime.now(UTC))
    columns = ("project_id", "bucket_start", *GROUP_FIELDS, *SUM_FIELDS)
    columns += ("span_latency", "run_latency", "updated_at")
    rows = []
    for k in keys:
        a = acc[k]
        sums = [a.sums[f] for f in SUM_FIELDS]
        for name, value in zip(SUM_FIELDS, sums, strict=True):
            # Said here in words; the database would say "bigint out of range" (PostgreSQL)
            # or refuse the Python int (SQLite).
            if isinstance(value, int) and value > BIGINT_MAX:
                raise OverflowError(
                    f"{name} of {k[2] or '(no agent)'} / {k[3] or '(no model)'} "
                    f"at {k[1]:%Y-%m-%d %H:%M} is {value}, more than a 64-bit column holds"
                )
        sums[SUM_FIELDS.index("cost_usd")] = adapt_money(a.sums["cost_usd"], 20, 10)
        rows.append(
            (k[0], adapt_dt(k[1]), *k[2:], *sums, _json(a.span_latency), _json(a.run_latency), now)
        )
    t = "traces_rollup"
    least = "LEAST" if connection.vendor == "postgresql" else "MIN"
    updates = [
        f"{f} = {least}({t}.{f} + excluded.{f}, {MAX_TRACE_COST})"
        if f == "cost_usd"
        else f"{f} = {t}.{f} + excluded.{f}"
        for f in SUM_FIELDS
    ]
    updates += [f"{h} = {_hist_merge_sql(f'{t}.{h}', f'excluded.{h}')}" for h in HISTOGRAMS]
    updates.append("updated_at = excluded.updated_at")
    conflict = ", ".join(("project_id", "bucket_start", *GROUP_FIELDS))
    insert_rows(
        table=t,
        columns=columns,
        rows=rows,
        tail=f"ON CONFLICT ({conflict}) DO UPDATE SET {', '.join(updates)}",
    )
    return len(rows)


HISTOGRAMS = ("span_latency", "run_latency")


def _hist_merge_sql(left: str, right: str) -> str:
    """SQL adding two JSON histograms bin by bin ({"12": 3} + {"12": 1, "13": 2})."""
    if connection.vendor == "postgresql":
        return (
            "(SELECT coalesce(jsonb_object_agg(k, n), '{}'::jsonb) FROM ("
            "SELECT k, sum(v) AS n FROM ("
            f"SELECT key AS k, value::numeric AS v FROM jsonb_each({left}) UNION ALL "
            f"SELECT key, value::numeric FROM jsonb_each({right})) AS u GROUP BY k) AS g)"
        )
    return (
        "(SELECT coalesce(json_group_object(k, n), '{}') FROM ("
        "SELECT k, sum(v) AS n FROM ("
        f"SELECT key AS k, value AS v FROM json_each({left}) UNION ALL "
        f"SELECT key, value FROM json_each({right})) GROUP BY k))"
    )


QUARANTINE_FIRST_RETRY = timedelta(minutes=1)
QUARANTINE_MAX_RETRY = timedelta(hours=6)


def quarantine_delay(attempts: int) -> timedelta:
    """1, 2, 4 … minutes after the n-th failed fold, at most 6 hours."""
    return min(QUARANTINE_MAX_RETRY, QUARANTINE_FIRST_RETRY * 2 ** max(attempts - 1, 0))


def rollup_pending(
    *, max_batches: int = 200, max_rounds: int = 50, now: datetime | None = None
) -> RollupResult:
    """Fold every pending ingest batch into the rollups. Safe to run concurrently.

    Each project's batches are folded in a savepoint of their own; when a project's fold
    fails, its batches are folded one by one and the one that fails is quarantined
    (kept, its error recorded, retried later with backoff). One project's bad row never
    stops the rollups, and so the budgets and alerts, of the others. Only a database
    outage is raised: nothing was folded then, and the next run takes it all again.
    """
    result = RollupResult()
    now = now or datetime.now(UTC)
    for _ in range(max_rounds):
        with transaction.atomic():
            qs = IngestBatch.objects.filter(
                Q(retry_at__isnull=True) | Q(retry_at__lte=now)
            ).order_by("pk")
            if connection.features.has_select_for_update_skip_locked:
                qs = qs.select_for_update(skip_locked=True)
            claimed = list(qs.values_list("pk", "project_id")[:max_batches])
            if not claimed:
                break
            by_project: dict[int, list[int]] = defaultdict(list)
            for batch_id, project_id in claimed:
                by_project[project_id].append(batch_id)
            for _project_id, batch_ids in sorted(by_project.items()):
                if _fold_isolated(batch_ids, result, now):
                    continue
                for batch_id in batch_ids:
                    _fold_isolated([batch_id], result, now, quarantine=True)
        if len(claimed) < max_batches:
            break
    return result


def _fold_isolated(
    batch_ids: list[int], result: RollupResult, now: datetime, *, quarantine: bool = False
) -> bool:
    """Fold and delete these batches in a savepoint. On failure nothing of them is kept;
    with `quarantine` the (single) batch is marked to be retried later."""
    try:
        with transaction.atomic():
            spans = _batch_spans(batch_ids)
            rows = _apply(_fold(spans, _trace_info(spans)))
            IngestBatch.objects.filter(pk__in=batch_ids).delete()
    except Exception as exc:
        if is_outage(exc):
            raise
        if quarantine:
            _quarantine(batch_ids[0], exc, now)
            result.quarantined += 1
        return False
    result.rows += rows
    result.batches += len(batch_ids)
    result.spans += len(spans)
    result.project_ids.update(row[0] for row in spans)
    return True


def _quarantine(batch_id: int, exc: Exception, now: datetime) -> None:
    batch = IngestBatch.objects.get(pk=batch_id)
    batch.attempts += 1
    batch.error = f"{type(exc).__name__}: {exc}"[:2000]
    batch.failed_at = batch.failed_at or now
    batch.retry_at = now + quarantine_delay(batch.attempts)
    batch.save(update_fields=["attempts", "error", "failed_at", "retry_at"])
    log = logger.error if batch.attempts == 1 else logger.warning
    log(
        "rollup: batch %s of project %s quarantined (attempt %d, next try %s): %s",
        batch.pk,
        batch.project_id,
        batch.attempts,
        batch.retry_at.isoformat(),
        batch.error,
    )


def quarantined_batch_count() -> int:
    """Batches the rollup could not fold, kept for a later try (for staff)."""
    return IngestBatch.objects.filter(failed_at__isnull=False).count()


def rollup_rebuild(
    *, project_id: int, chunk: int = 50_000, now: datetime | None = None
) -> RollupResult:
    """Recompute a project's rollups from its spans, in one transaction, from the start of
    its retention window on: older buckets have no spans left to rebuild them from, so
    they are left alone (see traces/retention.py)."""
    result = RollupResult()
    days = Project.objects.filter(pk=project_id).values_list("retention_days", flat=True).first()
    since = cutoff_for(days or default_retention_days(), now)
    result.since = since
    with transaction.atomic():
        # Pending batches of the project are folded by this rebuild; drop them first
        # so they are not counted again.
        IngestBatch.objects.filter(project_id=project_id).delete()
        Rollup.objects.filter(project_id=project_id, bucket_start__gte=since).delete()
        acc: dict = {}
        for buffer in _project_span_chunks(project_id, since, chunk):
            _merge_acc(acc, _fold(buffer, _trace_info(buffer)))
            result.spans += len(buffer)
        result.rows = _apply(acc, fresh=True)
    return result


def _merge_acc(into: dict, other: dict) -> None:
    for key, a in other.items():
        b = into.get(key)
        if b is None:
            into[key] = a
            continue
        for name, value in a.sums.items():
            b.sums[name] += value
        Histogram.merge(b.span_latency, a.span_latency)
        Histogram.merge(b.run_latency, a.run_latency)


# ------------------------------------------------------------------ where spans are read

_span_tuple = itemgetter(*_SPAN_COLUMNS)


def _batch_spans(batch_ids: list[int]) -> list[tuple]:
    """The spans these (claimed) batches stored, as `_SPAN_COLUMNS` tuples.

    On a ClickHouse span store a batch's spans are those whose first stored copy carries
    its token (`batch_spans`: each span folds once, whatever was re-sent). A batch
    without a token was recorded before the store was switched: its spans are in
    traces_span."""
    store = span_store()
    if store.kind == "relational":
        return list(Span.objects.filter(batch_id__in=batch_ids).values_list(*_SPAN_COLUMNS))
    spans: list[tuple] = []
    tokens: dict[int, list[str]] = defaultdict(list)
    relational: list[int] = []
    for pk, project_id, token in IngestBatch.objects.filter(pk__in=batch_ids).values_list(
        "pk", "project_id", "token"
    ):
        if token:
            tokens[project_id].append(token)
        else:
            relational.append(pk)
    if relational:
        spans += Span.objects.filter(batch_id__in=relational).values_list(*_SPAN_COLUMNS)
    for project_id, project_tokens in sorted(tokens.items()):
        rows = store.batch_spans(project_id, project_tokens, columns=_SPAN_COLUMNS)
        spans += map(_span_tuple, rows)
    return spans


def _project_span_chunks(project_id: int, since: datetime, chunk: int):
    """A project's spans from `since` on, as lists of `_SPAN_COLUMNS` tuples. On a
    ClickHouse span store, also what traces_span still holds from before the switch."""
    stores = [RelationalSpanStore()]
    store = span_store()
    if store.kind != "relational":
        stores.append(store)
    for one in stores:
        for rows in one.project_spans(project_id, since, columns=_SPAN_COLUMNS, chunk=chunk):
            yield [_span_tuple(row) for row in rows]
