"""The general span read, `select_spans`, as both stores accept it: the columns, filters
and orders it allows (fixed lists; a name outside them is a ValueError, never SQL).

    select_spans(project_ids, *, columns, trace_ids=None, span_ids=None,
                 started=(lo, hi), received=(lo, hi), equals={col: value | [values]},
                 nonempty=[cols], any_of=[{"equals": {...}, "has_key": key}, ...],
                 lacks_keys=[keys], keys={alias: key}, absent_from=<QuerySet>,
                 order=[cols] | "arrival", after=cursor, limit=n)

- `project_ids`: one id, several, or None (every project: the periodic control tasks).
- `started` / `received`: [lo, hi) on started_at / received_at; either end may be None.
  On ClickHouse a started range bounds the days of the sort key: give it when known.
- `equals`: column = value, or column IN values. `nonempty`: column <> ''.
- `any_of`: OR of clauses, each an AND of its `equals` and "attributes has `has_key`".
- `lacks_keys`: attributes has none of these keys.
- `absent_from`: a relational QuerySet of rows with project_id, trace_id and span_id
  (checks, flags, records already made): spans with such a row are left out (an
  anti-join on the relational store; on ClickHouse a look-up of the candidates' keys).
- `keys`: {alias: attribute key}: each row also has `alias`, the key's value as text
  (None when absent; extracted by the database, never the whole document read).
- `order`: ascending columns, or "arrival": the order spans were stored in, for paging
  with `after` (each row then carries an opaque `_cursor`; pass the last one back).
  "arrival" may also end a list of columns, as its tie-break (the relational id; on
  ClickHouse received_at, then the span's key).

Rows are dicts of `columns`, JSON columns decoded, times aware (UTC on ClickHouse).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The columns of traces.Span (without its relational id); tests check both stores agree.
COLUMNS = (
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
# What `equals` and `nonempty` may test: identifiers and labels, not payloads.
FILTER_COLUMNS = frozenset(
    {
        "trace_id",
        "span_id",
        "parent_span_id",
        "kind",
        "status",
        "error_type",
        "step",
        "role",
        "service_name",
        "agent",
        "agent_version",
        "prompt_version",
        "model",
        "provider",
        "tool_name",
        "tool_call_id",
        "session_id",
        "user_id",
        "cost_source",
    }
)
ORDER_COLUMNS = frozenset({"started_at", "received_at", "trace_id", "span_id", "project_id"})
ARRIVAL = "arrival"
CURSOR = "_cursor"
# What sum_spans may group by and add up.
SUM_GROUPS = frozenset({"trace_id", "model", "agent", "provider", "service_name"})
SUM_MEASURES = frozenset({"cost_usd", "tokens"})
MAX_KEY = 256
_ALIAS = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class Select:
    columns: tuple[str, ...]
    order: tuple[str, ...]
    arrival: bool


def _check_equals(equals: Mapping[str, Any] | None) -> None:
    for name, value in (equals or {}).items():
        if name not in FILTER_COLUMNS:
            raise ValueError(f"cannot filter spans on {name!r}")
        values = value if isinstance(value, list | tuple | set | frozenset) else [value]
        for item in values:
            if not isinstance(item, str | int) or isinstance(item, bool):
                raise ValueError(f"{name}: filter values are text or integers")


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        raise ValueError("attribute keys are non-empty text")


def check_select(
    *,
    columns: Sequence[str],
    equals: Mapping[str, Any] | None,
    nonempty: Sequence[str],
    any_of: Sequence[Mapping[str, Any]] | None,
    lacks_keys: Sequence[str],
    order: Sequence[str] | str,
    after: Any,
    keys: Mapping[str, str] | None = None,
) -> Select:
    names = tuple(columns)
    if not names:
        raise ValueError("name the columns to read")
    unknown = [c for c in names if c not in COLUMNS]
    if unknown:
        raise ValueError(f"unknown span columns: {unknown}")
    _check_equals(equals)
    for name in nonempty:
        if name not in FILTER_COLUMNS:
            raise ValueError(f"cannot filter spans on {name!r}")
    for clause in any_of or ():
        if set(clause) - {"equals", "has_key"} or not clause:
            raise ValueError("an any_of clause has `equals` and/or `has_key`")
        _check_equals(clause.get("equals"))
        if "has_key" in clause:
            _check_key(clause["has_key"])
    for key in lacks_keys:
        _check_key(key)
    for alias, key in (keys or {}).items():
        if not isinstance(alias, str) or not _ALIAS.match(alias) or alias in COLUMNS:
            raise ValueError(f"{alias!r} cannot name an attribute value")
        _check_key(key)
    arrival = order == ARRIVAL
    if arrival:
        return Select(names, (), True)
    if isinstance(order, str):
        raise ValueError(f"order is a list of columns or {ARRIVAL!r}")
    if after is not None:
        raise ValueError(f"`after` pages the {ARRIVAL!r} order only")
    if ARRIVAL in order[:-1]:
        raise ValueError(f"{ARRIVAL!r} can only end the order")
    bad = [c for c in order if c not in ORDER_COLUMNS and c != ARRIVAL]
    if bad:
        raise ValueError(f"cannot order spans by {bad}")
    return Select(names, tuple(order), False)


def check_count(
    group: str, equals: Mapping[str, Any] | None, nonempty: Sequence[str], counted: str | None
) -> None:
    if group not in SUM_GROUPS:
        raise ValueError(f"group must be one of {sorted(SUM_GROUPS)}")
    _check_equals(equals)
    for name in (*nonempty, *([counted] if counted else [])):
        if name not in FILTER_COLUMNS:
            raise ValueError(f"cannot filter spans on {name!r}")


def check_sum(group: str, measure: str, equals: Mapping[str, Any] | None) -> None:
    if group not in SUM_GROUPS:
        raise ValueError(f"group must be one of {sorted(SUM_GROUPS)}")
    if measure not in SUM_MEASURES:
        raise ValueError(f"measure must be one of {sorted(SUM_MEASURES)}")
    _check_equals(equals)
