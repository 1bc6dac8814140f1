"""Decoded spans → rows, in one transaction per request.

The write path, in order:

1. validate each span (ids, times; a start before the project's retention window, whose
   day may already be dropped); a span that cannot be stored is rejected on its own and
   reported back as OTLP partial success, the rest go on;
2. map conventions to the neutral record (`conventions.map_span`) and price it
   (`pricing.PriceBook`);
3. insert all spans in a few multi-row statements with ON CONFLICT DO NOTHING
   RETURNING: what comes back is what is new, so a re-sent batch changes nothing;
4. fold the *new* spans into a summary per trace and merge it into the stored one, both
   by the rules of traces/trace_merge.py (sums, min/max, the root's or earliest span's
   value). Merging in SQL keeps summaries right under concurrent requests for the same
   trace, where "recompute from the spans" would lose updates between two open
   transactions; one set of rules makes them the same whatever the batching.

Rows are sorted by key before writing so that two requests touching the same traces
take their row locks in the same order (no deadlocks).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from operator import itemgetter
from typing import Any
from uuid import uuid4

import orjson
from django.db import connection, transaction

from traces import conventions
from traces.models import IngestBatch, Span, SpanStatus, Step, Trace, TraceStatus
from traces.otlp import Limits, RawSpan, describe_limited
from traces.pricing import PriceBook
from traces.retention import cutoff_for, project_retention_days
from traces.spanstore import span_store
from traces.sql import insert_rows
from traces.trace_merge import (
    MAX_TRACE_COST,  # noqa: F401 (the span rollups share it)
    span_keys,
    summary_add,
    summary_start,
    upsert_set_sql,
)

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_REJECT_REASONS = 5
# Clients occasionally send absurd clocks; refuse what cannot be a real span time.
MIN_NS = 946_684_800 * 10**9  # 2000-01-01
MAX_NS = 4_102_444_800 * 10**9  # 2100-01-01
# Why no sum can overflow its column. Per span: tokens ≤ conventions.MAX_TOKENS (10^8) per
# field, so input ≤ 3·10^8 with cache parts added back; cost ≤ conventions.MAX_COST ($10^4,
# reported or computed, see pricing._MONEY_MAX). Per request: ≤ OTLP_MAX_SPANS_PER_REQUEST
# (10^4) spans, so one request adds at most 3·10^12 tokens and $10^8.
# - Trace summary: tokens are bigint (9.2·10^18): 3·10^6 max requests to one trace before
#   overflow. Cost is numeric(20, 10) (< $10^10): 100 max requests could fill it, so the
#   upsert saturates at MAX_TRACE_COST (traces/trace_merge.py) instead of failing every
#   later batch of that trace.
# - Rollups (traces/rollups.py): per 15-minute bucket the same column types; tokens need
#   3·10^6 max requests in 15 minutes, cost 100 max requests of $10^4 spans ($10^10).
# - Budgets: a value is numeric(24, 10) (< $10^14), a sum of rollup costs each < $10^10.

# Rows are built as dicts keyed by column; the tuple order comes from these lists alone.
SPAN_COLUMNS = tuple(f.column for f in Span._meta.concrete_fields if not f.primary_key)
TRACE_COLUMNS = tuple(f.column for f in Trace._meta.concrete_fields if not f.primary_key)
_span_tuple = itemgetter(*SPAN_COLUMNS)
_trace_tuple = itemgetter(*TRACE_COLUMNS)


@dataclass
class IngestResult:
    received: int = 0
    stored: int = 0  # new spans written
    duplicates: int = 0  # spans already stored (re-sent)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)
    # Spans beyond the per-request limit (counted in `rejected`, not in `reasons`).
    over_limit: int = 0
    # What the decoding limits and plausibility checks left out of stored spans.
    limited: dict[str, int] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)
    limits: Limits | None = None

    @property
    def message(self) -> str:
        parts = []
        if self.rejected:
            reasons = list(self.reasons)
            if self.over_limit:
                limit = self.limits.spans if self.limits else "per-request"
                reasons.insert(
                    0,
                    f"{self.over_limit} beyond the {limit}-span per-request limit "
                    "(export smaller batches)",
                )
            more = self.rejected - self.over_limit - len(self.reasons)
            tail = f" (and {more} more)" if more > 0 else ""
            parts.append(f"{self.rejected} span(s) rejected: " + "; ".join(reasons) + tail)
        if self.limited:
            parts.append(
                "stored with limits applied: "
                + "; ".join(describe_limited(self.limited, self.limits or Limits()))
            )
        if self.invalid:
            fields = ", ".join(
                f"{key} ×{n}" if n > 1 else key for key, n in sorted(self.invalid.items())
            )
            parts.append(
                "implausible values treated as absent (token counts must be 0.."
                f"{conventions.MAX_TOKENS} per call, costs $0..${conventions.MAX_COST} "
                "per span): " + fields
            )
        return ". ".join(parts)


def ns_to_datetime(ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=ns // 1000)


def _is_hex_id(value: str, length: int) -> bool:
    return len(value) == length and value.strip("0") != ""


def _invalid_reason(raw: RawSpan) -> str | None:
    if raw.invalid:
        return f"span {raw.span_id[:40] or '?'}: {raw.invalid}"
    if not _is_hex_id(raw.trace_id, 32):
        return f"span {raw.span_id[:40] or '?'}: trace_id must be 16 non-zero bytes"
    if not _is_hex_id(raw.span_id, 16):
        return f"span in trace {raw.trace_id[:40]}: span_id must be 8 non-zero bytes"
    if raw.parent_span_id and not _is_hex_id(raw.parent_span_id, 16):
        return f"span {raw.span_id}: parent_span_id must be empty or 8 non-zero bytes"
    if not raw.start_ns or not raw.end_ns:
        return f"span {raw.span_id}: start and end times are required"
    if not (MIN_NS <= raw.start_ns <= MAX_NS) or not (MIN_NS <= raw.end_ns <= MAX_NS):
        return f"span {raw.span_id}: times must fall between 2000 and 2100"
    if raw.end_ns < raw.start_ns:
        return f"span {raw.span_id}: end time is before start time"
    return None


def _json(value) -> str:
    # orjson refuses NaN/Infinity silently by writing null, which is what we want in
    # JSON columns (PostgreSQL's jsonb rejects NaN).
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def span_batch_ingest(
    *, project_id: int, spans: list[RawSpan], received_at: datetime | None = None
) -> IngestResult:
    """Store a decoded OTLP batch for a project. Idempotent: re-sending stores nothing twice.

    Raises django.db.DatabaseError subclasses when the database is unavailable; the
    caller answers 503 so the exporter retries, and nothing of the batch is kept.
    """
    received_at = received_at or datetime.now(UTC)
    result = IngestResult(received=len(spans))
    # A SpanBatch from otlp.decode also says what its limits left out of the request.
    over_limit = getattr(spans, "over_limit", 0)
    if over_limit:
        result.received += over_limit
        result.rejected += over_limit
        result.over_limit = over_limit
    limited = getattr(spans, "limited", None)
    if limited:
        result.limited = dict(limited)
    result.limits = getattr(spans, "limits", None)
    prices = PriceBook.load()
    # Cached in process (traces/retention.py): no query per request.
    retention_days = project_retention_days(project_id)
    cutoff = cutoff_for(retention_days, received_at)
    cutoff_ns = int((cutoff - EPOCH).total_seconds()) * 10**9

    rows: dict[tuple[str, str], dict[str, Any]] = {}
    summaries: dict[tuple[str, str], tuple[dict[str, Any], RawSpan, conventions.Neutral]] = {}
    adapt_dt = connection.ops.adapt_datetimefield_value
    received_db = adapt_dt(received_at)
    # Resource and scope dicts are shared by the spans of their block: encoded once each.
    shared: dict[int, str] = {}
    for raw in spans:
        reason = _invalid_reason(raw)
        if not reason and raw.start_ns < cutoff_ns:
            reason = (
                f"span {raw.span_id}: starts before this project's {retention_days}-day "
                f"retention window ({cutoff:%Y-%m-%d} UTC); not stored"
            )
        if reason:
            result.rejected += 1
            if len(result.reasons) < MAX_REJECT_REASONS:
                result.reasons.append(reason)
            continue
        n = conventions.map_span(raw)
        if n.invalid:
            for key, count in n.invalid.items():
                result.invalid[key] = result.invalid.get(key, 0) + count
        started = ns_to_datetime(raw.start_ns)
        priced = prices.price(
            provider=n.provider,
            model=n.model,
            at=started,
            input_tokens=n.input_tokens,
            output_tokens=n.output_tokens,
            cached_input_tokens=n.cached_input_tokens,
            cache_write_tokens=n.cache_write_tokens,
            reasoning_tokens=n.reasoning_tokens,
            reported_cost=n.reported_cost,
        )
        key = (raw.trace_id, raw.span_id)
        # A span repeated inside one batch is kept once (the last copy wins).
        row = rows[key] = _span_row(project_id, raw, n, priced, started, received_db, shared)
        summaries[key] = (_span_summary(row, raw, n, priced), raw, n)

    if not rows:
        return result

    store = span_store()
    if store.kind != "relational":
        return _store_batch_ingest(
            store, project_id, rows, summaries, result, received_at, retention_days
        )

    with transaction.atomic():
        # The batch tells the rollup task which spans it has not folded yet.
        batch_id = IngestBatch.objects.create(
            project_id=project_id, received_at=received_at, span_count=len(rows)
        ).pk
        values = []
        for key in sorted(rows):
            row = rows[key]
            row["batch_id"] = batch_id
            values.append(_span_tuple(row))
        new_keys = _insert_spans(values)
        result.stored = len(new_keys)
        result.duplicates = len(rows) - len(new_keys)
        new_items = [summaries[k] for k in new_keys]
        traces = _trace_summaries(new_items)
        if traces:
            _upsert_traces(project_id, traces, received_db)
        _insert_outcomes(project_id, new_items, received_db)
    return result


def _span_row(
    project_id: int, raw: RawSpan, n, priced, started, received_db, shared: dict[int, str]
) -> dict[str, Any]:
    adapt_dt = connection.ops.adapt_datetimefield_value
    resource = shared.get(id(raw.resource))
    if resource is None:
        resource = shared[id(raw.resource)] = _json(raw.resource)
    scope = shared.get(id(raw.scope))
    if scope is None:
        scope = shared[id(raw.scope)] = _json(raw.scope)
    return {
        "project_id": project_id,
        "trace_id": raw.trace_id,
        "span_id": raw.span_id,
        "parent_span_id": raw.parent_span_id,
        "name": _clip(raw.name, 500),
        "kind": raw.kind,
        "started_at": adapt_dt(started),
        "ended_at": adapt_dt(ns_to_datetime(raw.end_ns)),
        "duration_ms": (raw.end_ns - raw.start_ns) / 1e6,
        "status": n.status,
        "status_message": n.status_message,
        "error_type": _clip(n.error_type, 200),
        "step": n.step,
        "role": n.role,
        "service_name": _clip(n.service_name, 200),
        "agent": _clip(n.agent, 200),
        "agent_version": _clip(n.agent_version, 100),
        "prompt_version": _clip(n.prompt_version, 100),
        "model": _clip(n.model, 200),
        "provider": _clip(n.provider, 100),
        "input_tokens": n.input_tokens,
        "output_tokens": n.output_tokens,
        "cached_input_tokens": n.cached_input_tokens,
        "cache_write_tokens": n.cache_write_tokens,
        "reasoning_tokens": n.reasoning_tokens,
        "tool_name": _clip(n.tool_name, 200),
        "tool_call_id": _clip(n.tool_call_id, 200),
        "tool_arguments": n.tool_arguments,
        "tool_result": n.tool_result,
        "session_id": _clip(n.session_id, 200),
        "user_id": _clip(n.user_id, 200),
        "cost_usd": priced.cost_usd,
        "computed_cost_usd": priced.computed_cost_usd,
        "cost_source": priced.source,
        "attributes": _json(raw.attributes),
        "events": _json(raw.events) if raw.events else "[]",
        "links": _json(raw.links) if raw.links else "[]",
        "resource": resource,
        "scope": scope,
        "received_at": received_db,
    }


def _insert_spans(values: list[tuple]) -> list[tuple[str, str]]:
    """Write spans, skipping those already stored; return the keys actually written."""
    if connection.vendor == "postgresql":
        new = _insert_spans_copy(values)
    else:
        new = _insert_spans_values(values)
    new.sort()
    return new


def _insert_spans_copy(values: list[tuple]) -> list[tuple[str, str]]:
    """PostgreSQL: COPY into a per-connection staging table, then one INSERT … SELECT
    … ON CONFLICT DO NOTHING. COPY streams rows without building (or parsing) a query
    of thousands of placeholders, which profiling showed to cost more than the write."""
    cols = ", ".join(SPAN_COLUMNS)
    with connection.cursor() as cursor:
        # Rows vanish at commit; the table lives as long as the connection. Asked for on
        # every request (a rolled-back transaction takes a just-created table with it)
        # and emptied in the same round trip, for callers that ingest twice in one
        # transaction.
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS span_stage ON COMMIT DELETE ROWS AS "
            f"SELECT {cols} FROM traces_span WITH NO DATA; DELETE FROM span_stage"
        )
        with cursor.cursor.copy(f"COPY span_stage ({cols}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO traces_span ({cols}) SELECT {cols} FROM span_stage"
            " ORDER BY trace_id, span_id"
            " ON CONFLICT (project_id, trace_id, span_id, started_at) DO NOTHING"
            " RETURNING trace_id, span_id"
        )
        new = list(cursor.fetchall())
    return new


def _insert_spans_values(values: list[tuple]) -> list[tuple[str, str]]:
    """SQLite: multi-row INSERT … ON CONFLICT DO NOTHING RETURNING."""
    return insert_rows(
        table="traces_span",
        columns=SPAN_COLUMNS,
        rows=values,
        tail="ON CONFLICT (project_id, trace_id, span_id, started_at) DO NOTHING "
        "RETURNING trace_id, span_id",
    )


_ZERO = Decimal(0)


def _span_summary(row: dict[str, Any], raw: RawSpan, n, priced) -> dict[str, Any]:
    """What one span (its row, values clipped) contributes to its trace's summary, merged
    by traces/trace_merge.py."""
    is_root = not raw.parent_span_id
    return {
        "root_span_id": raw.span_id if is_root else "",
        "root_status": n.status if is_root else "",
        "name": row["name"],
        "agent": row["agent"],
        "agent_version": row["agent_version"],
        "service_name": row["service_name"],
        "prompt_version": row["prompt_version"],
        "phase": n.phase,
        "session_id": row["session_id"],
        "user_id": row["user_id"],
        "start_ns": raw.start_ns,
        "end_ns": raw.end_ns,
        "span_count": 1,
        "error_count": 1 if n.status == SpanStatus.ERROR else 0,
        "llm_call_count": 1 if n.step == Step.LLM else 0,
        "tool_call_count": 1 if n.step == Step.TOOL else 0,
        "input_tokens": n.input_tokens,
        "output_tokens": n.output_tokens,
        "cached_input_tokens": n.cached_input_tokens,
        "reasoning_tokens": n.reasoning_tokens,
        "cost_usd": _ZERO if priced.cost_usd is None else priced.cost_usd,
        "unpriced_count": 1 if priced.source == "unpriced" else 0,
        "intervened": n.intervened,
    }


def _trace_summaries(items) -> dict[str, dict[str, Any]]:
    """The new spans of a batch folded per trace, by the same rules as the upsert."""
    by_trace: dict[str, dict[str, Any]] = {}
    for contribution, raw, _n in items:
        keys = span_keys(start_ns=raw.start_ns, is_root=not raw.parent_span_id)
        into = by_trace.get(raw.trace_id)
        if into is None:
            by_trace[raw.trace_id] = summary_start(contribution, keys)
        else:
            summary_add(into, contribution, keys)
    return by_trace


def _trace_status(root_status: str) -> str:
    if root_status == SpanStatus.ERROR:
        return TraceStatus.ERROR
    if root_status:
        return TraceStatus.OK
    return TraceStatus.INCOMPLETE


def _upsert_traces(project_id: int, traces: dict[str, dict[str, Any]], received_db) -> None:
    adapt_dt = connection.ops.adapt_datetimefield_value
    values = []
    for trace_id in sorted(traces):
        row = traces[trace_id]
        row["project_id"] = project_id
        row["trace_id"] = trace_id
        row["started_at"] = adapt_dt(ns_to_datetime(row["start_ns"]))
        row["ended_at"] = adapt_dt(ns_to_datetime(row["end_ns"]))
        row["duration_ms"] = (row["end_ns"] - row["start_ns"]) / 1e6
        row["status"] = _trace_status(row["root_status"])
        row["first_received_at"] = row["last_received_at"] = received_db
        values.append(_trace_tuple(row))
    insert_rows(
        table="traces_trace",
        columns=TRACE_COLUMNS,
        rows=values,
        tail=_trace_upsert_tail(connection.vendor),
    )


@cache
def _trace_upsert_tail(vendor: str) -> str:
    updates = upsert_set_sql(table="traces_trace", vendor=vendor)
    set_sql = ", ".join(f"{col} = {expr}" for col, expr in updates.items())
    return f"ON CONFLICT (project_id, trace_id) DO UPDATE SET {set_sql}"


OUTCOME_COLUMNS = (
    "project_id",
    "trace_id",
    "kind",
    "name",
    "value",
    "source",
    "recorded_at",
    "received_at",
)
_outcome_tuple = itemgetter(*OUTCOME_COLUMNS)


def _insert_outcomes(project_id: int, items, received_db) -> None:
    """KPI and eval values carried on spans (agentops.kpi.* / agentops.eval.*).

    A value already posted through the outcomes API for the same run is kept: it was
    measured later, by the system that knows the outcome."""
    adapt_dt = connection.ops.adapt_datetimefield_value
    rows = {}
    for _summary, raw, n in items:
        for kind, values in (("kpi", n.kpis), ("eval", n.evals)):
            for name, value in (values or {}).items():
                rows[(raw.trace_id, kind, name[:100])] = {
                    "project_id": project_id,
                    "trace_id": raw.trace_id,
                    "kind": kind,
                    "name": name[:100],
                    "value": value,
                    "source": "span",
                    "recorded_at": adapt_dt(ns_to_datetime(raw.end_ns)),
                    "received_at": received_db,
                }
    if not rows:
        return
    insert_rows(
        table="traces_outcome",
        columns=OUTCOME_COLUMNS,
        rows=[_outcome_tuple(rows[k]) for k in sorted(rows)],
        tail="ON CONFLICT (project_id, trace_id, kind, name) DO NOTHING",
    )


# ------------------------------------------------------------------ ClickHouse span store


def _store_batch_ingest(
    store,
    project_id: int,
    rows: dict[tuple[str, str], dict[str, Any]],
    summaries: dict,
    result: IngestResult,
    received_at: datetime,
    retention_days: int,
) -> IngestResult:
    """The write path when spans live in a ClickHouse span store (docs/span-store.md).

    The spans go to the store first, then the relational transaction records the batch
    (with the store's token, by which the rollups read its spans back), the trace
    summaries and the outcomes. Only the spans the store does not hold yet are written
    and counted, as ON CONFLICT DO NOTHING does on the relational path. If the
    transaction fails, the batch's copies are discarded before the error goes on (the
    caller answers 503 and the exporter retries): copies nobody counted must not stay
    "first" and swallow the retry.
    """
    keys = sorted(rows)
    starts = [summaries[k][1].start_ns for k in keys]
    token = uuid4().hex
    written = discarded = False
    try:
        with transaction.atomic():
            # Two requests carrying the same spans at once (an exporter retrying a request
            # still in flight) must not both find them new and both count them in the
            # trace summaries: the look-up, the write and the record are one at a time
            # per trace (_lock_traces).
            _lock_traces(project_id, {trace_id for trace_id, _ in keys})
            existing = store.existing_keys(
                project_id, keys, ns_to_datetime(min(starts)), ns_to_datetime(max(starts))
            )
            new_keys = [k for k in keys if k not in existing]
            result.stored = len(new_keys)
            result.duplicates = len(rows) - len(new_keys)
            if not new_keys:
                return result
            spans = []
            for key in new_keys:
                raw = summaries[key][1]
                # The relational rows hold database-adapted times (text on SQLite).
                spans.append(
                    rows[key]
                    | {
                        "started_at": ns_to_datetime(raw.start_ns),
                        "ended_at": ns_to_datetime(raw.end_ns),
                        "received_at": received_at,
                    }
                )
            try:
                written = True
                store.insert_spans(project_id, spans, token, retention_days=retention_days)
                IngestBatch.objects.create(
                    project_id=project_id,
                    received_at=received_at,
                    span_count=len(new_keys),
                    token=token,
                )
                received_db = connection.ops.adapt_datetimefield_value(received_at)
                new_items = [summaries[k] for k in new_keys]
                traces = _trace_summaries(new_items)
                if traces:
                    _upsert_traces(project_id, traces, received_db)
                _insert_outcomes(project_id, new_items, received_db)
            except BaseException:
                # Still under the locks: a retry waiting on them must not find these
                # copies, take them for stored and answer 200 before they are discarded.
                # Also after a failed insert: the server may have stored it and lost
                # the answer.
                discarded = True
                _store_discard(store, project_id, token)
                raise
    except BaseException:
        if written and not discarded:  # the commit itself failed
            _store_discard(store, project_id, token)
        raise
    return result


# Traces are hashed into this many lock buckets per project; a batch touching more
# buckets than LOCKS_PER_BATCH locks its project instead, so that no request holds more
# than LOCKS_PER_BATCH + 1 of the server's shared lock slots (max_locks_per_transaction
# × connections; a request may carry thousands of traces).
LOCK_BUCKETS = 4096
LOCKS_PER_BATCH = 64
_PROJECT_LOCK = 0x6167  # the first key of a project's lock (two-key form)


def _lock_traces(project_id: int, trace_ids: set[str]) -> None:
    """PostgreSQL: transaction-scoped advisory locks on the batch's traces. A batch takes
    its project's lock shared and one lock per bucket of its traces, in one order (so two
    batches sharing traces cannot deadlock); a batch of more than LOCKS_PER_BATCH buckets
    takes its project's lock alone, exclusively. SQLite serialises writing transactions
    already (BEGIN IMMEDIATE)."""
    if connection.vendor != "postgresql" or not trace_ids:
        return
    buckets = {
        int.from_bytes(hashlib.blake2b(t.encode(), digest_size=4).digest(), "big") % LOCK_BUCKETS
        for t in trace_ids
    }
    project_key = project_id % 2**31
    with connection.cursor() as cursor:
        if len(buckets) > LOCKS_PER_BATCH:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_PROJECT_LOCK, project_key])
            return
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", [_PROJECT_LOCK, project_key])
        # One-key locks (a key space apart from the two-key one): project and bucket. The
        # ordered subquery feeds the aggregate in order: the locks are taken in it.
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(k)) FROM "
            "(SELECT unnest(%s::bigint[]) AS k ORDER BY 1) AS keys",
            [sorted(project_id * LOCK_BUCKETS + b for b in buckets)],
        )


def _store_discard(store, project_id: int, token: str) -> None:
    try:
        store.discard_batch(project_id, token)
    except Exception:
        # The store is down too. Its copies (if any) stay, uncounted, and hide these
        # spans from the exporter's retry: said loudly, it cannot be repaired from here.
        logger.exception(
            "span store: batch %s of project %s not discarded after a failed ingest; "
            "its spans may be stored but not counted",
            token,
            project_id,
        )
