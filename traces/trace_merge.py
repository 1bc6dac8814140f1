"""How spans fold into a trace summary: one rule per summary column.

Both the in-batch fold (`summary_start`, `summary_add`) and the SQL upsert that merges a
batch's summary into the stored row (`upsert_set_sql`) are derived from `RULES`, so the
stored summary is the same for every split of the same spans into requests and every
order they arrive in.
That holds because every rule is commutative and associative:

- sum, capped sum (costs are never negative), min, max, or;
- pick: the non-empty value of the span with the smallest key wins, and of two spans
  with the same key the smaller value (text in code-point order). The key is the span's
  start time, plus NOT_ROOT for a span with a parent where a root's value comes first.
  It is stored next to the value (`<column>_key`), so a later request can tell whether
  its span comes first. A key is 0 where no value was chosen yet, and on rows written
  before the keys existed: there it sorts first, so their values are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

SUM, CAPPED_SUM, MIN, MAX, OR, PICK = "sum", "capped_sum", "min", "max", "or", "pick"
# Pick orders: the root's value if it has one, else the earliest span's; only roots.
ROOT_FIRST, EARLIEST, ROOT_ONLY = "root_first", "earliest", "root_only"

# A bound no real run approaches, below numeric(20, 10)'s 10^10: the summary saturates
# instead of failing every later batch of the trace (arithmetic in traces/ingest.py).
MAX_TRACE_COST = Decimal(9_999_999_999)


@dataclass(frozen=True, slots=True)
class Rule:
    rule: str
    cap: Any = None  # CAPPED_SUM
    key: str = ""  # PICK: the column holding the key of the span that gave the value
    order: str = ""  # PICK: ROOT_FIRST, EARLIEST or ROOT_ONLY


def _pick(key: str, order: str) -> Rule:
    return Rule(PICK, key=key, order=order)


# Columns a span contributes to, in the order they are folded. Columns sharing a key are
# picked together (the first one decides whether the span is a candidate).
RULES: dict[str, Rule] = {
    "root_span_id": _pick("root_key", ROOT_ONLY),
    "root_status": _pick("root_key", ROOT_ONLY),
    "name": _pick("name_key", ROOT_FIRST),
    "agent": _pick("agent_key", ROOT_FIRST),
    "agent_version": _pick("agent_version_key", ROOT_FIRST),
    "service_name": _pick("service_name_key", ROOT_FIRST),
    "prompt_version": _pick("prompt_version_key", ROOT_FIRST),
    "phase": _pick("phase_key", ROOT_FIRST),
    "session_id": _pick("session_id_key", EARLIEST),
    "user_id": _pick("user_id_key", EARLIEST),
    "start_ns": Rule(MIN),
    "end_ns": Rule(MAX),
    "span_count": Rule(SUM),
    "error_count": Rule(SUM),
    "llm_call_count": Rule(SUM),
    "tool_call_count": Rule(SUM),
    "input_tokens": Rule(SUM),
    "output_tokens": Rule(SUM),
    "cached_input_tokens": Rule(SUM),
    "reasoning_tokens": Rule(SUM),
    "cost_usd": Rule(CAPPED_SUM, cap=MAX_TRACE_COST),
    "unpriced_count": Rule(SUM),
    "intervened": Rule(OR),
}

_SUMS, _MINS, _MAXES, _ORS = (
    tuple(c for c, r in RULES.items() if r.rule == kind) for kind in (SUM, MIN, MAX, OR)
)
_CAPPED = tuple((c, r.cap) for c, r in RULES.items() if r.rule == CAPPED_SUM)
_ORDERS = (EARLIEST, ROOT_FIRST, ROOT_ONLY)  # positions in summary_start's keys
# Added to the start of a span with a parent where roots come first: starts stay below
# 2^62 until the year 2116 (ingest refuses times after 2100), so keys fit a bigint.
NOT_ROOT = 2**62
# (key column, order, value columns) per pick group, in declaration order; the group's
# first column decides whether a span is a candidate.
_PICKS: tuple[tuple[str, int, str, tuple[str, ...]], ...] = tuple(
    (key, _ORDERS.index(order), cols[0], cols)
    for key, order in dict.fromkeys((r.key, r.order) for r in RULES.values() if r.rule == PICK)
    for cols in [tuple(c for c, r in RULES.items() if r.rule == PICK and r.key == key)]
)
KEY_COLUMNS = tuple(key for key, _order, _first, _cols in _PICKS)


def span_keys(*, start_ns: int, is_root: bool) -> tuple[int, int, int]:
    """A span's key in each pick order (by position in _ORDERS); 0: not a candidate."""
    return start_ns, start_ns if is_root else start_ns + NOT_ROOT, start_ns if is_root else 0


