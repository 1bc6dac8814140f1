"""The neutral record, assembled from the family modules listed in CONVENTIONS.

Every decision is a dict lookup, and JSON is parsed only for the few blobs that need it
when they are present: map_span runs once per ingested span.
"""

from __future__ import annotations

from typing import Any

from traces.conventions import CONVENTIONS
from traces.conventions.steps import AGENT, LLM, OTHER, TOOL
from traces.conventions.values import (
    IMPLAUSIBLE,
    Neutral,
    cost,
    error_type,
    first_count,
    first_ident,
    first_text,
    json_obj,
    note_invalid,
    text,
    unwrap_call,
    usage_blob,
)
from traces.otlp import RawSpan


def _keys(field: str) -> tuple[str, ...]:
    ranked = [
        (rank, position, key)
        for position, module in enumerate(CONVENTIONS)
        for rank, key in getattr(module, "KEYS", {}).get(field, ())
    ]
    return tuple(key for _rank, _position, key in sorted(ranked))


def _classifiers() -> tuple[tuple[str, dict[str, str]], ...]:
    tables: dict[str, tuple[int, dict[str, str]]] = {}
    for module in CONVENTIONS:
        for attribute, (rank, table) in getattr(module, "CLASSIFY", {}).items():
            _rank, merged = tables.setdefault(attribute, (rank, {}))
            merged.update(table)
    return tuple((a, t) for a, (_r, t) in sorted(tables.items(), key=lambda item: item[1][0]))


def _hooks(name: str) -> tuple[Any, ...]:
    return tuple(getattr(m, name) for m in CONVENTIONS if hasattr(m, name))


CLASSIFIERS = _classifiers()
TOOL_MARKERS = _keys("tool_marker")
MODEL_MARKERS = _keys("model_marker")
AGENT_MARKERS = _keys("agent_marker")
AGENT_MARKER_EXCLUDED = _keys("agent_marker_excluded")
MODEL_KEYS = _keys("model")
PROVIDER_KEYS = _keys("provider")
AGENT_KEYS = _keys("agent")
AGENT_VERSION_KEYS = _keys("agent_version")
PROMPT_VERSION_KEYS = _keys("prompt_version")
INPUT_KEYS = _keys("input_tokens")
OUTPUT_KEYS = _keys("output_tokens")
CACHE_READ_KEYS = _keys("cached_input_tokens")
CACHE_WRITE_KEYS = _keys("cache_write_tokens")
REASONING_KEYS = _keys("reasoning_tokens")
USAGE_BLOBS = _keys("usage_blob")
COST_KEYS = _keys("cost")
TOOL_NAME_KEYS = _keys("tool_name")
TOOL_CALL_ID_KEYS = _keys("tool_call_id")
TOOL_ARGS_KEYS = _keys("tool_arguments")
TOOL_RESULT_KEYS = _keys("tool_result")
SESSION_KEYS = _keys("session_id")
USER_KEYS = _keys("user_id")
STATUS_MESSAGE_KEYS = _keys("status_message")
ERROR_WHEN = tuple(item for m in CONVENTIONS for item in getattr(m, "ERROR_WHEN", {}).items())
# (marker, argument names, result names), each list with the family's names first.
TOOL_IO_FIRST = tuple(
    (marker, (*args, *TOOL_ARGS_KEYS), (*results, *TOOL_RESULT_KEYS))
    for marker, args, results in (
        m.TOOL_IO_FIRST for m in CONVENTIONS if hasattr(m, "TOOL_IO_FIRST")
    )
)
AGENT_NAME_HOOKS = _hooks("agent_name")
TOOL_NAME_HOOKS = _hooks("tool_name")
PROVIDER_HOOKS = _hooks("provider")
COST_HOOKS = _hooks("reported_cost")
APPLY_HOOKS = _hooks("apply")


def _base_kind(a: dict[str, Any]) -> str:
    for key, table in CLASSIFIERS:
        v = a.get(key)
        if v is not None:
            kind = table.get(v) if type(v) is str else None
            if kind is not None:
                return kind
    for key in TOOL_MARKERS:
        if a.get(key):
            return TOOL
    for key in MODEL_MARKERS:
        if a.get(key):
            return LLM
    # An agent name and nothing else: a hand-made or Logfire/Pydantic AI agent run span.
    if any(a.get(k) for k in AGENT_MARKERS) and not any(k in a for k in AGENT_MARKER_EXCLUDED):
        return AGENT
    return OTHER


# The resource dict is shared by every span of a ResourceSpans block, so what we read
# from it is remembered for the last one seen (one tuple, replaced atomically).
_resource_memo: tuple[Any, str, str, str] = (None, "", "", "")
_NO_RESOURCE: dict[str, Any] = {}


def _resource_ids(r: dict[str, Any]) -> tuple[Any, str, str, str]:
    global _resource_memo
    memo = _resource_memo
    if memo[0] is r:
        return memo
    service = r.get("service.name")
    memo = (
        r,
        first_ident(r, SESSION_KEYS),
        first_ident(r, USER_KEYS),
        service if type(service) is str else text(service),
    )
    _resource_memo = memo
    return memo


