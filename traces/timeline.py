"""Reads behind the trace timeline: the span tree, waterfall rows, storyline, span details.

The timeline page must stay fast for traces of thousands of spans, so it is built
from two queries whatever the trace size:

1. the waterfall columns of every span (`WATERFALL_FIELDS`, no JSON blobs; for a big
   trace `SKELETON_FIELDS`, read into plain lists rather than an object per span);
2. the attributes and events of a *bounded* set of spans the storyline quotes
   (root, first and last model calls, the steps it shows).

A span's full attributes, events and messages are read only when it is selected
(`span_detail`, one span at a time).

Spans are read from `traces_span` (QuerySets on `span_list_for_trace`, by primary key
once the trace's index knows them) or, when SPAN_STORE_URL names ClickHouse, from the
span store: each read branches once (`_clickhouse()`) and answers the same tuples. A
ClickHouse row has no primary key; the few spans a read wants are found by their start
times (the sort key's days) and kept by span id (one row per span there, after FINAL).
"""

from __future__ import annotations

import json
import math
import threading
from bisect import bisect_left, bisect_right
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import accumulate, compress, filterfalse, repeat
from operator import add, eq, itemgetter, lt, mul, sub, truediv
from typing import Any

from django.conf import settings
from django.db import connection, connections
from django.db.models import (
    BigIntegerField,
    Count,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    Func,
    Max,
    Min,
    QuerySet,
    Sum,
    Value,
)

from traces import display
from traces.annotations import SpanBadge, span_badges
from traces.models import STEP_ROLES, CostSource, Project, Span, SpanStatus, Step, StepRole, Trace
from traces.selectors import SPAN_READ_MARGIN, span_list_for_trace
from traces.spanstore import span_store
from traces.timeline_messages import Messages, extract_messages

# Columns the waterfall and the storyline's structure need; nothing unbounded.
WATERFALL_FIELDS = (
    "span_id",
    "parent_span_id",
    "name",
    "step",
    "role",
    "status",
    "start",  # started_at, or its offset from the trace start (see _start_column)
    "duration_ms",
    "model",
    "tool_name",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "cost_source",
    "error_type",
)

# Flags of a waterfall row, packed in one integer to keep the page payload small.
FLAG_ORPHAN = 1
FLAG_ERROR = 2
FLAG_UNPRICED = 4

# Longest text a page shows for one value; the rest is counted, not sent.
MAX_TEXT = 20_000
PREVIEW = 240

# Plain strings for the hot loops: an enum attribute lookup is slow next to a str compare,
# and these run once per span per pass over a trace of thousands.
LLM = str(Step.LLM.value)
INTENT, PLAN, FINAL = (str(r.value) for r in (StepRole.INTENT, StepRole.PLAN, StepRole.FINAL))
TOOL, RESULT = str(StepRole.TOOL.value), str(StepRole.RESULT.value)
# Roles shown as steps between the intent and the final state.
_STEP_KINDS = STEP_ROLES - {INTENT, FINAL}
_INTENT_FINAL = frozenset({INTENT, FINAL})
_GATE_ROLES = frozenset(str(r.value) for r in (StepRole.POLICY, StepRole.ESCALATION))
ERROR = str(SpanStatus.ERROR.value)
UNPRICED = str(CostSource.UNPRICED.value)
_TOOLISH = frozenset({Step.TOOL.value, Step.RETRIEVAL.value})
_GATES = frozenset({Step.POLICY.value, Step.ESCALATION.value})
TOOL_FINISH_REASONS = frozenset({"tool_calls", "tool_call", "tool_use", "function_call"})
STOP_FINISH_REASONS = frozenset(
    {"stop", "end_turn", "end", "complete", "completed", "stop_sequence", "eos"}
)


@dataclass(slots=True)
class Node:
    """One span as the waterfall and storyline see it."""

    span_id: str
    parent_span_id: str = ""
    name: str = ""
    step: str = Step.OTHER
    role: str = ""
    status: str = SpanStatus.UNSET
    start_ms: float = 0.0  # offset from the trace's first span
    duration_ms: float = 0.0
    model: str = ""
    tool_name: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal | None = None
    cost_source: str = ""
    error_type: str = ""
    # Set by span_tree:
    depth: int = 0
    orphan: bool = False  # its parent never arrived
    parent_index: int = -1  # position of the parent in span_tree's output
    size: int = 1  # rows in its subtree, itself included

    @property
    def is_error(self) -> bool:
        return self.status == ERROR

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


# ------------------------------------------------------------------ the span store

# A span's fields as the span store answers them (a traces.Span without its relational id).
# span_id first, as _ch_spans_of reads it.
CH_SPAN_FIELDS = (
    "span_id",
    *(f.attname for f in Span._meta.concrete_fields if f.attname not in ("id", "span_id")),
)
# A ClickHouse read of a few spans by start time is cut into ranges of their starts
# where the spans between two of them are more than the read could skip cheaply (a query
# costs about as much as reading this many spans' columns: fewer when they hold JSON),
# and into at most CH_READ_RANGES ranges, cut at the widest gaps.
CH_READ_RANGES = 4
CH_SPARE_ROWS = 2000
CH_SPARE_TEXTS = 200
_ONE_MS = timedelta(milliseconds=1)


def _clickhouse():
    """The ClickHouse span store when SPAN_STORE_URL names one; None for traces_span,
    whose reads stay the QuerySets below (the setting is checked first: the relational
    path builds no store object)."""
    if not settings.SPAN_STORE_URL:
        return None
    store = span_store()
    return store if store.kind == "clickhouse" else None


