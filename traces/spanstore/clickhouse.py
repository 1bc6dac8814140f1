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

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlparse

import orjson

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

# Copies of a span share its start, hence its partition: FINAL need not merge across them.
_READ_SETTINGS = {"do_not_merge_across_partitions_select_final": 1}

_ONE_DAY = timedelta(days=1)
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
    INDEX batch_token_bloom batch_token TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(started_at)
ORDER BY (project_id, toDate(started_at), trace_id, span_id)
TTL expires_at DELETE
SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW},
    index_granularity = 8192""",
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
    row.append(min(expires, datetime(2105, 12, 31, tzinfo=UTC)).replace(microsecond=0))
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
    chdb:// (in memory) → keyword arguments for clickhouse_connect.get_client and the
    database name."""
    parsed = urlparse(url)
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
    return {"client": kwargs, "database": database}


class ClickHouseSpanStore:
    """Spans in ClickHouse (or chDB, the same engine in process) through clickhouse-connect."""

    kind = "clickhouse"

    def __init__(self, url: str, *, client=None):
        import clickhouse_connect

        config = parse_url(url)
        self.url = url
        self.database = config["database"]
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
