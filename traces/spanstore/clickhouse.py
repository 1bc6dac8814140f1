"""The ClickHouse span store: every statement that touches ClickHouse, and nothing else.

One table, `spans`, one row per (project, trace, span) once merged (docs/span-store.md):

- ReplacingMergeTree(version) with version = 2^64-1 − the server's insert time in µs, so
  of two copies of a span the FIRST stored one survives merges and FINAL. A span counts
  with the batch that first stored it, as with ON CONFLICT DO NOTHING on PostgreSQL.
- Every insert carries the batch's `insert_deduplication_token`, and the table keeps
  the tokens of its last blocks (`non_replicated_deduplication_window`): a retried
  insert of a batch is dropped whole, before any merge. Reads that count still use
  FINAL, because an exporter's re-sent request is a new batch with the same spans.
- No materialised views: a view sees every inserted block, a re-sent one included.

Values are always bound as server-side parameters ({name:Type}); identifiers (the
database name, a grouping column) come from the fixed lists below, never from input.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import orjson

from traces.spanstore import query

logger = logging.getLogger(__name__)

TABLE = "spans"
# The columns of traces.Span, in this order, with their ClickHouse types.
# Times are DateTime64(6, 'UTC'): microseconds like PostgreSQL, aware on read.
SPAN_COLUMNS: dict[str, str] = {
    "project_id": "UInt64",
    "trace_id": "String",
    "span_id": "String",
    "parent_span_id": "String",
    "name": "String CODEC(ZSTD(1))",
    "kind": "UInt8",
    "started_at": "DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1))",
    "ended_at": "DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1))",
    "duration_ms": "Float64 CODEC(Gorilla, ZSTD(1))",
    "status": "LowCardinality(String)",
    "status_message": "String CODEC(ZSTD(1))",
    "error_type": "LowCardinality(String)",
    "step": "LowCardinality(String)",
    "role": "LowCardinality(String)",
    "service_name": "LowCardinality(String)",
    "agent": "LowCardinality(String)",
    "agent_version": "LowCardinality(String)",
    "prompt_version": "LowCardinality(String)",
    "model": "LowCardinality(String)",
    "provider": "LowCardinality(String)",
    "input_tokens": "Int64 CODEC(T64, ZSTD(1))",
    "output_tokens": "Int64 CODEC(T64, ZSTD(1))",
    "cached_input_tokens": "Int64 CODEC(T64, ZSTD(1))",
    "cache_write_tokens": "Int64 CODEC(T64, ZSTD(1))",
    "reasoning_tokens": "Int64 CODEC(T64, ZSTD(1))",
    "tool_name": "LowCardinality(String)",
    "tool_call_id": "String CODEC(ZSTD(1))",
    "tool_arguments": "String CODEC(ZSTD(3))",
    "tool_result": "String CODEC(ZSTD(3))",
    "session_id": "String CODEC(ZSTD(1))",
    "user_id": "String CODEC(ZSTD(1))",
    # Decimal(20, 10) like money_field(): exact sums, no float drift in budgets.
    "cost_usd": "Nullable(Decimal(20, 10)) CODEC(ZSTD(1))",
    "computed_cost_usd": "Nullable(Decimal(20, 10)) CODEC(ZSTD(1))",
    "cost_source": "LowCardinality(String)",
    "attributes": "String CODEC(ZSTD(3))",
    "events": "String CODEC(ZSTD(3))",
    "links": "String CODEC(ZSTD(3))",
    "resource": "String CODEC(ZSTD(3))",
    "scope": "String CODEC(ZSTD(3))",
    "received_at": "DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1))",
    "batch_id": "Nullable(Int64)",
}
JSON_COLUMNS = frozenset({"attributes", "events", "links", "resource", "scope"})
_JSON_DEFAULTS = {"attributes": {}, "events": [], "links": [], "resource": {}, "scope": {}}
_DEFAULTS: dict[str, Any] = {
    "parent_span_id": "",
    "kind": 0,
    "status": "unset",
    "status_message": "",
    "error_type": "",
    "step": "other",
    "role": "",
    "service_name": "",
    "agent": "",
    "agent_version": "",
    "prompt_version": "",
    "model": "",
    "provider": "",
    "input_tokens": 0,
    "output_tokens": 0,
    "cached_input_tokens": 0,
    "cache_write_tokens": 0,
    "reasoning_tokens": 0,
    "tool_name": "",
    "tool_call_id": "",
    "tool_arguments": "",
    "tool_result": "",
    "session_id": "",
    "user_id": "",
    "cost_usd": None,
    "computed_cost_usd": None,
    "cost_source": "",
    "batch_id": None,
}
# The store's own columns: which batch stored this copy, when it expires, and the
# engine's version (first copy wins: a smaller insert time is a larger version).
STORE_COLUMNS: dict[str, str] = {
    "batch_token": "String CODEC(ZSTD(1))",
    "expires_at": "DateTime('UTC') CODEC(Delta, ZSTD(1))",
    "ingested": "DateTime64(6, 'UTC') DEFAULT now64(6) CODEC(Delta, ZSTD(1))",
    "version": "UInt64 DEFAULT 18446744073709551615 - toUnixTimestamp64Micro(ingested)",
}
_INSERT_COLUMNS = (*SPAN_COLUMNS, "batch_token", "expires_at")
# What cost_by() may group by, and the buckets it may cut time into (seconds).
GROUPS = ("model", "agent", "provider", "service_name", "agent_version", "prompt_version")
BUCKETS = {"15m": 900, "hour": 3600, "day": 86400}
# A batch token is ours (the wiring mints it), but it is still bound, never formatted.
MAX_TOKEN = 128
# Recent insert tokens a table remembers. A retry older than this is not dropped at
# insert, but still loses to the first copy on merge and under FINAL.
DEDUP_WINDOW = 10_000
# (trace_id, span_id) pairs asked per existing_keys statement.
KEYS_PER_QUERY = 2_000

# A server gathers the inserts of every receiver into one part (flushed within 200 ms, or
# at 10 MB) rather than one part per OTLP request: at 1,000 spans/s in 100-span requests,
# ten small parts a second would otherwise pile up faster than merges fold them ("too
# many parts"). wait_for_async_insert keeps the promise of the 200: the answer goes once
# the rows are on disk. The deduplication token still applies (async_insert_deduplicate).
_ASYNC_INSERT = {
    "async_insert": 1,
    "wait_for_async_insert": 1,
    "async_insert_deduplicate": 1,
    "async_insert_busy_timeout_max_ms": 200,
    "async_insert_max_data_size": 10_485_760,
}

# Copies of a span share its start, hence its partition: FINAL need not merge across them.
_READ_SETTINGS = {"do_not_merge_across_partitions_select_final": 1}

_ONE_DAY = timedelta(days=1)
_TIME = "DateTime64(6, 'UTC')"
# A span's identity, and the order spans were stored in (select_spans' "arrival").
_KEY = ("project_id", "trace_id", "span_id")
_ARRIVAL = ("received_at", "project_id", "trace_id", "span_id")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _ddl(database: str) -> list[str]:
    columns = ",\n    ".join(
        f"`{name}` {kind}" for name, kind in {**SPAN_COLUMNS, **STORE_COLUMNS}.items()
    )
    return [
        f"CREATE DATABASE IF NOT EXISTS `{database}`",
        f"""CREATE TABLE IF NOT EXISTS `{database}`.`{TABLE}` (
    {columns},
    -- the timeline looks a trace up by id alone when its time range is unknown
    INDEX trace_id_bloom trace_id TYPE bloom_filter(0.01) GRANULARITY 4,
    -- the rollups read the spans of a few recent batches
    INDEX batch_token_bloom batch_token TYPE bloom_filter(0.01) GRANULARITY 1,
    -- the control tasks read the spans received in a recent window
    INDEX received_at_minmax received_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(started_at)
ORDER BY (project_id, toDate(started_at), trace_id, span_id)
TTL expires_at DELETE
SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW},
    index_granularity = 8192""",
        # a table created before the index: new parts get it (MATERIALIZE INDEX for old)
        f"ALTER TABLE `{database}`.`{TABLE}` ADD INDEX IF NOT EXISTS received_at_minmax"
        " received_at TYPE minmax GRANULARITY 1",
    ]


def _json(value: Any, default: Any) -> str:
    if value is None:
        value = default
    if isinstance(value, str):  # already serialised (a COPY or a read from PostgreSQL)
        return value
    return orjson.dumps(value).decode()


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("span times must be timezone-aware")
    return value.astimezone(UTC)


_NEVER = datetime(2105, 12, 31, tzinfo=UTC)  # the expiry of a span kept beyond DateTime's range


def _row(project_id: int, span: Mapping[str, Any], token: str, retention: timedelta) -> list:
    row = []
    for name in SPAN_COLUMNS:
        if name == "project_id":
            row.append(project_id)
        elif name in JSON_COLUMNS:
            row.append(_json(span.get(name), _JSON_DEFAULTS[name]))
        elif name in ("started_at", "ended_at", "received_at"):
            row.append(_aware(span[name]))
        elif name in ("cost_usd", "computed_cost_usd"):
            value = span.get(name)
            row.append(None if value is None else Decimal(value))
        elif name in ("trace_id", "span_id", "name", "duration_ms"):
            row.append(span[name])
        else:
            value = span.get(name, _DEFAULTS[name])
            row.append(_DEFAULTS[name] if value is None and name != "batch_id" else value)
    # Whole UTC days, as the relational retention counts them (traces/retention.py): a
    # span goes at 00:00 UTC after its start day + the retention, with its trace summary.
    start = _aware(span["started_at"])
    expires = datetime(start.year, start.month, start.day, tzinfo=UTC) + retention + _ONE_DAY
    row.append(token)
    # DateTime holds seconds up to 2106; a retention beyond that keeps the span forever
    row.append(min(expires, _NEVER).replace(microsecond=0))
    return row


def _decode(names: Sequence[str], rows: Iterable[Sequence]) -> list[dict[str, Any]]:
    out = []
    for values in rows:
        item = dict(zip(names, values, strict=True))
        for name, value in item.items():
            # every time column is declared UTC; chDB's Native output drops the zone
            if isinstance(value, datetime) and value.tzinfo is None:
                item[name] = value.replace(tzinfo=UTC)
        for name in JSON_COLUMNS.intersection(item):
            item[name] = orjson.loads(item[name]) if item[name] else _JSON_DEFAULTS[name]
        out.append(item)
    return out


def parse_url(url: str) -> dict[str, Any]:
    """clickhouse://user:pass@host:8123/db (clickhouses:// for TLS), chdb:///path or
    chdb:// (in memory) → keyword arguments for clickhouse_connect.get_client, the
    database name and whether inserts are asynchronous (`?async_insert=0|1`; on by
    default for a server, off for chDB, see ClickHouseSpanStore.insert_spans)."""
    parsed = urlparse(url)
    options = parse_qs(parsed.query)
    unknown = sorted(set(options) - {"async_insert"})
    if unknown:
        raise ValueError(f"SPAN_STORE_URL: unknown option(s) {', '.join(unknown)}")
    flag = options.get("async_insert", [None])[-1]
    if flag not in (None, "0", "1"):
        raise ValueError("SPAN_STORE_URL: async_insert must be 0 or 1")
    async_insert = parsed.scheme != "chdb" if flag is None else flag == "1"
    database = unquote(parsed.path.lstrip("/")) if parsed.scheme != "chdb" else ""
    if parsed.scheme == "chdb":
        database = "agentops"
        kwargs: dict[str, Any] = {"interface": "chdb"}
        if parsed.path and parsed.path != "/":
            kwargs["path"] = parsed.path
    elif parsed.scheme in ("clickhouse", "clickhouses"):
        database = database or "agentops"
        secure = parsed.scheme == "clickhouses"
        kwargs = {
            "interface": "https" if secure else "http",
            "host": parsed.hostname or "localhost",
            "port": parsed.port or (8443 if secure else 8123),
            "username": unquote(parsed.username or "default"),
            "password": unquote(parsed.password or ""),
        }
    else:
        raise ValueError(f"SPAN_STORE_URL: unknown scheme {parsed.scheme!r}")
    if not _IDENTIFIER.match(database):
        raise ValueError(f"SPAN_STORE_URL: {database!r} is not a plain database name")
    return {"client": kwargs, "database": database, "async_insert": async_insert}


class ClickHouseSpanStore:
    """Spans in ClickHouse (or chDB, the same engine in process) through clickhouse-connect."""

    kind = "clickhouse"

    def __init__(self, url: str, *, client=None):
        import clickhouse_connect

        config = parse_url(url)
        self.url = url
        self.database = config["database"]
        self.async_insert = config["async_insert"]
        self.client = client or clickhouse_connect.get_client(**config["client"])
        self.table = f"`{self.database}`.`{TABLE}`"

    def describe(self) -> str:
        parsed = urlparse(self.url)
        where = parsed.path or "memory" if parsed.scheme == "chdb" else parsed.hostname
        return f"{parsed.scheme}://{where} database {self.database}"

    # -- schema ---------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the database and table if they are missing (idempotent)."""
        for statement in _ddl(self.database):
            self.client.command(statement)

    # -- writes ---------------------------------------------------------------------

    def insert_spans(
        self,
        project_id: int,
        spans: Iterable[Mapping[str, Any]],
        batch_token: str,
        *,
        retention_days: int,
    ) -> int:
        """Store one batch's spans (dicts keyed by traces.Span field names).

        Retrying with the same `batch_token` stores nothing more: the insert is one
        block (or the same sequence of blocks) with that deduplication token.
        """
        if not batch_token or len(batch_token) > MAX_TOKEN:
            raise ValueError(f"batch_token must be 1–{MAX_TOKEN} characters")
        retention = timedelta(days=retention_days)
        rows = [_row(project_id, span, batch_token, retention) for span in spans]
        if not rows:
            return 0
        self.client.insert(
            self.table,
            rows,
            column_names=_INSERT_COLUMNS,
            settings={
                "insert_deduplicate": 1,
                # the table remembers tokens across projects: scope them
                "insert_deduplication_token": f"{project_id}:{batch_token}",
                # one block per partition per insert, however large the batch
                "max_insert_block_size": 1_048_576,
                **(_ASYNC_INSERT if self.async_insert else {}),
            },
        )
        return len(rows)

    def discard_batch(self, project_id: int, batch_token: str) -> None:
        """Delete the copies a batch stored (a batch whose relational record did not
        commit), so that the exporter's retry stores the first surviving copies."""
        self.client.command(
            f"DELETE FROM {self.table}"
            " WHERE project_id = {p:UInt64} AND batch_token = {t:String}",
            parameters={"p": project_id, "t": batch_token},
        )

    def apply_retention(
        self, retention_days: Mapping[int, int], *, now: datetime, dry_run: bool = False
    ) -> list[tuple[int, str, int]]:
        """Bring the stored spans in line with each project's retention as it is now
        ({project id: days}). TTL deletes a span at the expiry it was stored with, from
        its project's retention then: spans already past a retention changed since are
        deleted here (a lightweight delete), and the others get the expiry of the new
        retention (a mutation of that column), so that TTL takes them when it should,
        not earlier nor later. Spans whose expiry is due are left to TTL. Idempotent:
        one grouped count over the projects' spans, then statements only where it found
        rows (physical rows, unmerged copies included). Returns [(project id, what,
        rows)], what would be done with dry_run; what is "spans" (deleted), "expiries"
        (moved) or "failed" (logged; the other projects go on; the next run retries)."""
        if not retention_days:
            return []
        ids = sorted(retention_days)
        today = now.astimezone(UTC).date()
        params = {
            "ids": ids,
            "days": [retention_days[i] for i in ids],
            "cutoffs": [
                datetime.combine(today - timedelta(days=retention_days[i]), time(), UTC)
                for i in ids
            ],
            "now": now.astimezone(UTC).replace(microsecond=0),
        }
        cut = (
            "transform(project_id, {ids:Array(UInt64)}, {cutoffs:Array(DateTime('UTC'))},"
            " toDateTime(0, 'UTC'))"
        )
        want = (
            "least(toDateTime(toDate(started_at, 'UTC'), 'UTC') + toIntervalDay("
            "transform(project_id, {ids:Array(UInt64)}, {days:Array(UInt32)}, toUInt32(0)) + 1),"
            f" toDateTime('{_NEVER:%Y-%m-%d %H:%M:%S}', 'UTC'))"
        )
        rows = self.client.query(
            f"SELECT project_id,"
            f" countIf(started_at < {cut} AND expires_at > {{now:DateTime('UTC')}}),"
            f" countIf(started_at >= {cut} AND expires_at != {want})"
            f" FROM {self.table} WHERE project_id IN {{ids:Array(UInt64)}}"
            " GROUP BY project_id ORDER BY project_id",
            parameters=params,
            settings=_READ_SETTINGS,
        ).result_rows
        out = []
        for project_id, past, short in rows:
            one = {**params, "p": project_id}
            done = []
            try:
                if past:
                    done.append((project_id, "spans", past))
                    if not dry_run:
                        self.client.command(
                            f"DELETE FROM {self.table} WHERE project_id = {{p:UInt64}}"
                            f" AND started_at < {cut}",
                            parameters=one,
                        )
                if short:
                    done.append((project_id, "expiries", short))
                    if not dry_run:
                        self.client.command(
                            f"ALTER TABLE {self.table} UPDATE expires_at = {want}"
                            f" WHERE project_id = {{p:UInt64}} AND started_at >= {cut}"
                            f" AND expires_at != {want}",
                            parameters=one,
                            settings={"mutations_sync": 1},
                        )
            except Exception as exc:
                from traces.dberrors import is_store_outage

                if is_store_outage(exc):
                    raise
                # One project's statement must not stop the others' (the next run retries).
                logger.exception("span store: retention of project %s failed", project_id)
                done.append((project_id, "failed", 0))
            out.extend(done)
        return out

    def delete_project(self, project_id: int) -> None:
        """Delete every span of a project (a lightweight delete: masked at once,
        dropped from disk by the next merges)."""
        self.client.command(
            f"DELETE FROM {self.table} WHERE project_id = {{p:UInt64}}",
            parameters={"p": project_id},
        )

    # -- reads ----------------------------------------------------------------------

    def _select(self, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        result = self.client.query(sql, parameters=parameters, settings=_READ_SETTINGS)
        return _decode(result.column_names, result.result_rows)

    @staticmethod
    def _columns(columns: Sequence[str] | None) -> str:
        names = list(columns or SPAN_COLUMNS)
        unknown = [c for c in names if c not in SPAN_COLUMNS and c not in STORE_COLUMNS]
        if unknown:
            raise ValueError(f"unknown span columns: {unknown}")
        return ", ".join(f"`{c}`" for c in names)

    def trace_spans(
        self,
        project_id: int,
        trace_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The spans of one trace in start order, one per span. With the trace's time
        range (from its relational summary) only those days of the key are read."""
        where = "project_id = {p:UInt64} AND trace_id = {t:String}"
        params: dict[str, Any] = {"p": project_id, "t": trace_id}
        if start is not None:
            where += " AND started_at >= {start:DateTime64(6, 'UTC')}"
            params["start"] = _aware(start)
        if end is not None:
            where += " AND started_at <= {end:DateTime64(6, 'UTC')}"
            params["end"] = _aware(end)
        return self._select(
            f"SELECT {self._columns(columns)} FROM {self.table} FINAL WHERE {where} "
            "ORDER BY started_at, span_id",
            params,
        )

    def batch_spans(
        self, project_id: int, batch_tokens: Sequence[str], columns: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """The spans whose FIRST stored copy belongs to one of these batches: folding
        each batch's answer once counts every span exactly once, whatever was re-sent."""
        if not batch_tokens:
            return []
        # The keys of these batches' copies first (bloom filter on batch_token), then
        # FINAL over exactly those keys, so the winner is decided among all copies.
        return self._select(
            f"SELECT {self._columns(columns)} FROM {self.table} FINAL "
            "WHERE (project_id, toDate(started_at), trace_id, span_id) IN ("
            f"  SELECT project_id, toDate(started_at), trace_id, span_id FROM {self.table}"
            "   WHERE project_id = {p:UInt64} AND batch_token IN {tokens:Array(String)})"
            " AND batch_token IN {tokens:Array(String)} "
            "ORDER BY started_at, span_id",
            {"p": project_id, "tokens": list(batch_tokens)},
        )

    def existing_keys(
        self,
        project_id: int,
        keys: Iterable[tuple[str, str]],
        start_min: datetime,
        start_max: datetime,
    ) -> set[tuple[str, str]]:
        """Which of these (trace_id, span_id) a batch about to be stored already has a
        copy of, among spans starting in [start_min, start_max] (the batch's range):
        the days of the sort key bound the read. Any copy counts, merged or not."""
        wanted = sorted(set(keys))
        found: set[tuple[str, str]] = set()
        # Bound values travel in the request's URL (limited to 1 MiB by default): a
        # request of 10,000 spans is asked in a few statements.
        for i in range(0, len(wanted), KEYS_PER_QUERY):
            part = wanted[i : i + KEYS_PER_QUERY]
            result = self.client.query(
                f"SELECT DISTINCT trace_id, span_id FROM {self.table}"
                " WHERE project_id = {p:UInt64}"
                "  AND started_at >= {lo:DateTime64(6, 'UTC')}"
                "  AND started_at <= {hi:DateTime64(6, 'UTC')}"
                "  AND trace_id IN {t:Array(String)}"
                "  AND (trace_id, span_id) IN {k:Array(Tuple(String, String))}",
                parameters={
                    "p": project_id,
                    "lo": _aware(start_min),
                    "hi": _aware(start_max),
                    "t": sorted({t for t, _ in part}),
                    "k": part,
                },
            )
            found.update((t, s) for t, s in result.result_rows)
        return found

    def project_spans(
        self,
        project_id: int,
        start: datetime,
        columns: Sequence[str] | None = None,
        chunk: int = 50_000,
    ) -> Iterator[list[dict[str, Any]]]:
        """A project's spans that start at or after `start`, one per span (FINAL), in
        lists of about `chunk`, streamed (a rollup rebuild reads its whole window)."""
        names = list(columns or SPAN_COLUMNS)
        sql = (
            f"SELECT {self._columns(names)} FROM {self.table} FINAL"
            " WHERE project_id = {p:UInt64} AND started_at >= {start:DateTime64(6, 'UTC')}"
        )
        params = {"p": project_id, "start": _aware(start)}
        buffer: list = []
        with self.client.query_row_block_stream(
            sql, parameters=params, settings=_READ_SETTINGS
        ) as stream:
            for block in stream:
                buffer.extend(block)
                if len(buffer) >= chunk:
                    yield _decode(names, buffer)
                    buffer = []
        if buffer:
            yield _decode(names, buffer)

    def cost_by(
        self,
        project_id: int,
        start: datetime,
        end: datetime,
        group: str = "model",
        bucket: str = "day",
        *,
        final: bool = True,
    ) -> list[dict[str, Any]]:
        """Cost, tokens and span count per time bucket (UTC) × `group` over [start, end).

        `final=False` skips the one-row-per-span step: cheaper, and wrong by the spans
        stored twice that no merge has folded yet (for measuring, not for budgets).
        """
        if group not in GROUPS:
            raise ValueError(f"group must be one of {GROUPS}")
        if bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {tuple(BUCKETS)}")
        source = f"{self.table} FINAL" if final else self.table
        return self._select(
            "SELECT toStartOfInterval(started_at, toIntervalSecond({b:UInt32})) AS bucket,"
            f" `{group}` AS key, sum(cost_usd) AS cost_usd, sum(input_tokens) AS input_tokens,"
            " sum(output_tokens) AS output_tokens, count() AS spans"
            f" FROM {source}"
            " WHERE project_id = {p:UInt64}"
            "  AND started_at >= {start:DateTime64(6, 'UTC')}"
            "  AND started_at < {end:DateTime64(6, 'UTC')}"
            " GROUP BY bucket, key ORDER BY bucket, key",
            {"p": project_id, "start": _aware(start), "end": _aware(end), "b": BUCKETS[bucket]},
        )

    # -- the general read (traces/spanstore/query.py) --------------------------------

    def _where(
        self,
        project_ids,
        *,
        trace_ids=None,
        span_ids=None,
        started=None,
        received=None,
        equals=None,
        nonempty=(),
        any_of=None,
        lacks_keys=(),
    ) -> tuple[list[str], dict[str, Any]]:
        where: list[str] = []
        params: dict[str, Any] = {}

        def bind(value: Any, kind: str) -> str:
            name = f"v{len(params)}"
            params[name] = value
            return f"{{{name}:{kind}}}"

        def equal(column: str, value: Any) -> str:
            kind = "Int64" if column == "kind" else "String"
            if isinstance(value, list | tuple | set | frozenset):
                return f"`{column}` IN {bind(sorted(value), f'Array({kind})')}"
            return f"`{column}` = {bind(value, kind)}"

        if isinstance(project_ids, int):
            where.append(f"project_id = {bind(project_ids, 'UInt64')}")
        elif project_ids is not None:
            where.append(f"project_id IN {bind(sorted(set(project_ids)), 'Array(UInt64)')}")
        if trace_ids is not None:
            where.append(f"trace_id IN {bind(sorted(set(trace_ids)), 'Array(String)')}")
        if span_ids is not None:
            where.append(f"span_id IN {bind(sorted(set(span_ids)), 'Array(String)')}")
        for column, bounds in (("started_at", started), ("received_at", received)):
            lo, hi = bounds or (None, None)
            if lo is not None:
                where.append(f"`{column}` >= {bind(_aware(lo), _TIME)}")
            if hi is not None:
                where.append(f"`{column}` < {bind(_aware(hi), _TIME)}")
        for column, value in (equals or {}).items():
            where.append(equal(column, value))
        for column in nonempty:
            where.append(f"`{column}` != ''")
        if any_of is not None:
            clauses = []
            for clause in any_of:
                parts = [equal(c, v) for c, v in (clause.get("equals") or {}).items()]
                if clause.get("has_key"):
                    parts.append(f"JSONHas(attributes, {bind(clause['has_key'], 'String')})")
                clauses.append("(" + " AND ".join(parts) + ")")
            where.append("(" + " OR ".join(clauses or ["0"]) + ")")
        for key in lacks_keys:
            where.append(f"NOT JSONHas(attributes, {bind(key, 'String')})")
        return where or ["1"], params

    def select_spans(
        self,
        project_ids: int | Sequence[int] | None,
        *,
        columns: Sequence[str],
        trace_ids: Iterable[Any] | None = None,
        span_ids: Sequence[str] | None = None,
        started: tuple[datetime | None, datetime | None] | None = None,
        received: tuple[datetime | None, datetime | None] | None = None,
        equals: Mapping[str, Any] | None = None,
        nonempty: Sequence[str] = (),
        any_of: Sequence[Mapping[str, Any]] | None = None,
        lacks_keys: Sequence[str] = (),
        keys: Mapping[str, str] | None = None,
        absent_from: Any = None,
        order: Sequence[str] | str = ("started_at", "span_id"),
        after: Any = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The spans that match (query.py), one per span (FINAL), as dicts of `columns`.

        `trace_ids` may be a relational QuerySet (its trace ids are read first) and is
        asked in parts of KEYS_PER_QUERY. `absent_from` (a relational QuerySet) is
        applied to the candidates read here; with the "arrival" order and a limit, reads
        go on past the cursor until `limit` rows remain or the spans run out."""
        spec = query.check_select(
            columns=columns,
            equals=equals,
            nonempty=nonempty,
            any_of=any_of,
            lacks_keys=lacks_keys,
            order=order,
            after=after,
            keys=keys,
        )
        filters = {
            "started": started,
            "received": received,
            "equals": equals,
            "nonempty": nonempty,
            "any_of": any_of,
            "lacks_keys": lacks_keys,
            "span_ids": span_ids,
        }
        names = list(spec.columns)
        wanted = (*_KEY, *_sort(spec))
        if absent_from is not None and _span_start_field(absent_from.model):
            wanted = (*wanted, "started_at")  # such rows are matched on the start too
        extra = [c for c in dict.fromkeys(wanted) if c not in names]
        if trace_ids is None:
            parts: list[list[str] | None] = [None]
        else:
            ids = sorted({r["trace_id"] if isinstance(r, dict) else r for r in trace_ids})
            parts = [ids[i : i + KEYS_PER_QUERY] for i in range(0, len(ids), KEYS_PER_QUERY)]
        rows: list[dict[str, Any]] = []
        for part in parts:
            rows.extend(
                self._select_part(
                    project_ids, part, filters, names + extra, spec, absent_from, after, limit, keys
                )
            )
        if len(parts) > 1:
            sort = _sort(spec)
            rows.sort(key=lambda r: tuple(r[c] for c in sort))
            rows = rows[:limit] if limit is not None else rows
        for row in rows:
            if spec.arrival:
                row[query.CURSOR] = tuple(row[c] for c in _ARRIVAL)
            for name in extra:
                del row[name]
        return rows

    def _select_part(
        self, project_ids, trace_ids, filters, names, spec, absent_from, after, limit, keys
    ):
        where, params = self._where(project_ids, trace_ids=trace_ids, **filters)
        selected = self._columns(names)
        for i, (alias, key) in enumerate((keys or {}).items()):
            # the value as text, as PostgreSQL's ->> gives it: a string unquoted, any
            # other value as its JSON, NULL when absent or null
            params[f"k{i}"] = key
            k = f"{{k{i}:String}}"
            kind = f"JSONType(attributes, {k})"
            selected += (
                f", multiIf({kind} = 'String', JSONExtractString(attributes, {k}),"
                f" {kind} = 'Null', NULL, JSONExtractRaw(attributes, {k})) AS `{alias}`"
            )
        sort = _sort(spec)
        tail = (f" ORDER BY {', '.join(f'`{c}`' for c in sort)}" if sort else "") + (
            " LIMIT {limit:UInt64}" if limit is not None else ""
        )
        if limit is not None:
            params["limit"] = limit
        head = f"SELECT {selected} FROM {self.table} FINAL WHERE {' AND '.join(where)}"
        # keyset paging in the arrival order, past the cursor
        paged = (
            " AND (received_at, project_id, trace_id, span_id) >"
            " ({a0:DateTime64(6, 'UTC')}, {a1:UInt64}, {a2:String}, {a3:String})"
        )

        def page(cursor) -> list[dict[str, Any]]:
            if cursor is None:
                return self._select(head + tail, params)
            received, project, trace, span_id = cursor
            more = {"a0": _aware(received), "a1": project, "a2": trace, "a3": span_id}
            return self._select(head + paged + tail, {**params, **more})

        cursor = after if spec.arrival else None
        if absent_from is None:
            return page(cursor)
        kept: list[dict[str, Any]] = []
        while True:
            rows = page(cursor)
            kept.extend(_absent(rows, absent_from))
            if not spec.arrival or limit is None or len(rows) < limit or len(kept) >= limit:
                return kept[:limit] if limit is not None else kept
            # this page was mostly recorded already: read on past it
            cursor = tuple(rows[-1][c] for c in _ARRIVAL)

    def sum_spans(
        self,
        project_id: int,
        *,
        group: str,
        measure: str,
        started: tuple[datetime, datetime],
        equals: Mapping[str, Any] | None = None,
        trace_ids: Iterable[Any] | None = None,
        limit: int | None = None,
    ) -> list[tuple[Any, Any]]:
        """[(group value, amount)] largest first, one row per span (FINAL); `measure` is
        "cost_usd" or "tokens" (input + output). The started range bounds the key's days."""
        query.check_sum(group, measure, equals)
        amount = "sum(cost_usd)" if measure == "cost_usd" else "sum(input_tokens + output_tokens)"
        if trace_ids is None:
            parts: list[list[str] | None] = [None]
        else:
            ids = sorted({r["trace_id"] if isinstance(r, dict) else r for r in trace_ids})
            parts = [ids[i : i + KEYS_PER_QUERY] for i in range(0, len(ids), KEYS_PER_QUERY)]
        totals: dict[Any, Any] = {}
        for part in parts:
            where, params = self._where(project_id, trace_ids=part, started=started, equals=equals)
            one = len(parts) == 1 and limit is not None
            result = self.client.query(
                f"SELECT `{group}` AS key, {amount} AS amount FROM {self.table} FINAL"
                f" WHERE {' AND '.join(where)} GROUP BY key ORDER BY amount DESC, key"
                + (" LIMIT {limit:UInt64}" if one else ""),
                parameters={**params, **({"limit": limit} if one else {})},
                settings=_READ_SETTINGS,
            )
            for key, value in result.result_rows:
                totals[key] = value if key not in totals else totals[key] + value
        ranked = sorted(totals.items(), key=lambda kv: (-(kv[1] or 0), kv[0]))
        return ranked[:limit] if limit is not None else ranked

    def count_spans(
        self,
        project_id: int,
        *,
        group: str,
        started: tuple[datetime, datetime],
        equals: Mapping[str, Any] | None = None,
        nonempty: Sequence[str] = (),
        counted: str | None = None,
    ) -> dict[Any, tuple[int, int]]:
        """{group value: (spans, of which `counted` is not empty)}, one row per span."""
        query.check_count(group, equals, nonempty, counted)
        where, params = self._where(project_id, started=started, equals=equals, nonempty=nonempty)
        with_value = f"countIf(`{counted}` != '')" if counted else "0"
        result = self.client.query(
            f"SELECT `{group}` AS key, count() AS n, {with_value} AS v FROM {self.table} FINAL"
            f" WHERE {' AND '.join(where)} GROUP BY key ORDER BY key",
            parameters=params,
            settings=_READ_SETTINGS,
        )
        return {key: (int(n), int(v)) for key, n, v in result.result_rows}

    def count(self, project_id: int | None = None, *, final: bool = True) -> int:
        source = f"{self.table} FINAL" if final else self.table
        if project_id is None:
            return int(
                self.client.command(f"SELECT count() FROM {source}", settings=_READ_SETTINGS)
            )
        return int(
            self.client.command(
                f"SELECT count() FROM {source} WHERE project_id = {{p:UInt64}}",
                parameters={"p": project_id},
                settings=_READ_SETTINGS,
            )
        )

    def table_stats(self) -> dict[str, int]:
        """Rows (copies, before merges), parts and bytes of the active parts."""
        result = self.client.query(
            "SELECT sum(rows), count(), sum(bytes_on_disk), sum(data_uncompressed_bytes)"
            " FROM system.parts WHERE active AND database = {db:String} AND table = {t:String}",
            parameters={"db": self.database, "t": TABLE},
        )
        rows, parts, on_disk, uncompressed = result.result_rows[0]
        return {
            "rows": int(rows or 0),
            "parts": int(parts or 0),
            "bytes_on_disk": int(on_disk or 0),
            "bytes_uncompressed": int(uncompressed or 0),
        }

    def bytes_per_span(self) -> float:
        stats = self.table_stats()
        return stats["bytes_on_disk"] / stats["rows"] if stats["rows"] else 0.0

    def optimize(self) -> None:
        """Merge every partition down to one part (tests and benchmarks only)."""
        self.client.command(f"OPTIMIZE TABLE {self.table} FINAL")


def _sort(spec: query.Select) -> tuple[str, ...]:
    """The columns of select_spans' order: "arrival" is received_at, then the key."""
    if spec.arrival:
        return _ARRIVAL
    if spec.order and spec.order[-1] == query.ARRIVAL:
        head = spec.order[:-1]
        return (*head, *(c for c in _ARRIVAL if c not in head))
    return spec.order


def _span_start_field(model) -> str | None:
    # imported here: this module stays importable without Django's apps (benches)
    from traces.retention import span_start_field

    return span_start_field(model)


def _absent(rows: list[dict[str, Any]], recorded: Any) -> list[dict[str, Any]]:
    """The rows that have no row in `recorded` (a relational QuerySet with project_id,
    trace_id and span_id): one look-up of the candidates' keys."""
    if not rows:
        return rows
    recorded = recorded.filter(
        project_id__in={r["project_id"] for r in rows},
        trace_id__in={r["trace_id"] for r in rows},
        span_id__in={r["span_id"] for r in rows},
    )
    start = _span_start_field(recorded.model)
    if start:
        # One row per span, keyed and partitioned by its start: the candidates' days only.
        starts = [r["started_at"] for r in rows]
        recorded = recorded.filter(**{f"{start}__gte": min(starts), f"{start}__lte": max(starts)})
        found = set(recorded.values_list("project_id", "trace_id", "span_id", start))
        return [
            r
            for r in rows
            if (r["project_id"], r["trace_id"], r["span_id"], r["started_at"]) not in found
        ]
    found = set(recorded.values_list("project_id", "trace_id", "span_id"))
    return [r for r in rows if (r["project_id"], r["trace_id"], r["span_id"]) not in found]