def _ch_trace_rows(
    store,
    trace: Trace,
    fields: tuple[str, ...],
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[tuple]:
    """`fields` of the trace's spans in ClickHouse (one row per span, in start order)
    as tuples; between start and end, by default the summary's bounds widened by
    SPAN_READ_MARGIN as span_list_for_trace reads them (the days of the sort key)."""
    rows = store.trace_spans(
        trace.project_id,
        trace.trace_id,
        trace.started_at - SPAN_READ_MARGIN if start is None else start,
        trace.ended_at + SPAN_READ_MARGIN if end is None else end,
        columns=list(fields),
    )
    get = itemgetter(*fields)
    return list(map(get, rows))


@dataclass(slots=True)
class _ByStart:
    """Where a few spans of a trace are in ClickHouse: when its first span started, their
    offsets from it, and (when known) every span's offset in start order, to count the
    spans a range would read for nothing."""

    t0: datetime
    wanted_ms: list[float]
    all_ms: list[float] | None = None


def _by_start(
    t0: datetime | None, wanted_ms: list[float], all_ms: list[float] | None = None
) -> _ByStart | None:
    return None if t0 is None or not wanted_ms else _ByStart(t0, wanted_ms, all_ms)


def _ch_ranges(by: _ByStart, spare: int) -> list[tuple[datetime, datetime]]:
    """The ranges of start times a read of the wanted spans asks for (see CH_READ_RANGES),
    each a millisecond wider each way than the float offsets could be off."""
    w = sorted(set(by.wanted_ms))
    if by.all_ms is None:  # cut at the longest pauses
        cost = [w[k] - w[k - 1] for k in range(1, len(w))]
    else:  # cut where more than `spare` spans started in between
        all_ms = by.all_ms
        cost = [
            bisect_left(all_ms, w[k] - 1) - bisect_right(all_ms, w[k - 1] + 1)
            for k in range(1, len(w))
        ]
    gaps = [k for k in range(1, len(w)) if by.all_ms is None or cost[k - 1] > spare]
    gaps.sort(key=lambda k: cost[k - 1], reverse=True)
    out, lo, t0 = [], 0, by.t0
    for k in [*sorted(gaps[: CH_READ_RANGES - 1]), len(w)]:
        out.append(
            (t0 + timedelta(milliseconds=w[lo] - 1), t0 + timedelta(milliseconds=w[k - 1] + 1))
        )
        lo = k
    return out


def _ch_spans_of(
    store,
    trace: Trace,
    span_ids: list[str],
    by: _ByStart | None,
    fields: tuple[str, ...],
    spare: int = CH_SPARE_ROWS,
) -> list[tuple]:
    """`fields` (span_id first) of these spans of the trace in ClickHouse, whose rows
    have no primary key: read by their start times when known (`by`, see _ch_ranges),
    else over the trace's bounds, and kept by span id (once each)."""
    wanted = set(span_ids)
    found: dict[str, tuple] = {}
    ranges = [(None, None)] if by is None else _ch_ranges(by, spare)
    for lo, hi in ranges:
        for row in _ch_trace_rows(store, trace, fields, lo, hi):
            if row[0] in wanted:
                found.setdefault(row[0], row)
    return list(found.values())


# ------------------------------------------------------------------ loading


def _start_column(trace: Trace):
    """A span's start as the database returns it fastest.

    psycopg parses a timestamptz in ~8 µs, a third of a 2,000-span page; an interval
    from the trace start costs a tenth of that. SQLite computes intervals in a Python
    function, slower than reading its own timestamps, so it returns started_at.
    Either way span_nodes_load subtracts the smallest value.
    """
    if connection.vendor == "postgresql":
        return ExpressionWrapper(
            F("started_at") - Value(trace.started_at, output_field=DateTimeField()),
            output_field=DurationField(),
        )
    return F("started_at")


def span_nodes_load(*, trace: Trace) -> list[Node]:
    """Every span of the trace as a Node, in start order, timed from the first span."""
    return _nodes_load(trace=trace)[0]


_WATERFALL_CH = tuple("started_at" if f == "start" else f for f in WATERFALL_FIELDS)


def _nodes_load(*, trace: Trace) -> tuple[list[Node], datetime | None]:
    """span_nodes_load, and when the first span started if read from ClickHouse."""
    store = _clickhouse()
    if store is not None:
        rows = _ch_trace_rows(store, trace, _WATERFALL_CH)
    else:
        rows = list(
            span_list_for_trace(trace=trace)
            .annotate(start=_start_column(trace))
            .values_list(*WATERFALL_FIELDS)
        )
    if not rows:
        return [], None
    t0: datetime | timedelta = min(r[6] for r in rows)
    nodes = []
    for (
        span_id,
        parent_span_id,
        name,
        step,
        role,
        status,
        start,
        duration_ms,
        model,
        tool_name,
        input_tokens,
        output_tokens,
        cost_usd,
        cost_source,
        error_type,
    ) in rows:
        nodes.append(
            Node(
                span_id=span_id,
                parent_span_id=parent_span_id,
                name=name,
                step=step,
                role=role,
                status=status,
                start_ms=(start - t0).total_seconds() * 1000,
                duration_ms=duration_ms,
                model=model,
                tool_name=tool_name,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=cost_usd,
                cost_source=cost_source,
                error_type=error_type,
            )
        )
    return nodes, t0 if store is not None else None


@dataclass(slots=True)
class SpanColumns:
    """Spans as parallel lists (one per column) in start order, start_ms then span_id.

    A big trace is read into these rather than into a Node per span: the tree and the
    storyline walk plain lists, and a Node is made only for the few spans a beat shows.
    """

    span_id: list[str]
    parent_span_id: list[str]
    name: list[str]
    step: list[str]
    role: list[str]
    status: list[str]
    start_ms: list[float]
    duration_ms: list[float]
    model: list[str]
    tool_name: list[str]
    error_type: list[str]
    pk: list[int] | None = None  # primary keys, when read from the database
    nodes: list[Node] | None = None  # the Nodes these were taken from, if any
    t0: datetime | None = None  # when the first span started, when read from the database

    def __len__(self) -> int:
        return len(self.span_id)

    def node(self, i: int) -> Node:
        if self.nodes is not None:
            return self.nodes[i]
        return Node(
            span_id=self.span_id[i],
            parent_span_id=self.parent_span_id[i],
            name=self.name[i],
            step=self.step[i],
            role=self.role[i],
            status=self.status[i],
            start_ms=self.start_ms[i],
            duration_ms=self.duration_ms[i],
            model=self.model[i],
            tool_name=self.tool_name[i],
            error_type=self.error_type[i],
        )

    @classmethod
    def of_nodes(cls, nodes: list[Node]) -> SpanColumns:
        ordered = sorted(nodes, key=lambda n: (n.start_ms, n.span_id))
        return cls(
            span_id=[n.span_id for n in ordered],
            parent_span_id=[n.parent_span_id for n in ordered],
            name=[n.name for n in ordered],
            step=[n.step for n in ordered],
            role=[n.role for n in ordered],
            status=[n.status for n in ordered],
            start_ms=[n.start_ms for n in ordered],
            duration_ms=[n.duration_ms for n in ordered],
            model=[n.model for n in ordered],
            tool_name=[n.tool_name for n in ordered],
            error_type=[n.error_type for n in ordered],
            nodes=ordered,
        )


# Columns a big trace's index and storyline read of every span: no tokens or costs
# (Decimal parsing is a good part of the cost of a big trace), no JSON.
SKELETON_FIELDS = (
    "pk",
    "span_id",
    "parent_span_id",
    "name",
    "step",
    "role",
    "status",
    "duration_ms",
    "model",
    "tool_name",
    "error_type",
    "start",  # an annotation: last, as Django selects it (see _values_rows)
)
_SPAN_ID = SKELETON_FIELDS.index("span_id")
_START = SKELETON_FIELDS.index("start")
# The same from ClickHouse, without the primary key (its rows have none).
_SKELETON_CH = tuple("started_at" if f == "start" else f for f in SKELETON_FIELDS[1:])


class _Micros(Func):
    """started_at minus the trace's start, in whole microseconds (PostgreSQL)."""

    template = "(EXTRACT(EPOCH FROM (%(expressions)s)) * 1000000)::bigint"
    arg_joiner = " - "
    output_field = BigIntegerField()

    def get_db_converters(self, connection):
        # psycopg returns an int already; a converter would make Django copy every row.
        return []


def _skeleton_start(trace: Trace):
    """A span's start as the database returns it fastest for the skeleton: on PostgreSQL
    an integer of microseconds from the trace start (psycopg parses an integer in a
    fraction of the time of an interval, itself a fraction of a timestamptz's); on SQLite
    started_at (see _start_column)."""
    if connection.vendor == "postgresql":
        return _Micros(F("started_at"), Value(trace.started_at, output_field=DateTimeField()))
    return F("started_at")


def _ms_from_micros(micros: list[int]) -> list[float]:
    """Offsets from the smallest, in milliseconds, computed as timedelta.total_seconds()
    * 1000 computes them (the same floats as the other backends)."""
    t0 = micros[0] if micros else 0
    # (u - t0) / 1_000_000 * 1000 for each, in C
    seconds = map(truediv, map(sub, micros, repeat(t0)), repeat(1_000_000))
    return list(map(mul, seconds, repeat(1000)))


def _values_rows(qs: QuerySet, fields: tuple[str, ...]) -> list[tuple]:
    """The rows of qs.values_list(*fields). On PostgreSQL straight from the cursor when
    its columns come in the order asked (annotations last) and no converter applies to
    them, sparing Django's work per row; elsewhere (SQLite converts dates) through Django.
    """
    qs = qs.values_list(*fields)
    query = qs.query
    db = connections[qs.db]
    if (
        db.vendor != "postgresql"
        or query.extra_select
        or fields != (*query.values_select, *query.annotation_select)
    ):
        return list(qs)
    compiler = query.get_compiler(using=qs.db)
    sql, params = compiler.as_sql()
    if any(
        expr.get_db_converters(db) or db.ops.get_db_converters(expr)
        for expr, _, _ in compiler.select
    ):
        return list(qs)
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _same_objects(values: list[str]) -> list[str]:
    """The list with equal strings made one object: a column of a few distinct values
    (step, role, status) read from the database holds a string object per span, and
    every later pass would compare them byte by byte, each a cache miss."""
    one: dict[str, str] = {}
    return list(map(one.setdefault, values, values))


def _columns(rows: list[tuple], width: int, chunk: int = 500) -> list[list]:
    """The rows as `width` lists, one per column. zip(*rows) a chunk at a time: over all
    the rows at once it would hold an iterator per row, thousands of objects that live
    long enough for the garbage collector to promote them (and soon run a full
    collection, tens of milliseconds in a process the size of the console's)."""
    out: list[list] = [[] for _ in range(width)]
    for at in range(0, len(rows), chunk):
        for column, part in zip(out, zip(*rows[at : at + chunk], strict=True), strict=True):
            column.extend(part)
    return out


def span_columns_load(*, trace: Trace) -> SpanColumns:
    """Every span of the trace as SpanColumns, from one query of SKELETON_FIELDS.

    Sorted here rather than by the database: Python compares span ids as the tree does,
    and sorts 20,000 tuples faster than PostgreSQL sorts them by a collated text column.
    Two stable sorts (span id, then start) cost half one sort by a (start, span id) key.
    """
    store = _clickhouse()
    if store is not None:  # no primary keys: the rows' are None, and so the columns'
        rows = [(None, *r) for r in _ch_trace_rows(store, trace, _SKELETON_CH)]
    else:
        rows = _values_rows(
            span_list_for_trace(trace=trace).order_by().annotate(start=_skeleton_start(trace)),
            SKELETON_FIELDS,
        )
    if not rows:
        return SpanColumns(*([] for _ in range(11)), pk=[])
    rows.sort(key=itemgetter(_SPAN_ID))
    rows.sort(key=itemgetter(_START))
    pk, span_id, parent, name, step, role, status, duration, model, tool, error, start = _columns(
        rows, len(SKELETON_FIELDS)
    )
    if isinstance(start[0], int):  # microseconds from the trace's start
        start_ms = _ms_from_micros(start)
        t0 = trace.started_at + timedelta(microseconds=start[0])
    else:
        t0 = start[0]
        start_ms = [(s - t0).total_seconds() * 1000 for s in start]
    return SpanColumns(
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        step=_same_objects(step),
        role=_same_objects(role),
        status=_same_objects(status),
        start_ms=start_ms,
        duration_ms=duration,
        model=model,
        tool_name=tool,
        error_type=error,
        pk=pk if store is None else None,
        t0=t0,
    )


def _start_range(t0: datetime | None, start_ms: list[float]) -> tuple[datetime, datetime] | None:
    """Bounds of the start times of spans starting start_ms after t0, a millisecond wider
    each way than the float offsets could be off."""
    if t0 is None or not start_ms:
        return None
    return (
        t0 + timedelta(milliseconds=min(start_ms) - 1),
        t0 + timedelta(milliseconds=max(start_ms) + 1),
    )


def _spans_by_pk(
    *,
    trace: Trace,
    pks: list[int],
    fields: tuple[str, ...],
    started: tuple[datetime, datetime] | None = None,
) -> list[tuple]:
    """`fields` of the spans with these primary keys that belong to the trace.

    By primary key: the query stays an index lookup whatever the planner guesses of the
    spans of one trace (on a table not yet analyzed it scans the whole trace for a list
    of span ids). The keys come from the trace's own spans; rows of another trace (a key
    reused after a purge) are dropped all the same. `started`, the bounds of the spans'
    start times (_start_range), keeps it an index lookup on a span table partitioned by
    start, whose primary key holds the start too: it picks the partitions, and without it
    a planner with no statistics guesses a list of keys matches most of the table.
    """
    if not pks:
        return []
    qs = Span.objects.filter(pk__in=pks)
    if started is not None:
        qs = qs.filter(started_at__range=started)
    rows = qs.values_list("project_id", "trace_id", *fields)
    project_id, trace_id = trace.project_id, trace.trace_id
    return [r[2:] for r in rows if r[0] == project_id and r[1] == trace_id]


@dataclass(slots=True)
class SpanText:
    """What the storyline quotes from one span."""

    messages: Messages
    tool_arguments: str = ""
    tool_result: str = ""
    status_message: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)


