"""Decoded spans → rows, in one transaction per request.

The write path, in order:

1. validate each span (ids, times); a span that cannot be stored is rejected on its own
   and reported back as OTLP partial success, the rest go on;
2. map conventions to the neutral record (`semconv.map_span`) and price it
   (`pricing.PriceBook`);
3. insert all spans in a few multi-row statements with ON CONFLICT DO NOTHING
   RETURNING: what comes back is what is new, so a re-sent batch changes nothing;
4. fold the *new* spans into per-trace deltas and upsert the trace summaries
   additively (counts, tokens and cost added; start/end widened; root fields set when
   the root arrives). Additive deltas keep summaries right whatever the order spans
   arrive in and under concurrent requests for the same trace, where "recompute from
   the spans" would lose updates between two open transactions.

Rows are sorted by key before writing so that two requests touching the same traces
take their row locks in the same order (no deadlocks).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
from django.db import connection, transaction

from traces import semconv
from traces.models import IngestBatch, SpanStatus, Step, TraceStatus
from traces.otlp import Limits, RawSpan, describe_limited
from traces.pricing import PriceBook
from traces.sql import insert_rows

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_REJECT_REASONS = 5
# Clients occasionally send absurd clocks; refuse what cannot be a real span time.
MIN_NS = 946_684_800 * 10**9  # 2000-01-01
MAX_NS = 4_102_444_800 * 10**9  # 2100-01-01
# Why no sum can overflow its column. Per span: tokens ≤ semconv.MAX_TOKENS (10^8) per
# field, so input ≤ 3·10^8 with cache parts added back; cost ≤ semconv.MAX_COST ($10^4,
# reported or computed, see pricing._MONEY_MAX). Per request: ≤ OTLP_MAX_SPANS_PER_REQUEST
# (10^4) spans, so one request adds at most 3·10^12 tokens and $10^8.
# - Trace summary: tokens are bigint (9.2·10^18): 3·10^6 max requests to one trace before
#   overflow. Cost is numeric(20, 10) (< $10^10): 100 max requests could fill it, so the
#   upsert saturates at MAX_TRACE_COST (a bound no real run approaches) instead of failing
#   every later batch of that trace.
# - Rollups (traces/rollups.py): per 15-minute bucket the same column types; tokens need
#   3·10^6 max requests in 15 minutes, cost 100 max requests of $10^4 spans ($10^10).
# - Budgets: a value is numeric(24, 10) (< $10^14), a sum of rollup costs each < $10^10.
MAX_TRACE_COST = Decimal(9_999_999_999)

SPAN_COLUMNS = (
    "project_id",
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "started_at",
    "ended_at",
    "duration_ms",
    "status",
    "status_message",
    "error_type",
    "step",
    "role",
    "service_name",
    "agent",
    "agent_version",
    "prompt_version",
    "model",
    "provider",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "tool_name",
    "tool_call_id",
    "tool_arguments",
    "tool_result",
    "session_id",
    "user_id",
    "cost_usd",
    "computed_cost_usd",
    "cost_source",
    "attributes",
    "events",
    "links",
    "resource",
    "scope",
    "received_at",
    "batch_id",
)

TRACE_COLUMNS = (
    "project_id",
    "trace_id",
    "root_span_id",
    "name",
    "agent",
    "agent_version",
    "service_name",
    "started_at",
    "ended_at",
    "start_ns",
    "end_ns",
    "duration_ms",
    "span_count",
    "error_count",
    "llm_call_count",
    "tool_call_count",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unpriced_count",
    "status",
    "root_status",
    "prompt_version",
    "phase",
    "intervened",
    "session_id",
    "user_id",
    "first_received_at",
    "last_received_at",
)


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
                f"{semconv.MAX_TOKENS} per call, costs $0..${semconv.MAX_COST} per span): " + fields
            )
        return ". ".join(parts)


def ns_to_datetime(ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=ns // 1000)


def _is_hex_id(value: str, length: int) -> bool:
    return len(value) == length and value.strip("0") != "" and not value.startswith("!")


def _invalid_reason(raw: RawSpan) -> str | None:
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


@dataclass(slots=True)
class _TraceDelta:
    trace_id: str
    root_span_id: str = ""
    name: str = ""
    agent: str = ""
    agent_version: str = ""
    service_name: str = ""
    start_ns: int = 0
    end_ns: int = 0
    span_count: int = 0
    error_count: int = 0
    llm_call_count: int = 0
    tool_call_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced_count: int = 0
    root_status: str = ""
    session_id: str = ""
    user_id: str = ""
    first_agent_start: int = 0
    agent_from_root: bool = False
    prompt_version: str = ""
    phase: str = ""
    intervened: bool = False


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

    rows: dict[tuple[str, str], tuple] = {}
    deltas_input: dict[tuple[str, str], tuple[RawSpan, semconv.Neutral, object]] = {}
    for raw in spans:
        reason = _invalid_reason(raw)
        if reason:
            result.rejected += 1
            if len(result.reasons) < MAX_REJECT_REASONS:
                result.reasons.append(reason)
            continue
        n = semconv.map_span(raw)
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
        rows[key] = (
            raw,
            n,
            priced,
            started,
        )
        deltas_input[key] = (raw, n, priced)

    if not rows:
        return result

    adapt_dt = connection.ops.adapt_datetimefield_value
    received_db = adapt_dt(received_at)
    values = []
    for key in sorted(rows):
        raw, n, priced, started = rows[key]
        values.append(
            (
                project_id,
                raw.trace_id,
                raw.span_id,
                raw.parent_span_id,
                _clip(raw.name, 500),
                raw.kind,
                adapt_dt(started),
                adapt_dt(ns_to_datetime(raw.end_ns)),
                (raw.end_ns - raw.start_ns) / 1e6,
                n.status,
                n.status_message,
                _clip(n.error_type, 200),
                n.step,
                n.role,
                _clip(n.service_name, 200),
                _clip(n.agent, 200),
                _clip(n.agent_version, 100),
                _clip(n.prompt_version, 100),
                _clip(n.model, 200),
                _clip(n.provider, 100),
                n.input_tokens,
                n.output_tokens,
                n.cached_input_tokens,
                n.cache_write_tokens,
                n.reasoning_tokens,
                _clip(n.tool_name, 200),
                _clip(n.tool_call_id, 200),
                n.tool_arguments,
                n.tool_result,
                _clip(n.session_id, 200),
                _clip(n.user_id, 200),
                priced.cost_usd,
                priced.computed_cost_usd,
                priced.source,
                _json(raw.attributes),
                _json(raw.events),
                _json(raw.links),
                _json(raw.resource),
                _json(raw.scope),
                received_db,
            )
        )

    with transaction.atomic():
        # The batch tells the rollup task which spans it has not folded yet.
        batch_id = IngestBatch.objects.create(
            project_id=project_id, received_at=received_at, span_count=len(values)
        ).pk
        values = [(*row, batch_id) for row in values]
        new_keys = _insert_spans(values)
        result.stored = len(new_keys)
        result.duplicates = len(rows) - len(new_keys)
        new_items = [deltas_input[k] for k in new_keys]
        deltas = _trace_deltas(new_items)
        if deltas:
            _upsert_traces(project_id, deltas, received_db)
        _insert_outcomes(project_id, new_items, received_db)
    return result


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
            " ON CONFLICT (project_id, trace_id, span_id) DO NOTHING"
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
        tail="ON CONFLICT (project_id, trace_id, span_id) DO NOTHING RETURNING trace_id, span_id",
    )


def _trace_deltas(items) -> list[_TraceDelta]:
    by_trace: dict[str, _TraceDelta] = {}
    for raw, n, priced in items:
        d = by_trace.get(raw.trace_id)
        if d is None:
            d = by_trace[raw.trace_id] = _TraceDelta(
                trace_id=raw.trace_id, start_ns=raw.start_ns, end_ns=raw.end_ns
            )
        else:
            d.start_ns = min(d.start_ns, raw.start_ns)
            d.end_ns = max(d.end_ns, raw.end_ns)
        d.span_count += 1
        if n.status == SpanStatus.ERROR:
            d.error_count += 1
        if n.step == Step.LLM:
            d.llm_call_count += 1
        elif n.step == Step.TOOL:
            d.tool_call_count += 1
        d.input_tokens += n.input_tokens
        d.output_tokens += n.output_tokens
        d.cached_input_tokens += n.cached_input_tokens
        d.reasoning_tokens += n.reasoning_tokens
        if priced.cost_usd is not None:
            d.cost_usd += priced.cost_usd
        if priced.source == "unpriced":
            d.unpriced_count += 1
        if not raw.parent_span_id:
            d.root_span_id = raw.span_id
            d.name = raw.name
            d.root_status = n.status
            if n.agent:
                d.agent = n.agent
                d.agent_from_root = True
            if n.agent_version:
                d.agent_version = n.agent_version
            d.service_name = n.service_name or d.service_name
        else:
            if not d.name:
                d.name = raw.name
            # Unless the root names an agent, the earliest agent span names the run
            # (workflow roots of some clients carry no agent name).
            if (
                n.agent
                and not d.agent_from_root
                and (not d.agent or raw.start_ns < d.first_agent_start)
            ):
                d.agent = n.agent
                d.first_agent_start = raw.start_ns
            if n.agent_version and not d.agent_version:
                d.agent_version = n.agent_version
            if not d.service_name:
                d.service_name = n.service_name
        if n.intervened:
            d.intervened = True
        # The root's phase and prompt version name the run; else the first seen.
        if n.phase and (not d.phase or not raw.parent_span_id):
            d.phase = n.phase
        if n.prompt_version and (not d.prompt_version or not raw.parent_span_id):
            d.prompt_version = n.prompt_version
        if not d.session_id and n.session_id:
            d.session_id = n.session_id
        if not d.user_id and n.user_id:
            d.user_id = n.user_id
    return [by_trace[t] for t in sorted(by_trace)]


def _trace_status(root_status: str) -> str:
    if root_status == SpanStatus.ERROR:
        return TraceStatus.ERROR
    if root_status:
        return TraceStatus.OK
    return TraceStatus.INCOMPLETE


def _upsert_traces(project_id: int, deltas: list[_TraceDelta], received_db) -> None:
    adapt_dt = connection.ops.adapt_datetimefield_value
    least, greatest = ("LEAST", "GREATEST") if connection.vendor == "postgresql" else ("MIN", "MAX")
    t = "traces_trace"
    has_root = "excluded.root_span_id <> ''"
    new_start = f"{least}({t}.start_ns, excluded.start_ns)"
    new_end = f"{greatest}({t}.end_ns, excluded.end_ns)"
    root_status = f"CASE WHEN {has_root} THEN excluded.root_status ELSE {t}.root_status END"
    status_sql = (
        f"CASE WHEN ({root_status}) = 'error' THEN 'error' "
        f"WHEN ({root_status}) <> '' THEN 'ok' ELSE 'incomplete' END"
    )

    def keep_first(col: str) -> str:
        return f"CASE WHEN {t}.{col} = '' THEN excluded.{col} ELSE {t}.{col} END"

    def root_wins(col: str) -> str:
        return (
            f"CASE WHEN {has_root} AND excluded.{col} <> '' THEN excluded.{col} "
            f"WHEN {t}.{col} = '' THEN excluded.{col} ELSE {t}.{col} END"
        )

    def add(col: str) -> str:
        return f"{t}.{col} + excluded.{col}"

    updates = {
        "root_span_id": (
            f"CASE WHEN {has_root} THEN excluded.root_span_id ELSE {t}.root_span_id END"
        ),
        "name": root_wins("name"),
        "agent": root_wins("agent"),
        "agent_version": root_wins("agent_version"),
        "service_name": root_wins("service_name"),
        "started_at": f"CASE WHEN excluded.start_ns < {t}.start_ns THEN excluded.started_at "
        f"ELSE {t}.started_at END",
        "ended_at": f"CASE WHEN excluded.end_ns > {t}.end_ns THEN excluded.ended_at "
        f"ELSE {t}.ended_at END",
        "start_ns": new_start,
        "end_ns": new_end,
        "duration_ms": f"({new_end} - {new_start}) / 1000000.0",
        "span_count": add("span_count"),
        "error_count": add("error_count"),
        "llm_call_count": add("llm_call_count"),
        "tool_call_count": add("tool_call_count"),
        "input_tokens": add("input_tokens"),
        "output_tokens": add("output_tokens"),
        "cached_input_tokens": add("cached_input_tokens"),
        "reasoning_tokens": add("reasoning_tokens"),
        "cost_usd": f"{least}({add('cost_usd')}, {MAX_TRACE_COST})",
        "unpriced_count": add("unpriced_count"),
        "status": status_sql,
        "root_status": root_status,
        "prompt_version": root_wins("prompt_version"),
        "phase": root_wins("phase"),
        "intervened": f"({t}.intervened OR excluded.intervened)",
        "session_id": keep_first("session_id"),
        "user_id": keep_first("user_id"),
        "last_received_at": "excluded.last_received_at",
    }
    values = []
    for d in deltas:
        values.append(
            (
                project_id,
                d.trace_id,
                d.root_span_id,
                _clip(d.name, 500),
                _clip(d.agent, 200),
                _clip(d.agent_version, 100),
                _clip(d.service_name, 200),
                adapt_dt(ns_to_datetime(d.start_ns)),
                adapt_dt(ns_to_datetime(d.end_ns)),
                d.start_ns,
                d.end_ns,
                (d.end_ns - d.start_ns) / 1e6,
                d.span_count,
                d.error_count,
                d.llm_call_count,
                d.tool_call_count,
                d.input_tokens,
                d.output_tokens,
                d.cached_input_tokens,
                d.reasoning_tokens,
                d.cost_usd,
                d.unpriced_count,
                _trace_status(d.root_status),
                d.root_status,
                _clip(d.prompt_version, 100),
                d.phase,
                d.intervened,
                _clip(d.session_id, 200),
                _clip(d.user_id, 200),
                received_db,
                received_db,
            )
        )
    set_sql = ", ".join(f"{col} = {expr}" for col, expr in updates.items())
    insert_rows(
        table=t,
        columns=TRACE_COLUMNS,
        rows=values,
        tail=f"ON CONFLICT (project_id, trace_id) DO UPDATE SET {set_sql}",
    )


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


def _insert_outcomes(project_id: int, items, received_db) -> None:
    """KPI and eval values carried on spans (agentops.kpi.* / agentops.eval.*).

    A value already posted through the outcomes API for the same run is kept: it was
    measured later, by the system that knows the outcome."""
    adapt_dt = connection.ops.adapt_datetimefield_value
    rows = {}
    for raw, n, _priced in items:
        for kind, values in (("kpi", n.kpis), ("eval", n.evals)):
            for name, value in (values or {}).items():
                rows[(raw.trace_id, kind, name[:100])] = (
                    project_id,
                    raw.trace_id,
                    kind,
                    name[:100],
                    value,
                    "span",
                    adapt_dt(ns_to_datetime(raw.end_ns)),
                    received_db,
                )
    if not rows:
        return
    insert_rows(
        table="traces_outcome",
        columns=OUTCOME_COLUMNS,
        rows=[rows[k] for k in sorted(rows)],
        tail="ON CONFLICT (project_id, trace_id, kind, name) DO NOTHING",
    )