def _usage(a: dict[str, Any], n: Neutral) -> None:
    inp = first_count(a, INPUT_KEYS, n)
    out = first_count(a, OUTPUT_KEYS, n)
    cache_read = first_count(a, CACHE_READ_KEYS, n)
    cache_write = first_count(a, CACHE_WRITE_KEYS, n)
    reasoning = first_count(a, REASONING_KEYS, n)
    for key in USAGE_BLOBS:
        if (
            inp is None
            or out is None
            or cache_read is None
            or cache_write is None
            or (reasoning is None)
        ):
            v = a.get(key)
            if v is not None:
                d = json_obj(v)
                if d:
                    blob = usage_blob(d)
                    if IMPLAUSIBLE in blob:
                        note_invalid(n, key)
                        blob = tuple(None if x == IMPLAUSIBLE else x for x in blob)
                    b_in, b_out, b_cr, b_cw, b_re = blob
                    inp = b_in if inp is None else inp
                    out = b_out if out is None else out
                    cache_read = b_cr if cache_read is None else cache_read
                    cache_write = b_cw if cache_write is None else cache_write
                    reasoning = b_re if reasoning is None else reasoning
    n.input_tokens = inp or 0
    n.output_tokens = out or 0
    n.cached_input_tokens = cache_read or 0
    n.cache_write_tokens = cache_write or 0
    n.reasoning_tokens = reasoning or 0
    tokens = n.input_tokens + n.output_tokens
    # A zero cost on a span with tokens is not taken as a price: OpenLIT reports 0 for
    # models missing from its pricing file. Such a span is priced by the server.
    for hook in COST_HOOKS:
        reported = hook(a, tokens, n)
        if reported is not None:
            n.reported_cost = reported
            return
    for k in COST_KEYS:
        reported = cost(a.get(k), n, k)
        if reported is not None and (reported or not tokens):
            n.reported_cost = reported
            return


def _tool(a: dict[str, Any], raw: RawSpan, n: Neutral) -> None:
    name = first_text(a, TOOL_NAME_KEYS)
    for hook in TOOL_NAME_HOOKS:
        if name:
            break
        name = hook(a, raw.name)
    n.tool_name = name
    n.tool_call_id = first_text(a, TOOL_CALL_ID_KEYS)
    for marker, args_keys, result_keys in TOOL_IO_FIRST:
        if marker in a:
            n.tool_arguments = first_text(a, args_keys)
            n.tool_result = first_text(a, result_keys)
            return
    n.tool_arguments = unwrap_call(first_text(a, TOOL_ARGS_KEYS))
    n.tool_result = first_text(a, TOOL_RESULT_KEYS)


def map_span(raw: RawSpan) -> Neutral:
    """One span of any supported convention → the neutral record (docs/semconv-mapping.md)."""
    a = raw.attributes
    n = Neutral()
    base = _base_kind(a)
    n.step = base

    # ---- agent, versions
    agent = first_text(a, AGENT_KEYS)
    if not agent and base == AGENT:
        for hook in AGENT_NAME_HOOKS:
            found = hook(a, raw.name)
            if found is not None:
                agent = found
                break
    n.agent = agent
    n.agent_version = first_text(a, AGENT_VERSION_KEYS)
    n.prompt_version = first_text(a, PROMPT_VERSION_KEYS)

    # ---- model, provider
    n.model = first_text(a, MODEL_KEYS)
    provider = first_text(a, PROVIDER_KEYS)
    for hook in PROVIDER_HOOKS:
        if provider:
            break
        provider = hook(a)
    n.provider = provider.strip().lower()

    # ---- tokens and reported cost: model calls only. Agent/workflow spans repeat the
    # aggregate of their children; keeping it would count every token twice.
    if base == LLM:
        _usage(a, n)
    # ---- tool: only on tool spans (an LLM span's gen_ai.tool.name is the tool it asked for)
    if base == TOOL:
        _tool(a, raw, n)

    # ---- session, user (per span; the trace's are chosen at ingest)
    _, r_session, r_user, n.service_name = _resource_ids(raw.resource or _NO_RESOURCE)
    n.session_id = first_ident(a, SESSION_KEYS) or r_session
    n.user_id = first_ident(a, USER_KEYS) or r_user

    # ---- status
    if raw.status_code == 2 or any(a.get(k) == v for k, v in ERROR_WHEN):
        n.status = "error"
    elif raw.status_code == 1:
        n.status = "ok"
    message = raw.status_message or first_text(a, STATUS_MESSAGE_KEYS)
    etype = text(a.get("error.type"))
    # Exception events only explain a failure: a handled exception is recorded on a
    # span that still succeeded (seen from the Node SDK's recordException).
    if n.status == "error" and raw.events and (not etype or not message):
        for ev in raw.events:
            if ev.get("name") == "exception":
                ea = ev.get("attributes") or {}
                etype = etype or text(ea.get("exception.type"))
                message = message or text(ea.get("exception.message"))
                break
    n.status_message = message
    n.error_type = error_type(etype)

    for hook in APPLY_HOOKS:
        hook(a, n)
    return n