_TEXT_FIELDS = (
    "span_id",
    "attributes",
    "events",
    "tool_arguments",
    "tool_result",
    "status_message",
)


def span_texts_load(
    *,
    trace: Trace,
    span_ids: list[str],
    pks: list[int] | None = None,
    started: tuple[datetime, datetime] | None = None,
    by_start: _ByStart | None = None,
) -> dict[str, SpanText]:
    """Messages and tool payloads of a few spans, in one query (by primary key when
    `pks`, the spans' keys, is given, with `started` the bounds of their start times;
    from ClickHouse by their start times when `by_start` tells them)."""
    if not span_ids:
        return {}
    if pks is not None:
        rows = _spans_by_pk(trace=trace, pks=pks, fields=_TEXT_FIELDS, started=started)
    elif (store := _clickhouse()) is not None:
        rows = _ch_spans_of(store, trace, span_ids, by_start, _TEXT_FIELDS, CH_SPARE_TEXTS)
    else:
        qs = span_list_for_trace(trace=trace).filter(span_id__in=span_ids)
        rows = list(qs.values_list(*_TEXT_FIELDS))
    out = {}
    for span_id, attributes, events, args, result, status_message in rows:
        attributes = attributes if isinstance(attributes, dict) else {}
        out[span_id] = SpanText(
            messages=extract_messages(attributes, events if isinstance(events, list) else []),
            tool_arguments=args,
            tool_result=result,
            status_message=status_message,
            attributes={k: v for k, v in attributes.items() if k.startswith("agentops.")},
        )
    return out


# ------------------------------------------------------------------ tree


@dataclass(slots=True)
class TreeOrder:
    """The display order of spans given in start order: rows[k] is the position of the
    k-th shown span in the input; depth, parent (a row) and size are per row, orphan per
    input position."""

    rows: list[int]
    depth: list[int]
    parent: list[int]
    size: list[int]
    orphan: list[bool]


def tree_order(span_ids: list[str], parent_span_ids: list[str]) -> TreeOrder:
    """Each span followed by its subtree, children by start time (the input's order), so
    a subtree is rows[i : i + size].

    Orphans, spans whose parent never arrived, are shown at the top level. A parent
    cycle (bad data) is broken the same way, so every span is shown once.
    """
    n = len(span_ids)
    position = dict(zip(span_ids, range(n), strict=True))
    if len(position) == n and "" not in position:
        order = _tree_order_unique(span_ids, parent_span_ids, position)
        if order is not None:
            return order
    known = set(span_ids)
    children: dict[str, list[int]] = {}
    top: list[int] = []
    orphan = [False] * n
    for i, (span_id, p) in enumerate(zip(span_ids, parent_span_ids, strict=True)):
        if p and p != span_id and p in known:
            kids = children.get(p)
            if kids is None:
                children[p] = [i]
            else:
                kids.append(i)
        else:
            if p:
                orphan[i] = True
            top.append(i)

    if len(known) == n:
        rows, depth, parent = _walk_unique(span_ids, children, top, orphan)
    else:
        rows, depth, parent = _walk(span_ids, children, top, orphan)
    return TreeOrder(rows=rows, depth=depth, parent=parent, size=_sizes(parent), orphan=orphan)


def _sizes(parent: list[int]) -> list[int]:
    """Rows in each row's subtree, itself included, from each row's parent row (shown
    before it)."""
    size = [1] * len(parent)
    for k in range(len(parent) - 1, 0, -1):
        p = parent[k]
        if p >= 0:
            size[p] += size[k]
    return size


def _tree_order_unique(
    span_ids: list[str], parent_span_ids: list[str], position: dict[str, int]
) -> TreeOrder | None:
    """tree_order when the span ids are unique and none is empty (the usual case), on
    positions only; None when a parent cycle leaves spans unreached (tree_order's general
    walk then breaks it).

    No list per parent: the children of all spans are one list, grouped by parent (a
    stable sort of the positions by their parent's), so a trace of 20,000 spans makes a
    handful of Python objects rather than thousands for the garbage collector to track.
    """
    n = len(span_ids)
    top_key = n  # the parent key of a top-level span: after every position
    # The parent's position, or top_key: no parent, one that never arrived, or itself.
    parent_at = list(map(position.get, parent_span_ids))
    parent_key = list(map({None: top_key}.get, parent_at, parent_at))
    for i in compress(range(n), map(eq, parent_key, range(n))):
        parent_key[i] = top_key
    # Positions by parent, the latest first within each parent: pushed on the walk's
    # stack as they are, the earliest comes off first.
    by_parent = sorted(range(n - 1, -1, -1), key=parent_key.__getitem__)
    first: dict[int, int] = {}  # parent position → where its children start in by_parent
    count = Counter(parent_key)
    at = 0
    for p in sorted(count):
        first[p] = at
        at += count[p]
    orphan = [False] * n
    stack = by_parent[first.get(top_key, n) :]  # the top level
    for i in stack:
        if parent_span_ids[i]:
            orphan[i] = True
    # Depth-first, iterative (a chain of thousands of nested spans must not hit the
    # recursion limit). A span is pushed only by its parent, or as a top-level span, so
    # each is reached once; spans in a parent cycle are not reached at all.
    rows: list[int] = []
    visit, pop, push, kids = rows.append, stack.pop, stack.extend, count.get
    while stack:
        i = pop()
        visit(i)
        k = kids(i)
        if k:
            start = first[i]
            push(by_parent[start : start + k])
    if len(rows) < n:
        return None
    row_of = dict(zip(rows, range(n), strict=True))
    row_of[top_key] = -1  # a top-level row has no parent row
    parent = list(map(row_of.__getitem__, map(parent_key.__getitem__, rows)))
    depth = [0] * n
    for row, p in enumerate(parent):
        if p >= 0:
            depth[row] = depth[p] + 1
    return TreeOrder(rows=rows, depth=depth, parent=parent, size=_sizes(parent), orphan=orphan)


def _walk(
    span_ids: list[str], children: dict[str, list[int]], top: list[int], orphan: list[bool]
) -> tuple[list[int], list[int], list[int]]:
    """tree_order's depth-first walk when span ids repeat (a span is shown once)."""
    n = len(span_ids)
    rows: list[int] = []
    depth: list[int] = []
    parent: list[int] = []
    seen: set[str] = set()

    def walk(roots: list[int]) -> None:
        # Iterative: a chain of thousands of nested spans must not hit the recursion limit.
        stack = [(i, 0, -1) for i in reversed(roots)]
        pop, push = stack.pop, stack.extend
        while stack:
            i, d, parent_row = pop()
            span_id = span_ids[i]
            if span_id in seen:
                continue
            seen.add(span_id)
            row = len(rows)
            rows.append(i)
            depth.append(d)
            parent.append(parent_row)
            kids = children.get(span_id)
            if kids:
                d += 1
                push([(k, d, row) for k in reversed(kids)])

    walk(top)
    if len(rows) < n:
        for i in range(n):
            if span_ids[i] not in seen:
                orphan[i] = True
                walk([i])
    return rows, depth, parent


def _walk_unique(
    span_ids: list[str], children: dict[str, list[int]], top: list[int], orphan: list[bool]
) -> tuple[list[int], list[int], list[int]]:
    """_walk for unique span ids, the usual case, on plain integers: the stack holds
    positions only; a span's parent row and depth come from its parent, shown before it
    (a span is pushed only by its parent, or as the root of a walk)."""
    n = len(span_ids)
    position = {span_id: i for i, span_id in enumerate(span_ids)}
    by_position = [children.get(span_id) for span_id in span_ids]
    parent_position = [-1] * n
    for p, kids in children.items():
        at = position[p]
        for k in kids:
            parent_position[k] = at
    row_of = [-1] * n
    is_root = bytearray(n)
    rows: list[int] = []
    depth: list[int] = []
    parent: list[int] = []

    def walk(roots: list[int]) -> None:
        for i in roots:
            is_root[i] = 1
        stack = roots[::-1]
        pop, push = stack.pop, stack.extend
        while stack:
            i = pop()
            if row_of[i] >= 0:
                continue  # shown already: a parent cycle led back to it
            row_of[i] = len(rows)
            rows.append(i)
            if is_root[i]:
                depth.append(0)
                parent.append(-1)
            else:
                p = row_of[parent_position[i]]
                depth.append(depth[p] + 1)
                parent.append(p)
            kids = by_position[i]
            if kids:
                push(kids[::-1])

    walk(top)
    if len(rows) < n:
        for i in range(n):
            if row_of[i] < 0:
                orphan[i] = True
                walk([i])
    return rows, depth, parent