def summary_start(contribution: dict[str, Any], keys: tuple[int, int, int]) -> dict[str, Any]:
    """The first span's contribution (a value per column of RULES) made the summary, in
    place: each value it gives is keyed by the span."""
    for key, order, first, cols in _PICKS:
        k = keys[order]
        if k and contribution[first]:
            contribution[key] = k
        else:
            contribution[key] = 0
            for col in cols:
                contribution[col] = ""
    return contribution


def summary_add(into: dict[str, Any], contribution: dict[str, Any], keys) -> None:
    """Fold one more span into a summary, by RULES. upsert_set_sql is the same rules
    between two summaries; a span is the summary summary_start makes of it."""
    for col in _SUMS:
        into[col] += contribution[col]
    for col, cap in _CAPPED:
        into[col] = min(into[col] + contribution[col], cap)
    for col in _MINS:
        if contribution[col] < into[col]:
            into[col] = contribution[col]
    for col in _MAXES:
        if contribution[col] > into[col]:
            into[col] = contribution[col]
    for col in _ORS:
        into[col] = into[col] or contribution[col]
    for key, order, first, cols in _PICKS:
        value = contribution[first]
        k = keys[order]
        if (
            value
            and k
            and (not into[first] or k < into[key] or (k == into[key] and value < into[first]))
        ):
            into[key] = k
            for col in cols:
                into[col] = contribution[col]


def upsert_set_sql(*, table: str, vendor: str) -> dict[str, str]:
    """{column: expression} merging `excluded` (a batch's summary) into the stored row."""
    least, greatest = ("LEAST", "GREATEST") if vendor == "postgresql" else ("MIN", "MAX")
    # Ties compare values as Python does: code points (UTF-8 byte order), whatever the
    # database's collation. SQLite compares text that way already.
    collate = ' COLLATE "C"' if vendor == "postgresql" else ""
    t = table
    out: dict[str, str] = {}
    for col, rule in RULES.items():
        if rule.rule == SUM:
            out[col] = f"{t}.{col} + excluded.{col}"
        elif rule.rule == CAPPED_SUM:
            out[col] = f"{least}({t}.{col} + excluded.{col}, {rule.cap})"
        elif rule.rule == MIN:
            out[col] = f"{least}({t}.{col}, excluded.{col})"
        elif rule.rule == MAX:
            out[col] = f"{greatest}({t}.{col}, excluded.{col})"
        elif rule.rule == OR:
            out[col] = f"({t}.{col} OR excluded.{col})"
    # Columns that follow from merged ones (their Python twin is in ingest._trace_row).
    out["started_at"] = (
        f"CASE WHEN excluded.start_ns < {t}.start_ns THEN excluded.started_at "
        f"ELSE {t}.started_at END"
    )
    out["ended_at"] = (
        f"CASE WHEN excluded.end_ns > {t}.end_ns THEN excluded.ended_at ELSE {t}.ended_at END"
    )
    out["duration_ms"] = f"({out['end_ns']} - {out['start_ns']}) / 1000000.0"
    out["last_received_at"] = "excluded.last_received_at"
    for key, _order, first, cols in _PICKS:
        wins = (
            f"excluded.{key} <> 0 AND ({t}.{first} = '' OR excluded.{key} < {t}.{key} OR "
            f"(excluded.{key} = {t}.{key} AND excluded.{first}{collate} < {t}.{first}))"
        )
        for col in (*cols, key):
            out[col] = f"CASE WHEN {wins} THEN excluded.{col} ELSE {t}.{col} END"
    root_status = out["root_status"]
    out["status"] = (
        f"CASE WHEN ({root_status}) = 'error' THEN 'error' "
        f"WHEN ({root_status}) <> '' THEN 'ok' ELSE 'incomplete' END"
    )
    return out