def span_tree(nodes: list[Node]) -> list[Node]:
    """The spans in display order (see tree_order), as Nodes with depth, parent_index
    (a position in the output), size and orphan set."""
    ordered = sorted(nodes, key=lambda n: (n.start_ms, n.span_id))
    order = tree_order([n.span_id for n in ordered], [n.parent_span_id for n in ordered])
    for n, orphan in zip(ordered, order.orphan, strict=True):
        n.orphan = orphan
    out = []
    for i, depth, parent, size in zip(
        order.rows, order.depth, order.parent, order.size, strict=True
    ):
        n = ordered[i]
        n.depth, n.parent_index, n.size = depth, parent, size
        out.append(n)
    return out


def trace_span_total_ms(nodes: list[Node]) -> float:
    """Length of the time axis: from the first span's start to the last span's end."""
    return max((n.start_ms + n.duration_ms for n in nodes), default=0.0)


def span_cost_text(node: Node) -> str:
    if node.cost_source == UNPRICED:
        return "unpriced"
    if node.cost_usd is None:
        return ""
    return display.usd(node.cost_usd)


ROW_LAYOUT = (
    "span_id",
    "depth",
    "parent",
    "size",
    "name",
    "step",
    "start_ms",
    "duration_ms",
    "detail",
    "tokens",
    "cost",
    "flags",
    "missing_parent",
)


def waterfall_payload(tree: list[Node]) -> dict[str, Any]:
    """Compact rows for the page's script to draw (json_script), one list per span.

    Rows are positional lists rather than objects: a 2,000-span trace is ~40% smaller.
    """
    rows = []
    for n in tree:
        flags = (
            (FLAG_ORPHAN if n.orphan else 0)
            | (FLAG_ERROR if n.status == ERROR else 0)
            | (FLAG_UNPRICED if n.cost_source == UNPRICED else 0)
        )
        rows.append(
            [
                n.span_id,
                n.depth,
                n.parent_index,
                n.size,
                n.name,
                n.step,
                round(n.start_ms, 3),
                round(n.duration_ms, 3),
                n.model or n.tool_name,
                n.input_tokens + n.output_tokens,
                span_cost_text(n),
                flags,
                n.parent_span_id if n.orphan else "",
            ]
        )
    return {
        "fields": list(ROW_LAYOUT),
        "total_ms": round(trace_span_total_ms(tree), 3),
        "rows": rows,
    }


# ------------------------------------------------------------------ storyline


@dataclass(slots=True)
class Beat:
    """One step of the storyline."""

    kind: str  # a StepRole value, or "gap" for the steps left out
    span_id: str = ""
    title: str = ""
    text: str = ""
    result: str = ""
    status: str = ""  # ok, error, unset; for final: the trace status
    note: str = ""  # secondary line: model, duration, decision
    tools: list[str] = field(default_factory=list)
    hidden: int = 0  # for a gap: how many steps it stands for
    count: int = 1  # consecutive calls of the same tool shown as one beat
    errors: int = 0


@dataclass(slots=True)
class Storyline:
    intent: Beat | None
    steps: list[Beat]
    final: Beat | None


MAX_STEPS = 10  # beats shown in full up to this many; beyond, the first and last few
HEAD_STEPS = 6
TAIL_STEPS = 3


def _clip(text: str, limit: int = PREVIEW) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_message(messages: list[dict[str, Any]], role: str | None = None) -> str:
    for m in messages:
        if (role is None or m.get("role") == role) and m.get("content"):
            return str(m["content"])
    return ""


def _last_message(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("content"):
            return str(m["content"])
    return ""


def _tool_calls(text: SpanText | None) -> list[str]:
    if text is None:
        return []
    return [c.get("name") or "?" for m in text.messages.output for c in m.get("tool_calls") or []]


def _chose_tools(text: SpanText | None) -> bool | None:
    """Whether a model call's recorded output asks for tools; None when nothing was recorded.

    Message content is off by default in OTel GenAI instrumentations, so finish reasons
    (always recorded) count too, and the caller falls back to the span structure.
    """
    if text is None:
        return None
    reasons = {r.lower() for r in text.messages.finish_reasons}
    if _tool_calls(text) or reasons & TOOL_FINISH_REASONS:
        return True
    if text.messages.output or reasons:
        return False
    return None


def _kind(step: str, role: str) -> str:
    """A span's part in the storyline: its explicit role, else llm, tool or a gate by its
    step; "" for the spans the storyline ignores."""
    if role in STEP_ROLES:
        return role
    if step == LLM:
        return LLM
    if step in _TOOLISH:
        return TOOL
    if step in _GATES:
        return step
    return ""


def _kinds(c: SpanColumns, roles: frozenset[str]) -> list[str]:
    """Each span's _kind, looked up per distinct (step, role): a trace has a handful."""
    if roles.isdisjoint(STEP_ROLES):  # no explicit role: the step alone decides
        by_step = {step: _kind(step, "") for step in set(c.step)}
        return list(map(by_step.__getitem__, c.step))
    pairs = list(zip(c.step, c.role, strict=True))
    by_pair = {pair: _kind(*pair) for pair in set(pairs)}
    return list(map(by_pair.__getitem__, pairs))


class _ToolsAfter:
    """For each model call, the tool calls that started after it and before the next one
    (positions in the columns), as a mapping from the model call's position: get(i) is
    None for a span that is not a model call.

    Two sorted lists of positions rather than a list per model call: the lists made on
    demand are few (the storyline shows a dozen steps), and the garbage collector tracks
    none of them while the index is built."""

    __slots__ = ("calls", "llm_kinds", "starts", "tools")

    def __init__(self, c: SpanColumns, kinds: list[str]):
        # model calls: kind llm, or an explicit plan on a model call
        self.llm_kinds = _where(kinds, LLM)
        self.calls = self.llm_kinds
        if PLAN in kinds:
            step = c.step
            plans = [i for i in _where(kinds, PLAN) if step[i] == LLM]
            self.calls = sorted(self.calls + plans)
        self.tools = _where(kinds, TOOL)
        # where each call's tools start in self.tools, the number of tool calls before
        # it (those before the first call belong to none)
        before = list(accumulate(map(eq, kinds, repeat(TOOL)), initial=0))
        self.starts = list(map(before.__getitem__, self.calls))

    def _range(self, k: int) -> tuple[int, int]:
        starts = self.starts
        return starts[k], starts[k + 1] if k + 1 < len(starts) else len(self.tools)

    def get(self, i: int, default: Any = None) -> Any:
        k = bisect_left(self.calls, i)
        if k == len(self.calls) or self.calls[k] != i:
            return default
        lo, hi = self._range(k)
        return self.tools[lo:hi]

    def calls_with_tools(self) -> list[int]:
        """The model calls some tool call followed."""
        starts = self.starts
        ends = [*starts[1:], len(self.tools)]
        return list(compress(self.calls, map(lt, starts, ends)))


@dataclass(slots=True)
class _Spans:
    """What the storyline reads of a trace: its spans in start order, each one's kind, the
    tool calls after each model call, and the positions its passes look at, found once
    (each a loop in C over the spans rather than one in Python)."""

    c: SpanColumns
    kinds: list[str]
    after: _ToolsAfter
    roles: frozenset[str]  # the explicit roles the spans have ("" for none)
    llms: list[int]  # model calls (step llm), whatever their role
    step_kinds: list[int]  # spans whose kind is always a step (_STEP_KINDS)
    llm_kinds: list[int]  # model calls with no role of a step (kind llm)
    llm_steps: list[int]  # those shown as steps when no text says otherwise

    @classmethod
    def of(cls, c: SpanColumns) -> _Spans:
        roles = frozenset(c.role)
        kinds = _kinds(c, roles)
        after = _ToolsAfter(c, kinds)
        llm_kinds = after.llm_kinds
        followed = after.calls_with_tools()
        if roles.isdisjoint(STEP_ROLES):  # the model calls are exactly the llm kinds
            llm_steps = followed
        else:
            role, followed_set = c.role, set(followed)
            llm_steps = [i for i in llm_kinds if role[i] == PLAN or i in followed_set]
        return cls(
            c=c,
            kinds=kinds,
            after=after,
            roles=roles,
            llms=_where(c.step, LLM),
            step_kinds=list(compress(range(len(kinds)), map(_STEP_KINDS.__contains__, kinds))),
            llm_kinds=llm_kinds,
            llm_steps=llm_steps,
        )

    def with_role(self, roles: frozenset[str]) -> list[int]:
        """Positions of the spans whose role is one of `roles`."""
        if self.roles.isdisjoint(roles):
            return []
        return list(compress(range(len(self.c)), map(roles.__contains__, self.c.role)))


def _root(c: SpanColumns, root_span_id: str) -> int | None:
    try:
        return c.span_id.index(root_span_id)
    except ValueError:
        pass
    for i, parent in enumerate(c.parent_span_id):
        if not parent:
            return i
    return 0 if len(c) else None


def _final_llm(
    s: _Spans, llms: list[int], texts: dict[str, SpanText], after: _ToolsAfter
) -> int | None:
    """The model call that gave the final answer: the last that stopped without tools."""
    span_id = s.c.span_id
    for i in reversed(_having(llms, span_id, texts)):
        t = texts[span_id[i]]
        reasons = {r.lower() for r in t.messages.finish_reasons}
        if reasons & STOP_FINISH_REASONS or _chose_tools(t) is False:
            return i
    if llms and not after.get(llms[-1]):
        return llms[-1]  # nothing recorded, but no tool followed it
    return None


def _step_rows(s: _Spans, texts: dict[str, SpanText], exclude: set[str]) -> list[int]:
    """The spans shown as steps, in start order: plans (model calls that chose tools),
    tool calls, results and gates, but not those in `exclude`.

    A model call is a plan when its recorded output asks for tools, else (nothing
    recorded) when tool calls followed it; `texts` holds a few spans, so only the model
    calls among them are looked at one by one.
    """
    c = s.c
    span_id = c.span_id
    steps = s.step_kinds
    llm = s.llm_steps
    if exclude:
        excluded = set(_having(steps, span_id, exclude))
        steps = list(filterfalse(excluded.__contains__, steps))
    if texts or exclude:
        looked = _having(s.llm_kinds, span_id, exclude.union(texts))
        if looked:
            role, after = c.role, s.after
            chosen = []
            for i in looked:
                if span_id[i] in exclude:
                    continue
                if role[i] == PLAN:
                    chosen.append(i)
                    continue
                recorded = _chose_tools(texts.get(span_id[i]))
                if recorded if recorded is not None else bool(after.get(i)):
                    chosen.append(i)
            dropped = set(looked)
            llm = [*filterfalse(dropped.__contains__, llm), *chosen]
    return sorted(steps + llm)


Group = list[int]  # positions of consecutive steps shown as one beat


def _grouped(s: _Spans, steps: Iterable[int], limit: int) -> list[Group]:
    """Consecutive calls of the same tool (a retry loop, a batch) become one group; the
    first `limit` groups of the steps."""
    kinds, tool_name, name = s.kinds, s.c.tool_name, s.c.name
    groups: list[Group] = []
    last_label = None  # the tool of the last group, None when it is not a tool call
    for i in steps:
        label = (tool_name[i] or name[i]) if kinds[i] == TOOL else None
        if label is not None and label == last_label:
            groups[-1].append(i)
        elif len(groups) == limit:
            break
        else:
            groups.append([i])
            last_label = label
    return groups


def _shown(s: _Spans, steps: list[int]) -> tuple[list[Group], list[int], list[Group]]:
    """The first groups of steps shown, the steps the gap between them stands for, the
    last groups. Only the groups shown are made: a group is a run of the same tool, so the
    last ones are the first ones of the steps read backwards."""
    groups = _grouped(s, steps, MAX_STEPS + 1)
    if len(groups) <= MAX_STEPS:
        return groups, [], []
    head = groups[:HEAD_STEPS]
    tail = [g[::-1] for g in reversed(_grouped(s, reversed(steps), TAIL_STEPS))]
    start = sum(len(g) for g in head)
    end = len(steps) - sum(len(g) for g in tail)
    return head, steps[start:end], tail


def _storyline_rows(s: _Spans, *, root_span_id: str) -> list[int]:
    """Positions of the spans whose text the storyline may quote: at most ~30."""
    c = s.c
    rows: list[int] = []
    root = _root(c, root_span_id)
    if root is not None:
        rows.append(root)
    llms = s.llms
    rows += llms[:1] + llms[-3:]
    roled = s.with_role(_INTENT_FINAL)
    rows += roled[:2] + roled[-2:]
    head, _, tail = _shown(s, _step_rows(s, {}, set()))
    status = c.status
    for group in head + tail:
        rows.append(group[0])
        rows += [i for i in group if status[i] == ERROR][:1]
    return list(dict.fromkeys(rows))


def storyline_span_ids(nodes: list[Node], *, root_span_id: str) -> list[str]:
    """Spans whose text the storyline may quote: at most ~30, whatever the trace size."""
    c = SpanColumns.of_nodes(nodes)
    rows = _storyline_rows(_Spans.of(c), root_span_id=root_span_id)
    return list(dict.fromkeys(c.span_id[i] for i in rows))


def _step_beat(s: _Spans, i: int, texts: dict[str, SpanText]) -> Beat:
    n = s.c.node(i)
    t = texts.get(n.span_id)
    kind = s.kinds[i]
    if kind == LLM:
        kind = PLAN
    beat = Beat(kind=kind, span_id=n.span_id, title=n.name, status=n.status)
    timing = display.duration(n.duration_ms)
    if kind == PLAN:
        beat.title = n.model or n.name
        tool_name, name = s.c.tool_name, s.c.name
        beat.tools = _tool_calls(t) or [tool_name[j] or name[j] for j in s.after.get(i, [])]
        if t:
            beat.text = _clip(_last_message(t.messages.output))
        beat.note = timing
    elif kind in (TOOL, RESULT):
        beat.title = n.tool_name or n.name
        if t:
            args = t.tool_arguments or _first_message(t.messages.input)
            result = t.tool_result or _last_message(t.messages.output)
            beat.text = _clip(args)
            beat.result = _clip(t.status_message if n.is_error and not result else result)
        beat.note = timing
    elif kind in _GATE_ROLES:
        attrs = t.attributes if t else {}
        beat.title = str(attrs.get("agentops.policy.name") or n.name)
        decision = attrs.get("agentops.policy.decision")
        beat.note = str(decision) if decision else timing
        if t and t.status_message:
            beat.text = _clip(t.status_message)
    if n.is_error and not beat.result and t and t.status_message:
        beat.result = _clip(t.status_message)
    if n.is_error and not beat.result and n.error_type:
        beat.result = n.error_type
    return beat


def storyline_build(
    *, nodes: list[Node], texts: dict[str, SpanText], root_span_id: str, trace_status: str
) -> Storyline:
    """intent → plan → tool calls and their results → final state.

    A span's explicit role (agentops.step) wins over everything inferred. Otherwise the
    intent is the first user message of the root or the first model call; plans are
    model calls whose output asks for tools (or, when content was not recorded, that
    tool calls followed); the final answer is the last model call that stopped, or
    the root's output.
    """
    return _storyline(
        _Spans.of(SpanColumns.of_nodes(nodes)),
        texts=texts,
        root_span_id=root_span_id,
        trace_status=trace_status,
    )


def _storyline(
    s: _Spans, *, texts: dict[str, SpanText], root_span_id: str, trace_status: str
) -> Storyline:
    c = s.c
    role = c.role
    root_row = _root(c, root_span_id)
    root = c.node(root_row) if root_row is not None else None
    llms = s.llms
    if not s.roles <= {"", PLAN}:
        llms = [i for i in llms if not role[i] or role[i] == PLAN]

    # ---- intent
    intent: Beat | None = None
    if INTENT in s.roles:
        n = c.node(role.index(INTENT))
        t = texts.get(n.span_id)
        text = ""
        if t:
            text = (
                _first_message(t.messages.input, "user")
                or _first_message(t.messages.input)
                or t.tool_arguments
                or _last_message(t.messages.output)
            )
        intent = Beat(kind=INTENT, span_id=n.span_id, title=n.name, text=_clip(text, 600))
    else:
        for n in [x for x in (root, c.node(llms[0]) if llms else None) if x is not None]:
            t = texts.get(n.span_id)
            text = _first_message(t.messages.input, "user") if t else ""
            if text:
                intent = Beat(kind=INTENT, span_id=n.span_id, title=n.name, text=_clip(text, 600))
                break
        if intent is None and root is not None:
            t = texts.get(root.span_id)
            text = _first_message(t.messages.input) if t else ""
            intent = Beat(kind=INTENT, span_id=root.span_id, title=root.name, text=_clip(text, 600))

    # ---- final
    final: Beat | None = None
    finals = s.with_role(frozenset({FINAL}))
    steps_exclude = {c.span_id[i] for i in s.with_role(_INTENT_FINAL)}
    if finals:
        n = c.node(finals[-1])
        t = texts.get(n.span_id)
        text = (_last_message(t.messages.output) or t.tool_result) if t else ""
        final = Beat(kind=FINAL, span_id=n.span_id, title=n.name, text=_clip(text, 600))
    else:
        unplanned = [i for i in llms if role[i] != PLAN] if PLAN in s.roles else llms
        found = _final_llm(s, unplanned, texts, s.after)
        n = c.node(found) if found is not None else None
        t = texts.get(n.span_id) if n else None
        text = _last_message(t.messages.output) if t else ""
        if not text and root is not None:
            rt = texts.get(root.span_id)
            root_text = _last_message(rt.messages.output) if rt else ""
            if root_text or n is None:
                n, text = root, root_text
        if n is not None:
            final = Beat(
                kind=FINAL, span_id=n.span_id, title=n.model or n.name, text=_clip(text, 600)
            )
            if n.step == LLM:
                steps_exclude.add(n.span_id)
    if final is not None:
        final.status = trace_status

    # ---- the steps between
    head, hidden, tail = _shown(s, _step_rows(s, texts, steps_exclude))
    beats = [_group_beat(s, g, texts) for g in head]
    if hidden:
        status = c.status
        errors = sum(map(eq, map(status.__getitem__, hidden), repeat(ERROR)))
        title = f"{len(hidden):,} more steps" + (f", {errors:,} with errors" if errors else "")
        beats.append(Beat(kind="gap", hidden=len(hidden), errors=errors, title=title))
    beats += [_group_beat(s, g, texts) for g in tail]
    return Storyline(intent=intent, steps=beats, final=final)


def _group_beat(s: _Spans, group: Group, texts: dict[str, SpanText]) -> Beat:
    beat = _step_beat(s, group[0], texts)
    status = s.c.status
    if len(group) == 1:
        beat.errors = int(status[group[0]] == ERROR)
        return beat
    failed = [i for i in group if status[i] == ERROR]
    beat.count, beat.errors = len(group), len(failed)
    duration = s.c.duration_ms
    beat.note = f"\u00d7{len(group)} · {display.duration(sum(duration[i] for i in group))}"
    ok = len(group) - len(failed)
    if failed:
        first = _step_beat(s, failed[0], texts)
        beat.status = SpanStatus.ERROR
        beat.result = f"{len(failed)} failed, {ok} ok" + (
            f" · {first.result}" if first.result else ""
        )
    else:
        beat.result = f"all {len(group)} ok"
    return beat


# ------------------------------------------------------------------ the whole page

# A trace of at most FULL_ROWS spans ships every row in the page. A bigger one ships the
# first WINDOW_ROWS rows; the page's script fetches the others by offset as they scroll
# into view (timeline_rows). Both can be set in settings (TIMELINE_FULL_ROWS,
# TIMELINE_WINDOW_ROWS).
FULL_ROWS = 1000
WINDOW_ROWS = 200
MAX_WINDOW_ROWS = 500  # the most rows one request may ask for
DENSITY_BINS = 120  # columns of the minimap
SLOW_SHARE = 0.01  # the slowest 1% of leaf spans are "slow"
FLAG_SLOW = 8

# Columns a window of rows adds to the skeleton.
ROW_FIELDS = (
    "span_id",
    "name",
    "step",
    "model",
    "tool_name",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "cost_source",
)


def full_rows() -> int:
    return int(getattr(settings, "TIMELINE_FULL_ROWS", FULL_ROWS))


def window_rows() -> int:
    return int(getattr(settings, "TIMELINE_WINDOW_ROWS", WINDOW_ROWS))


@dataclass(slots=True)
class TimelineIndex:
    """The display order of every span and what scrolling, the minimap and the "next"
    buttons need of it; no names, tokens or costs. Kept per trace version."""

    span_ids: list[str]
    depth: list[int]
    parent: list[int]
    size: list[int]
    start_ms: list[float]
    duration_ms: list[float]
    flags: list[int]  # FLAG_ORPHAN | FLAG_ERROR | FLAG_SLOW
    missing: dict[int, str]  # an orphan's row → the parent id that never arrived
    total_ms: float
    slow_ms: float  # the shortest "slow" duration; 0 when no span is slow
    density: list[list[int]]  # per minimap column: [spans starting, errors starting]
    storyline: Storyline
    orphan_count: int
    pks: list[int] | None = None  # each row's primary key, when read from the database
    t0: datetime | None = None  # when the first span started, when read from the database
    # From ClickHouse (no keys): every span's start_ms in start order (see _ch_ranges).
    start_order: list[float] | None = None

    @property
    def count(self) -> int:
        return len(self.span_ids)


def _having(positions: list[int], span_id: list[str], ids: set[str] | dict[str, Any]) -> list[int]:
    """The positions whose span id is one of `ids` (a set or dict), in their order."""
    return list(compress(positions, map(ids.__contains__, map(span_id.__getitem__, positions))))


def _where(values: list, value: Any) -> list[int]:
    """Positions of `value` in `values` (a loop in C rather than in Python)."""
    return list(compress(range(len(values)), map(eq, values, repeat(value))))


def _slow_rows(size: list[int], duration_ms: list[float]) -> list[int]:
    leaves = _where(size, 1)
    if not leaves:
        return []
    # Longest first; a stable sort, so ties stay in row order.
    leaves.sort(key=duration_ms.__getitem__, reverse=True)
    median = duration_ms[leaves[len(leaves) // 2]]
    top = leaves[: max(1, math.ceil(SLOW_SHARE * len(leaves)))]
    return [i for i in top if duration_ms[i] > median]


def slow_rows(tree: list[Node]) -> list[int]:
    """Rows of the slowest SLOW_SHARE of leaf spans (a parent lasts as long as its
    children, so only leaves count), at least one, ties to the earlier row; only spans
    slower than the median leaf, so a run of equal spans has none."""
    return _slow_rows([n.size for n in tree], [n.duration_ms for n in tree])


def _density(
    start_ms: list[float], errors: list[bool], total_ms: float, bins: int
) -> list[list[int]]:
    out = [[0, 0] for _ in range(bins)]
    if not start_ms:
        return out
    scale = bins / total_ms if total_ms > 0 else 0.0
    last = bins - 1
    if len(errors) != len(start_ms):
        raise ValueError("start_ms and errors differ in length")
    for column, starts in ((0, start_ms), (1, list(compress(start_ms, errors)))):
        for b, count in Counter(map(int, map(scale.__mul__, starts))).items():
            out[b if b < last else last][column] += count
    return out


def density_bins(tree: list[Node], total_ms: float, bins: int = DENSITY_BINS) -> list[list[int]]:
    """Spans and errors starting in each of `bins` equal slices of the time axis."""
    return _density([n.start_ms for n in tree], [n.status == ERROR for n in tree], total_ms, bins)


def _index_make(
    *,
    span_ids: list[str],
    depth: list[int],
    parent: list[int],
    size: list[int],
    start_ms: list[float],
    duration_ms: list[float],
    errors: list[bool],
    missing: dict[int, str],
    storyline: Storyline,
    pks: list[int] | None = None,
    t0: datetime | None = None,
    start_order: list[float] | None = None,
) -> TimelineIndex:
    """A TimelineIndex from its rows' columns, in display order."""
    total = max(map(add, start_ms, duration_ms), default=0.0)
    flags = list(map(FLAG_ERROR.__mul__, errors))  # FLAG_ERROR or 0
    for i in missing:
        flags[i] |= FLAG_ORPHAN
    slow = _slow_rows(size, duration_ms)
    for i in slow:
        flags[i] |= FLAG_SLOW
    return TimelineIndex(
        span_ids=span_ids,
        depth=depth,
        parent=parent,
        size=size,
        start_ms=start_ms,
        duration_ms=duration_ms,
        flags=flags,
        missing=missing,
        total_ms=round(total, 3),
        slow_ms=round(min((duration_ms[i] for i in slow), default=0.0), 3),
        density=_density(start_ms, errors, total, DENSITY_BINS),
        storyline=storyline,
        orphan_count=len(missing),
        pks=pks,
        t0=t0,
        start_order=start_order,
    )


def timeline_index_build(*, tree: list[Node], storyline: Storyline) -> TimelineIndex:
    """The TimelineIndex of a span_tree."""
    return _index_make(
        span_ids=[n.span_id for n in tree],
        depth=[n.depth for n in tree],
        parent=[n.parent_index for n in tree],
        size=[n.size for n in tree],
        start_ms=[n.start_ms for n in tree],
        duration_ms=[n.duration_ms for n in tree],
        errors=[n.status == ERROR for n in tree],
        missing={i: n.parent_span_id for i, n in enumerate(tree) if n.orphan},
        storyline=storyline,
    )


def _index_load(*, trace: Trace) -> TimelineIndex:
    """A big trace's TimelineIndex from one query of SKELETON_FIELDS (plus one for the
    storyline's texts), with no object per span."""
    c = span_columns_load(trace=trace)
    order = tree_order(c.span_id, c.parent_span_id)
    rows, orphan = order.rows, order.orphan

    def shown(column: list) -> list:  # the column in display order
        return list(map(column.__getitem__, rows))

    missing = {}
    if True in orphan:
        parent_id = c.parent_span_id
        missing = {row: parent_id[i] for row, i in enumerate(rows) if orphan[i]}
    return _index_make(
        span_ids=shown(c.span_id),
        depth=order.depth,
        parent=order.parent,
        size=order.size,
        start_ms=shown(c.start_ms),
        duration_ms=shown(c.duration_ms),
        errors=list(map(eq, shown(c.status), repeat(ERROR))),
        missing=missing,
        storyline=_storyline_of(trace=trace, c=c),
        pks=None if c.pk is None else shown(c.pk),
        t0=c.t0,
        start_order=c.start_ms if c.pk is None else None,
    )


def _storyline_of(*, trace: Trace, c: SpanColumns) -> Storyline:
    s = _Spans.of(c)
    rows = _storyline_rows(s, root_span_id=trace.root_span_id)
    texts = span_texts_load(
        trace=trace,
        span_ids=[c.span_id[i] for i in rows],
        pks=None if c.pk is None else [c.pk[i] for i in rows],
        started=_start_range(c.t0, [c.start_ms[i] for i in rows]),
        # no keys but a first start: read from ClickHouse, found by start time
        by_start=None
        if c.pk is not None
        else _by_start(c.t0, [c.start_ms[i] for i in rows], c.start_ms),
    )
    return _storyline(s, texts=texts, root_span_id=trace.root_span_id, trace_status=trace.status)


def _index_cache_key(trace: Trace) -> tuple:
    # Any span that arrives changes the count or the bounds; the trace id keeps a reused
    # primary key from ever reading another trace's rows.
    return (trace.pk, trace.trace_id, trace.span_count, trace.error_count, trace.ended_at)


# The last few indexes this process built, most recent last. In memory rather than in
# Django's cache: an index of 20,000 spans is about a megabyte, and unpickling it would
# cost more than the rows a scroll fetches. Each worker process builds its own.
INDEX_CACHE_SIZE = 8
_indexes: OrderedDict[tuple, TimelineIndex] = OrderedDict()
_indexes_lock = threading.Lock()


def _index_remember(key: tuple, index: TimelineIndex) -> None:
    with _indexes_lock:
        _indexes[key] = index
        _indexes.move_to_end(key)
        while len(_indexes) > INDEX_CACHE_SIZE:
            _indexes.popitem(last=False)


def timeline_index_cache_clear() -> None:
    with _indexes_lock:
        _indexes.clear()


def _index_peek(trace: Trace) -> TimelineIndex | None:
    """The trace's TimelineIndex if this process remembers it (never builds one)."""
    with _indexes_lock:
        return _indexes.get(_index_cache_key(trace))


def timeline_index(*, trace: Trace) -> TimelineIndex:
    """The trace's TimelineIndex, remembered or built by _index_load."""
    key = _index_cache_key(trace)
    with _indexes_lock:
        index = _indexes.get(key)
        if index is not None:
            _indexes.move_to_end(key)
    if index is None:
        index = _index_load(trace=trace)
        _index_remember(key, index)
    return index


def _row(n: Node, i: int, index: TimelineIndex) -> list[Any]:
    """One waterfall row in the positional layout of ROW_LAYOUT."""
    flags = index.flags[i] | (FLAG_UNPRICED if n.cost_source == UNPRICED else 0)
    return [
        index.span_ids[i],
        index.depth[i],
        index.parent[i],
        index.size[i],
        n.name,
        n.step,
        round(index.start_ms[i], 3),
        round(index.duration_ms[i], 3),
        n.model or n.tool_name,
        n.input_tokens + n.output_tokens,
        span_cost_text(n),
        flags,
        index.missing.get(i, ""),
    ]


def timeline_rows(*, trace: Trace, index: TimelineIndex, offset: int, limit: int) -> dict:
    """Rows offset .. offset + limit of the display order, with their badges, in one query
    (plus one per badge provider)."""
    ids = index.span_ids[offset : offset + limit]
    by_id: dict[str, Node] = {}
    if ids:
        if index.pks is not None:
            found = _spans_by_pk(
                trace=trace,
                pks=index.pks[offset : offset + limit],
                fields=ROW_FIELDS,
                started=_start_range(index.t0, index.start_ms[offset : offset + limit]),
            )
        elif (store := _clickhouse()) is not None:
            by = _by_start(index.t0, index.start_ms[offset : offset + limit], index.start_order)
            found = _ch_spans_of(store, trace, ids, by, ROW_FIELDS)
        else:
            found = (
                span_list_for_trace(trace=trace)
                .filter(span_id__in=ids)
                .order_by()
                .values_list(*ROW_FIELDS)
            )
        for span_id, name, step, model, tool, tin, tout, cost, source in found:
            by_id[span_id] = Node(
                span_id=span_id,
                name=name,
                step=step,
                model=model,
                tool_name=tool,
                input_tokens=tin,
                output_tokens=tout,
                cost_usd=cost,
                cost_source=source,
            )
    rows = [
        _row(by_id.get(span_id) or Node(span_id=span_id), offset + k, index)
        for k, span_id in enumerate(ids)
    ]
    badges = span_badges(trace=trace, span_ids=ids) if ids else {}
    return {
        "offset": offset,
        "count": index.count,
        "rows": rows,
        "badges": {span_id: [b.row() for b in found] for span_id, found in badges.items()},
    }


def timeline_row_of(*, index: TimelineIndex, span_id: str) -> int | None:
    """The row of a span in the display order; None when the trace has no such span."""
    try:
        return index.span_ids.index(span_id.lower())
    except ValueError:
        return None


def timeline_next(*, index: TimelineIndex, kind: str, after: int) -> int | None:
    """The first row after `after` that is an error (kind "error") or slow ("slow"),
    wrapping round to the top; None when the trace has none."""
    flag = FLAG_ERROR if kind == "error" else FLAG_SLOW
    flags = index.flags
    n = len(flags)
    for k in range(1, n + 1):
        i = (after + k) % n
        if flags[i] & flag:
            return i
    return None


@dataclass(slots=True)
class Timeline:
    tree: list[Node]  # every row when the page holds them all; empty for a windowed one
    payload: dict[str, Any]
    storyline: Storyline
    orphan_count: int
    windowed: bool = False


def _totals(trace: Trace) -> dict[str, Any]:
    """The whole trace's figures, shown on its root span's row."""
    return {
        "span_id": trace.root_span_id,
        "spans": trace.span_count,
        "tokens": trace.input_tokens + trace.output_tokens,
        "cost": display.cost_with_unpriced(trace.cost_usd, trace.unpriced_count),
        "duration_ms": round(trace.duration_ms or 0, 3),
    }


def timeline_build(*, trace: Trace) -> Timeline:
    """Everything the timeline page shows.

    Up to full_rows() spans: every row, from one query of the waterfall columns. Beyond:
    the cached TimelineIndex and the first window_rows() rows, so the page's size and
    server time do not grow with the trace.
    """
    if trace.span_count <= full_rows():
        nodes, t0 = _nodes_load(trace=trace)
        tree = span_tree(nodes)
        columns = SpanColumns.of_nodes(nodes)
        columns.t0 = t0  # None but on ClickHouse, whose texts are found by start time
        story = _storyline_of(trace=trace, c=columns)
        index = timeline_index_build(tree=tree, storyline=story)
        if index.count > full_rows():  # the summary lagged behind the spans
            _index_remember(_index_cache_key(trace), index)
        else:
            payload = waterfall_payload(tree)
            for row, flags in zip(payload["rows"], index.flags, strict=True):
                row[11] |= flags & FLAG_SLOW
            payload["badges"] = {
                span_id: [b.row() for b in badges]
                for span_id, badges in span_badges(trace=trace).items()
            }
            payload.update(
                offset=0,
                count=index.count,
                windowed=False,
                density=index.density,
                slow_ms=index.slow_ms,
                totals=_totals(trace),
            )
            return Timeline(
                tree=tree, payload=payload, storyline=story, orphan_count=index.orphan_count
            )
    else:
        index = timeline_index(trace=trace)
    window = timeline_rows(trace=trace, index=index, offset=0, limit=window_rows())
    payload = {
        "fields": list(ROW_LAYOUT),
        "total_ms": index.total_ms,
        "windowed": True,
        "window": window_rows(),
        "density": index.density,
        "slow_ms": index.slow_ms,
        "totals": _totals(trace),
        **window,
    }
    return Timeline(
        tree=[],
        payload=payload,
        storyline=index.storyline,
        orphan_count=index.orphan_count,
        windowed=True,
    )


# ------------------------------------------------------------------ one span's details


def clip_text(text: str, limit: int = MAX_TEXT) -> tuple[str, int]:
    """The text cut to `limit` characters, and how many were cut."""
    if len(text) <= limit:
        return text, 0
    return text[:limit], len(text) - limit


def pretty(value: Any) -> str:
    """JSON (or JSON text) indented for reading; other text as it is."""
    if isinstance(value, str):
        s = value.strip()
        if s[:1] in ("{", "[") and s[-1:] in ("}", "]"):
            try:
                value = json.loads(s)
            except ValueError:
                return value
        else:
            return value
    try:
        return _dumps(value, "")
    except (TypeError, ValueError, RecursionError):
        return str(value)


INLINE_WIDTH = 72


def _dumps(value: Any, pad: str) -> str:
    """Indented JSON that keeps short arrays and objects of scalars on one line."""
    flat = json.dumps(value, ensure_ascii=False, default=str)
    if not isinstance(value, dict | list) or not value:
        return flat
    scalars = all(
        not isinstance(v, dict | list)
        for v in (value.values() if isinstance(value, dict) else value)
    )
    # The top-level object is always opened up: its keys are what one reads first.
    top_object = not pad and isinstance(value, dict)
    if scalars and not top_object and len(flat) + len(pad) <= INLINE_WIDTH:
        return flat
    inner = pad + "  "
    if isinstance(value, dict):
        items = [
            f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_dumps(v, inner)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    items = [inner + _dumps(v, inner) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + pad + "]"


@dataclass(slots=True)
class Text:
    """A value prepared for a <pre>: pretty-printed, clipped, with what was left out."""

    text: str
    cut: int = 0
    is_json: bool = False

    @classmethod
    def of(cls, value: Any) -> Text:
        p = pretty(value)
        is_json = not isinstance(value, str) or p is not value
        text, cut = clip_text(p)
        return cls(text=text, cut=cut, is_json=is_json)


@dataclass(slots=True)
class MessageView:
    role: str
    content: Text
    tool_calls: list[dict[str, Any]]  # {"id", "name", "arguments": Text}


@dataclass(slots=True)
class EventView:
    name: str
    offset_ms: float | None
    attributes: list[tuple[str, Text]]


@dataclass(slots=True)
class ExceptionView:
    type: str
    message: str
    stacktrace: Text | None


@dataclass(slots=True)
class SpanDetail:
    span: Span
    start_offset_ms: float
    system: Text | None
    input: list[MessageView]
    output: list[MessageView]
    finish_reasons: list[str]
    tool_arguments: Text | None
    tool_result: Text | None
    cost_text: str
    cost_source_label: str
    attributes: list[tuple[str, Text]]
    resource: list[tuple[str, Text]]
    scope: list[tuple[str, Text]]
    events: list[EventView]
    links: list[dict[str, Any]]
    exception: ExceptionView | None
    badges: list[SpanBadge] = field(default_factory=list)


def _messages_view(messages: list[dict[str, Any]]) -> list[MessageView]:
    out = []
    for m in messages:
        calls = [
            {
                "id": c.get("id", ""),
                "name": c.get("name", ""),
                "arguments": Text.of(c.get("arguments", "")),
            }
            for c in m.get("tool_calls") or []
        ]
        out.append(
            MessageView(
                role=m.get("role", ""), content=Text.of(m.get("content", "")), tool_calls=calls
            )
        )
    return out


def _pairs(d: Any) -> list[tuple[str, Text]]:
    if not isinstance(d, dict):
        return []
    return [(str(k), Text.of(v)) for k, v in sorted(d.items(), key=lambda kv: str(kv[0]))]


def _cost_source_label(source: str) -> str:
    if not source:
        return ""
    try:
        return CostSource(source).label
    except ValueError:
        return source


def span_get_for_trace(*, trace: Trace, span_id: str) -> Span | None:
    """The span of the trace with this id; from ClickHouse an unsaved Span (no pk)."""
    store = _clickhouse()
    if store is None:
        return span_list_for_trace(trace=trace).filter(span_id=span_id.lower()).first()
    span_id = span_id.lower()
    # Its start bounds the read of its whole row: from the trace's index when this
    # process has it, else from the trace's (span id, start) pairs, two narrow columns.
    index = _index_peek(trace)
    if index is not None and index.t0 is not None:
        at = timeline_row_of(index=index, span_id=span_id)
        if at is None:
            return None
        by = _by_start(index.t0, [index.start_ms[at]])
    else:
        found = [
            s for i, s in _ch_trace_rows(store, trace, ("span_id", "started_at")) if i == span_id
        ]
        if not found:
            return None
        by = _ByStart(t0=found[0], wanted_ms=[0.0])
    rows = _ch_spans_of(store, trace, [span_id], by, CH_SPAN_FIELDS)
    return Span(**dict(zip(CH_SPAN_FIELDS, rows[0], strict=True))) if rows else None


def span_detail(*, span: Span, trace: Trace) -> SpanDetail:
    """Everything the side panel shows about one span."""
    attributes = span.attributes if isinstance(span.attributes, dict) else {}
    events = span.events if isinstance(span.events, list) else []
    messages = extract_messages(attributes, events)
    span_start_ns = int(span.started_at.timestamp()) * 10**9 + span.started_at.microsecond * 1000

    exception = None
    event_views = []
    for ev in events:
        if not isinstance(ev, dict):
            continue
        ea = ev.get("attributes") if isinstance(ev.get("attributes"), dict) else {}
        t = ev.get("time_unix_nano")
        offset = (t - span_start_ns) / 1e6 if isinstance(t, int) and t else None
        if ev.get("name") == "exception" and exception is None:
            trace_text = ea.get("exception.stacktrace")
            exception = ExceptionView(
                type=str(ea.get("exception.type") or span.error_type or ""),
                message=str(ea.get("exception.message") or span.status_message or ""),
                stacktrace=Text.of(str(trace_text)) if trace_text else None,
            )
        event_views.append(
            EventView(name=str(ev.get("name", "")), offset_ms=offset, attributes=_pairs(ea))
        )
    if (
        exception is None
        and span.status == SpanStatus.ERROR
        and (span.error_type or span.status_message)
    ):
        exception = ExceptionView(
            type=span.error_type, message=span.status_message, stacktrace=None
        )

    if span.cost_source == CostSource.UNPRICED:
        cost_text = "unpriced"
    else:
        cost_text = display.usd(span.cost_usd) if span.cost_usd is not None else "—"
    return SpanDetail(
        span=span,
        start_offset_ms=(span.started_at - trace.started_at).total_seconds() * 1000,
        system=Text.of(messages.system) if messages.system else None,
        input=_messages_view(messages.input),
        output=_messages_view(messages.output),
        finish_reasons=messages.finish_reasons,
        tool_arguments=Text.of(span.tool_arguments) if span.tool_arguments else None,
        tool_result=Text.of(span.tool_result) if span.tool_result else None,
        cost_text=cost_text,
        cost_source_label=_cost_source_label(span.cost_source),
        attributes=_pairs(attributes),
        resource=_pairs(span.resource),
        scope=_pairs(span.scope),
        events=event_views,
        links=[lk for lk in (span.links or []) if isinstance(lk, dict)],
        exception=exception,
        badges=span_badges(trace=trace, span_ids=[span.span_id]).get(span.span_id, []),
    )


# ------------------------------------------------------------------ sessions


@dataclass(slots=True)
class SessionTotals:
    trace_count: int = 0
    span_count: int = 0
    error_count: int = 0
    llm_call_count: int = 0
    tool_call_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced_count: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def cost_text(self) -> str:
        return display.cost_with_unpriced(self.cost_usd, self.unpriced_count)

    @property
    def duration_ms(self) -> float:
        if self.started_at is None or self.ended_at is None:
            return 0.0
        return (self.ended_at - self.started_at).total_seconds() * 1000


def session_trace_list(*, project: Project, session_id: str) -> QuerySet[Trace]:
    """The traces of one session of a project, oldest first (the order it happened in)."""
    return (
        Trace.objects.filter(project=project, session_id=session_id)
        .select_related("project")
        .order_by("started_at", "id")
    )


def session_totals(*, project: Project, session_id: str) -> SessionTotals:
    agg = Trace.objects.filter(project=project, session_id=session_id).aggregate(
        trace_count=Count("id"),
        span_count=Sum("span_count"),
        error_count=Sum("error_count"),
        llm_call_count=Sum("llm_call_count"),
        tool_call_count=Sum("tool_call_count"),
        input_tokens=Sum("input_tokens"),
        output_tokens=Sum("output_tokens"),
        cost_usd=Sum("cost_usd"),
        unpriced_count=Sum("unpriced_count"),
        started_at=Min("started_at"),
        ended_at=Max("ended_at"),
    )
    defaults = SessionTotals()
    return SessionTotals(
        **{k: (v if v is not None else getattr(defaults, k)) for k, v in agg.items()}
    )


# ------------------------------------------------------------------ session transcript

TURN_TEXT = 2000  # characters of one message shown in a session's transcript


@dataclass(slots=True)
class Turn:
    """One run of a session as a chat exchange: what was asked and what the agent answered."""

    trace: Trace
    asked: str = ""
    answered: str = ""


def session_conversation(*, project: Project, traces: list[Trace]) -> list[Turn]:
    """The runs of a session page as a transcript, in their order: each run's user input
    and answer from its root span's messages, else from its first and last model calls.
    Two reads of the span store at most, for one page of runs, bounded by the runs' days."""
    turns = {t.trace_id: Turn(trace=t) for t in traces}
    if not turns:
        return []
    store = span_store()
    started = (
        min(t.started_at for t in traces) - SPAN_READ_MARGIN,
        max(t.ended_at for t in traces) + SPAN_READ_MARGIN,
    )
    roots = {t.trace_id: t.root_span_id for t in traces}
    rows = store.select_spans(
        project.pk,
        columns=("trace_id", "span_id", "attributes", "events"),
        trace_ids=list(turns),
        equals={"parent_span_id": ""},
        started=started,
        order=[],
    )
    for row in rows:
        trace_id = row["trace_id"]
        if roots[trace_id] and row["span_id"] != roots[trace_id]:
            continue
        _turn_fill(turns[trace_id], extract_messages(row["attributes"], row["events"]))
    missing = [tid for tid, turn in turns.items() if not (turn.asked and turn.answered)]
    if missing:
        calls = store.select_spans(
            project.pk,
            columns=("trace_id", "attributes", "events"),
            trace_ids=missing,
            equals={"step": LLM},
            started=started,
            order=["trace_id", "started_at", "span_id"],
        )
        by_trace: dict[str, list[Messages]] = {}
        for row in calls:
            messages = extract_messages(row["attributes"], row["events"])
            by_trace.setdefault(row["trace_id"], []).append(messages)
        for trace_id, messages in by_trace.items():
            turn = turns[trace_id]
            if not turn.asked:
                turn.asked = _clip_turn(_first_message(messages[0].input, "user"))
            if not turn.answered:
                turn.answered = _clip_turn(_last_message(messages[-1].output))
    return [turns[t.trace_id] for t in traces]


def _turn_fill(turn: Turn, messages: Messages) -> None:
    turn.asked = turn.asked or _clip_turn(
        _first_message(messages.input, "user") or _first_message(messages.input)
    )
    turn.answered = turn.answered or _clip_turn(_last_message(messages.output))


def _clip_turn(text: str) -> str:
    text = text.strip()
    return text if len(text) <= TURN_TEXT else text[: TURN_TEXT - 1] + "…"
