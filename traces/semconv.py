"""Span attributes of every convention → one neutral record.

CONTRACT (other modules rely on it; the implementation is filled in below):

    map_span(raw: RawSpan) -> Neutral
        Pure function, no database. Reads OTel GenAI (current and deprecated names),
        OpenInference, OpenLLMetry/Traceloop, OpenLIT, Langfuse SDK attributes, Logfire and
        our agentops.* namespace, in the order documented in docs/semconv-mapping.md.

    extract_messages(attributes: dict, events: list[dict]) -> Messages
        For display only (not stored separately): the input and output messages of a
        span, normalised to [{"role": str, "content": str, "tool_calls": [...]}, ...],
        plus finish_reasons. Never raises on odd payloads.

docs/semconv-mapping.md is the one description of the precedence implemented here;
change both together. map_span runs on the ingest hot path: every decision is a dict
lookup, and JSON is parsed only for the few blobs that need it when they are present.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from traces.otlp import RawSpan


@dataclass(slots=True)
class Neutral:
    step: str = "other"  # agent, llm, tool, retrieval, policy, escalation, other
    role: str = ""  # explicit storyline step from agentops.step, else ""
    agent: str = ""
    agent_version: str = ""
    prompt_version: str = ""
    model: str = ""  # response model first, then request model
    provider: str = ""
    input_tokens: int = 0  # includes cached input (OTel semantics)
    output_tokens: int = 0  # includes reasoning (OTel semantics)
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    reported_cost: Decimal | None = None  # cost the client reported, USD
    tool_name: str = ""
    tool_call_id: str = ""
    tool_arguments: str = ""  # JSON text when structured
    tool_result: str = ""
    session_id: str = ""
    user_id: str = ""
    status: str = "unset"  # unset, ok, error
    status_message: str = ""
    error_type: str = ""
    service_name: str = ""
    # Rollout and outcome dimensions (agentops.* namespace).
    phase: str = ""  # shadow, bounded, expanded, or human (a human-handled control run)
    intervened: bool = False  # a person took over or changed the outcome here
    kpis: dict[str, float] | None = None  # agentops.kpi.<name>
    evals: dict[str, float] | None = None  # agentops.eval.<name>
    # {attribute: count} of values present but beyond the plausibility limits below,
    # treated as absent (reported in the OTLP partial success).
    invalid: dict[str, int] | None = None


# Plausibility limits of the figures a span reports. Beyond them a value is not a
# measurement but garbage (or an attack on the sums): no model call has used 10^8 tokens,
# nor cost $10,000. Both keep every sum far inside its column; the arithmetic is in
# traces/ingest.py next to MAX_TRACE_COST.
MAX_TOKENS = 100_000_000
MAX_COST = Decimal(10_000)
_IMPLAUSIBLE = -1  # what _int returns for a number outside 0..MAX_TOKENS


def _invalid(n: Neutral, key: str) -> None:
    if n.invalid is None:
        n.invalid = {}
    n.invalid[key] = n.invalid.get(key, 0) + 1


PHASES = ("shadow", "bounded", "expanded", "human")
_TRUE = (True, "true", "True", "1", 1)


@dataclass(slots=True)
class Messages:
    input: list[dict[str, Any]] = field(default_factory=list)
    output: list[dict[str, Any]] = field(default_factory=list)
    system: str = ""
    finish_reasons: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ step kind

AGENT, LLM, TOOL, RETRIEVAL, POLICY, ESCALATION, OTHER = (
    "agent",
    "llm",
    "tool",
    "retrieval",
    "policy",
    "escalation",
    "other",
)
ROLES = frozenset({"intent", "plan", "tool", "result", "final", "policy", "escalation"})

# Each table maps one convention's value to a step kind. A value that is missing from
# a table (Langfuse "span", Traceloop "task", an unknown operation) says nothing, and
# the next convention in CLASSIFIERS decides.
_LANGFUSE_TYPE = {
    "generation": LLM,
    "embedding": LLM,
    "agent": AGENT,
    "tool": TOOL,
    "retriever": RETRIEVAL,
    "guardrail": POLICY,
    "chain": OTHER,
    "evaluator": OTHER,
}
_OPENINFERENCE_KIND = {
    "LLM": LLM,
    "EMBEDDING": LLM,
    "AGENT": AGENT,
    "TOOL": TOOL,
    "RETRIEVER": RETRIEVAL,
    "RERANKER": RETRIEVAL,
    "GUARDRAIL": POLICY,
    "CHAIN": OTHER,
    "EVALUATOR": OTHER,
    "PROMPT": OTHER,
}
_TRACELOOP_KIND = {"workflow": AGENT, "agent": AGENT, "tool": TOOL}
_OPERATION = {
    # OTel GenAI
    "chat": LLM,
    "text_completion": LLM,
    "generate_content": LLM,
    "embeddings": LLM,
    "retrieval": RETRIEVAL,
    "create_agent": AGENT,
    "invoke_agent": AGENT,
    "invoke_workflow": AGENT,
    "execute_tool": TOOL,
    # older / vendor values (Langfuse accepts these too; OpenLIT, Pydantic AI)
    "completion": LLM,
    "generate": LLM,
    "embedding": LLM,
    "model_request": LLM,
    "image": LLM,
    "audio": LLM,
    "agent": AGENT,
    "vectordb": RETRIEVAL,
}
_LLM_REQUEST_TYPE = {
    "chat": LLM,
    "completion": LLM,
    "embedding": LLM,
    "rerank": RETRIEVAL,
}
_VERCEL_OPERATION = {
    # The outer ai.generateText / ai.streamText spans repeat the usage of their
    # doGenerate / doStream children, so only the inner ones are model calls.
    "ai.generateText": OTHER,
    "ai.streamText": OTHER,
    "ai.generateObject": OTHER,
    "ai.streamObject": OTHER,
    "ai.embed": OTHER,
    "ai.embedMany": OTHER,
    "ai.generateText.doGenerate": LLM,
    "ai.streamText.doStream": LLM,
    "ai.generateObject.doGenerate": LLM,
    "ai.streamObject.doStream": LLM,
    "ai.embed.doEmbed": LLM,
    "ai.embedMany.doEmbed": LLM,
    "ai.toolCall": TOOL,
}
CLASSIFIERS: tuple[tuple[str, dict[str, str]], ...] = (
    ("langfuse.observation.type", _LANGFUSE_TYPE),
    ("openinference.span.kind", _OPENINFERENCE_KIND),
    ("traceloop.span.kind", _TRACELOOP_KIND),
    ("gen_ai.operation.name", _OPERATION),
    ("llm.request.type", _LLM_REQUEST_TYPE),
    ("ai.operationId", _VERCEL_OPERATION),
)
# Checked only after the tables above: OpenLIT puts gen_ai.tool.name on the chat span
# that *requested* the tool, and that span already has gen_ai.operation.name = chat.
_TOOL_MARKERS = ("gen_ai.tool.name", "gen_ai.tool.call.id")
_MODEL_MARKERS = (
    "gen_ai.request.model",
    "gen_ai.response.model",
    "llm.model_name",
    "llm.request.model_name",
    "langfuse.observation.model.name",
    "model",
)


def _base_kind(a: dict[str, Any]) -> str:
    for key, table in CLASSIFIERS:
        v = a.get(key)
        if v is not None:
            kind = table.get(v) if type(v) is str else None
            if kind is not None:
                return kind
    step = a.get("agentops.step")
    if step == "tool" or step == "result":
        return TOOL
    for key in _TOOL_MARKERS:
        if a.get(key):
            return TOOL
    for key in _MODEL_MARKERS:
        if a.get(key):
            return LLM
    # An agent name and nothing else: a hand-made or Logfire/Pydantic AI agent run span.
    # Not on OpenLLMetry spans: its SDK copies gen_ai.agent.name onto every span below
    # an @agent, HTTP client spans included.
    if (a.get("gen_ai.agent.name") or a.get("agent_name")) and (
        "traceloop.workflow.name" not in a and "traceloop.span.kind" not in a
    ):
        return AGENT
    return OTHER


# ------------------------------------------------------------------ attribute names

MODEL_KEYS = (
    "gen_ai.response.model",
    "llm.response.model_name",
    "llm.model_name",  # OpenInference: the model the response names
    "langfuse.observation.model.name",
    "ai.response.model",
    "gen_ai.request.model",
    "llm.request.model_name",
    "embedding.model_name",
    "ai.model.id",
    "model",
)
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
AGENT_KEYS = ("gen_ai.agent.name", "agent.name", "agent_name")
AGENT_VERSION_KEYS = ("gen_ai.agent.version", "agentops.agent.version")
PROMPT_VERSION_KEYS = ("agentops.prompt.version", "langfuse.observation.prompt.version")

INPUT_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "ai.usage.inputTokens",
    "ai.usage.promptTokens",
)
OUTPUT_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "ai.usage.outputTokens",
    "ai.usage.completionTokens",
)
CACHE_READ_KEYS = (
    "gen_ai.usage.cache_read.input_tokens",
    "llm.token_count.prompt_details.cache_read",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.prompt_tokens_details.cached_tokens",
    "ai.usage.cachedInputTokens",
)
CACHE_WRITE_KEYS = (
    "gen_ai.usage.cache_creation.input_tokens",
    "llm.token_count.prompt_details.cache_write",
    "gen_ai.usage.cache_creation_input_tokens",
)
REASONING_KEYS = (
    "gen_ai.usage.reasoning.output_tokens",
    "llm.token_count.completion_details.reasoning",
    "gen_ai.usage.reasoning_tokens",
    "llm.usage.reasoning_tokens",
    "gen_ai.usage.completion_tokens_details.reasoning_tokens",
    "ai.usage.reasoningTokens",
)
LANGFUSE_USAGE = "langfuse.observation.usage_details"
LOGFIRE_USAGE = "gen_ai.usage.raw"
LANGFUSE_COST = "langfuse.observation.cost_details"
COST_KEYS = ("gen_ai.usage.cost", "llm.cost.total")

TOOL_NAME_KEYS = ("gen_ai.tool.name", "tool.name", "ai.toolCall.name")
TOOL_CALL_ID_KEYS = ("gen_ai.tool.call.id", "tool_call.id", "tool.id", "ai.toolCall.id")
TOOL_ARGS_KEYS = (
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.args",
    "ai.toolCall.args",
    "input.value",
    "traceloop.entity.input",
    "langfuse.observation.input",
    "tool_arguments",  # Pydantic AI (Logfire) before it adopted gen_ai.tool.call.*
)
TOOL_RESULT_KEYS = (
    "gen_ai.tool.call.result",
    "ai.toolCall.result",
    "output.value",
    "traceloop.entity.output",
    "langfuse.observation.output",
    "tool_response",
)
OI_TOOL_ARGS_KEYS = ("input.value", *TOOL_ARGS_KEYS)
OI_TOOL_RESULT_KEYS = ("output.value", *TOOL_RESULT_KEYS)

# Langfuse's lookup order, then the other conventions' names. Langfuse metadata
# values are JSON-encoded ("\"abc\""); _id() unquotes them.
SESSION_KEYS = (
    "langfuse.session.id",
    "session.id",
    "gen_ai.conversation.id",
    "langfuse.observation.metadata.langfuse_session_id",
    "langfuse.trace.metadata.langfuse_session_id",
    "ai.telemetry.metadata.sessionId",
    "traceloop.association.properties.session_id",
    "session_id",  # Logfire baggage
)
USER_KEYS = (
    "langfuse.user.id",
    "user.id",
    "langfuse.observation.metadata.langfuse_user_id",
    "langfuse.trace.metadata.langfuse_user_id",
    "ai.telemetry.metadata.userId",
    "traceloop.association.properties.user_id",
    "user_id",  # Logfire baggage
    "enduser.id",
)
SCRUBBED = "[Scrubbed due to "  # Logfire's redaction of values whose key says "session"


# ------------------------------------------------------------------ value helpers


def _text(v: Any) -> str:
    """An attribute value as text: strings as they are, structures as JSON."""
    if type(v) is str:
        return v
    if v is None:
        return ""
    if isinstance(v, dict | list | tuple):
        try:
            return orjson.dumps(v).decode()
        except TypeError:  # non-str keys, or values orjson does not know
            return json.dumps(v, default=str)
    return str(v)


def _first_text(a: dict[str, Any], keys: tuple[str, ...]) -> str:
    for k in keys:
        if k in a:
            v = a[k]
            if v is not None and v != "":
                return v if type(v) is str else _text(v)
    return ""


def _id(v: Any) -> str:
    s = v.strip() if type(v) is str else _text(v)
    if len(s) > 1 and s[0] == '"' and s[-1] == '"':  # JSON-encoded (Langfuse metadata)
        s = s[1:-1]
    if s.startswith(SCRUBBED):
        return ""
    return s


def _first_id(a: dict[str, Any], keys: tuple[str, ...]) -> str:
    for k in keys:
        if k in a:
            s = _id(a[k])
            if s:
                return s
    return ""


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
        _first_id(r, SESSION_KEYS),
        _first_id(r, USER_KEYS),
        service if type(service) is str else _text(service),
    )
    _resource_memo = memo
    return memo


def _int(v: Any) -> int | None:
    """A token count from an int, a float or a numeric string; None if unusable,
    _IMPLAUSIBLE if a number outside 0..MAX_TOKENS (negative included)."""
    t = type(v)
    if t is int:
        return v if 0 <= v <= MAX_TOKENS else _IMPLAUSIBLE
    if t is float:
        if v != v:  # NaN
            return None
        return int(v) if 0 <= v <= MAX_TOKENS else _IMPLAUSIBLE
    if t is str:
        try:
            n = int(v)
        except ValueError:
            try:
                f = float(v)
            except ValueError:
                return None
            if f != f:
                return None
            return int(f) if 0 <= f <= MAX_TOKENS else _IMPLAUSIBLE
        return n if 0 <= n <= MAX_TOKENS else _IMPLAUSIBLE
    return None


def _first_int(a: dict[str, Any], keys: tuple[str, ...], n: Neutral) -> int | None:
    for k in keys:
        if k in a:
            v = _int(a[k])
            if v is not None:
                if v == _IMPLAUSIBLE:
                    _invalid(n, k)
                    continue
                return v
    return None


def _decimal(v: Any) -> Decimal | None:
    """A USD amount from a number or numeric string; None if unusable or negative."""
    if v is None or type(v) is bool:
        return None
    try:
        # Floats keep the 15 significant digits a double holds: OpenLIT's
        # 1.8599999999999998e-05 is 0.0000186.
        d = Decimal(f"{v:.15g}") if type(v) is float else Decimal(v)
    except (InvalidOperation, TypeError, ValueError):
        return None
    if not d.is_finite() or d < 0:
        return None
    return d


def _cost(v: Any, n: Neutral, key: str) -> Decimal | None:
    """A reported cost within 0..MAX_COST; a number beyond it is noted and dropped."""
    d = _decimal(v)
    if d is None:
        if v is not None and type(v) is not bool and _is_negative_number(v):
            _invalid(n, key)
        return None
    if d > MAX_COST:
        _invalid(n, key)
        return None
    return d


def _is_negative_number(v: Any) -> bool:
    try:
        return Decimal(f"{v:.15g}" if type(v) is float else v) < 0
    except (InvalidOperation, TypeError, ValueError):
        return False


def _json_obj(v: Any) -> dict[str, Any] | None:
    """A JSON object attribute (string or already structured), or None."""
    if type(v) is dict:
        return v
    if type(v) is str and v[:1] == "{":
        try:
            d = orjson.loads(v)
        except orjson.JSONDecodeError:
            return None
        return d if type(d) is dict else None
    return None


def _unwrap_call(text: str) -> str:
    """`{"args": [], "kwargs": {...}}` → the kwargs object as JSON.

    The Traceloop and Langfuse decorators record a Python call this way; with keyword
    arguments only, the kwargs object *is* the tool's argument object (what a tool
    contract validates). Positional arguments keep the wrapper: their names are unknown.
    """
    if not text.startswith('{"args": [], "kwargs": '):
        return text
    try:
        d = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if type(d) is dict and len(d) == 2 and type(d.get("kwargs")) is dict:
        return orjson.dumps(d["kwargs"]).decode()
    return text


def _error_type(v: str) -> str:
    # Python repr seen from openai-v2: "<class 'openai.RateLimitError'>".
    if v.startswith("<class '") and v.endswith("'>"):
        return v[8:-2]
    return v


# ------------------------------------------------------------------ usage blobs

# Keys of usage dictionaries: Langfuse usage_details (its own disjoint buckets, or the
# provider's raw usage the SDK passed through) and Logfire gen_ai.usage.raw (raw usage).
_BLOB_INPUT_RAW = ("prompt_tokens", "input_tokens", "promptTokens", "inputTokens")
_BLOB_OUTPUT_RAW = ("completion_tokens", "output_tokens", "completionTokens", "outputTokens")
_BLOB_CACHE_READ = (
    "input_cached_tokens",
    "cache_read_input_tokens",
    "input_cache_read",
    "cached_tokens",
    "cache_read_tokens",
)
_BLOB_CACHE_WRITE = (
    "input_cache_creation",
    "cache_creation_input_tokens",
    "input_cache_write",
    "cache_write_tokens",
)
_BLOB_REASONING = ("output_reasoning_tokens", "output_reasoning", "reasoning_tokens")
_BLOB_DETAILS_IN = ("prompt_tokens_details", "input_tokens_details", "input_token_details")
_BLOB_DETAILS_OUT = ("completion_tokens_details", "output_tokens_details", "output_token_details")


def _blob_first(d: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    """The first usable count; _IMPLAUSIBLE if the only numbers found were."""
    found = None
    for k in keys:
        v = d.get(k)
        if v is not None:
            n = _int(v)
            if n is not None:
                if n != _IMPLAUSIBLE:
                    return n
                found = n
    return found


def _blob_nested(d: dict[str, Any], parents: tuple[str, ...], keys: tuple[str, ...]) -> int | None:
    for p in parents:
        sub = d.get(p)
        if type(sub) is dict:
            n = _blob_first(sub, keys)
            if n is not None:
                return n
    return None


def _usage_blob(
    d: dict[str, Any],
) -> tuple[int | None, int | None, int | None, int | None, int | None]:
    """(input, output, cache_read, cache_write, reasoning) in OTel semantics.

    Raw provider usage (OpenAI `prompt_tokens`…) already includes cached input in the
    input count and reasoning in the output count. Langfuse's own keys (`input`,
    `output`, `input_cached_tokens`, `output_reasoning_tokens`…) are disjoint buckets
    priced separately, so they are added back together here.
    """
    cache_read = _blob_first(d, _BLOB_CACHE_READ)
    if cache_read is None:
        cache_read = _blob_nested(d, _BLOB_DETAILS_IN, ("cached_tokens", "cache_read"))
    cache_write = _blob_first(d, _BLOB_CACHE_WRITE)
    if cache_write is None:
        cache_write = _blob_nested(d, _BLOB_DETAILS_IN, ("cache_creation", "cache_write"))
    reasoning = _blob_first(d, _BLOB_REASONING)
    if reasoning is None:
        reasoning = _blob_nested(d, _BLOB_DETAILS_OUT, ("reasoning_tokens", "reasoning"))

    inp = _blob_first(d, _BLOB_INPUT_RAW)
    if inp is None:
        inp = _int(d.get("input"))
        if inp is not None and inp != _IMPLAUSIBLE:
            inp += max(cache_read or 0, 0) + max(cache_write or 0, 0)
    out = _blob_first(d, _BLOB_OUTPUT_RAW)
    if out is None:
        out = _int(d.get("output"))
        if out is not None and out != _IMPLAUSIBLE:
            out += max(reasoning or 0, 0)
    return inp, out, cache_read, cache_write, reasoning


def _reported_cost(a: dict[str, Any], tokens: int, n: Neutral) -> Decimal | None:
    """Langfuse cost_details total (or sum of its parts) → gen_ai.usage.cost → llm.cost.total.

    A zero cost on a span with tokens is not taken as a price: OpenLIT reports 0 for
    models missing from its pricing file and Langfuse sends all-zero cost_details on
    failed generations. Such a span is priced by the server (or marked unpriced).
    """
    v = a.get(LANGFUSE_COST)
    if v is not None:
        d = _json_obj(v)
        if d:
            cost = _cost(d.get("total"), n, LANGFUSE_COST)
            if cost is None:
                parts = [c for c in map(_decimal, d.values()) if c is not None]
                cost = sum(parts, Decimal(0)) if parts else None
                if cost is not None and cost > MAX_COST:
                    _invalid(n, LANGFUSE_COST)
                    cost = None
            if cost is not None and (cost or not tokens):
                return cost
    for k in COST_KEYS:
        cost = _cost(a.get(k), n, k)
        if cost is not None and (cost or not tokens):
            return cost
    return None


# ------------------------------------------------------------------ map_span


def map_span(raw: RawSpan) -> Neutral:
    """One span of any supported convention → the neutral record (docs/semconv-mapping.md)."""
    a = raw.attributes
    n = Neutral()

    base = _base_kind(a)
    step = a.get("agentops.step")
    if type(step) is str and step in ROLES:
        n.role = step
    # Our namespace names what no convention does: a policy gate or a hand-off to a
    # human. It wins over the conventions' kind, but the usage of an LLM-as-judge gate
    # still counts (see `base` below).
    if step == "escalation":
        n.step = ESCALATION
    elif step == "policy" or "agentops.policy.decision" in a or "agentops.policy.name" in a:
        n.step = POLICY
    else:
        n.step = base

    # ---- agent, versions
    agent = _first_text(a, AGENT_KEYS)
    if not agent and base == AGENT:
        if a.get("traceloop.span.kind") in ("agent", "workflow"):
            agent = _text(a.get("traceloop.entity.name"))
        elif a.get("openinference.span.kind") == "AGENT":
            agent = _text(a.get("graph.node.name")) or raw.name
        elif a.get("langfuse.observation.type") == "agent":
            agent = raw.name
    n.agent = agent
    n.agent_version = _first_text(a, AGENT_VERSION_KEYS)
    n.prompt_version = _first_text(a, PROMPT_VERSION_KEYS)

    # ---- model, provider
    n.model = _first_text(a, MODEL_KEYS)
    provider = _first_text(a, PROVIDER_KEYS)
    if not provider:
        vp = a.get("ai.model.provider")  # Vercel: "openai.chat"
        if type(vp) is str:
            provider = vp.split(".", 1)[0]
    n.provider = provider.strip().lower()

    # ---- tokens and reported cost: model calls only. Agent/workflow spans repeat the
    # aggregate of their children; keeping it would count every token twice.
    if base == LLM:
        inp = _first_int(a, INPUT_KEYS, n)
        out = _first_int(a, OUTPUT_KEYS, n)
        cache_read = _first_int(a, CACHE_READ_KEYS, n)
        cache_write = _first_int(a, CACHE_WRITE_KEYS, n)
        reasoning = _first_int(a, REASONING_KEYS, n)
        for key in (LANGFUSE_USAGE, LOGFIRE_USAGE):
            if (
                inp is None
                or out is None
                or cache_read is None
                or cache_write is None
                or reasoning is None
            ):
                v = a.get(key)
                if v is not None:
                    d = _json_obj(v)
                    if d:
                        blob = _usage_blob(d)
                        if _IMPLAUSIBLE in blob:
                            _invalid(n, key)
                            blob = tuple(None if x == _IMPLAUSIBLE else x for x in blob)
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
        n.reported_cost = _reported_cost(a, n.input_tokens + n.output_tokens, n)

    # ---- tool: only on tool spans (an LLM span's gen_ai.tool.name is the tool it asked for)
    if base == TOOL:
        name = _first_text(a, TOOL_NAME_KEYS)
        if not name:
            if a.get("traceloop.span.kind") == "tool":
                name = _text(a.get("traceloop.entity.name"))
            if not name and (
                a.get("langfuse.observation.type") == "tool"
                or a.get("openinference.span.kind") == "TOOL"
            ):
                name = raw.name
        n.tool_name = name
        n.tool_call_id = _first_text(a, TOOL_CALL_ID_KEYS)
        if "openinference.span.kind" in a:
            # OpenInference's GenAI dual-emit writes the tool's parameter *schema* into
            # gen_ai.tool.call.arguments; its own input.value holds the real arguments.
            n.tool_arguments = _first_text(a, OI_TOOL_ARGS_KEYS)
            n.tool_result = _first_text(a, OI_TOOL_RESULT_KEYS)
        else:
            n.tool_arguments = _unwrap_call(_first_text(a, TOOL_ARGS_KEYS))
            n.tool_result = _first_text(a, TOOL_RESULT_KEYS)

    # ---- session, user (per span; the trace takes the first non-empty)
    _, r_session, r_user, n.service_name = _resource_ids(raw.resource or _NO_RESOURCE)
    n.session_id = _first_id(a, SESSION_KEYS) or r_session
    n.user_id = _first_id(a, USER_KEYS) or r_user

    # ---- status
    if raw.status_code == 2 or a.get("langfuse.observation.level") == "ERROR":
        n.status = "error"
    elif raw.status_code == 1:
        n.status = "ok"
    message = raw.status_message or _text(a.get("langfuse.observation.status_message"))
    etype = _text(a.get("error.type"))
    # Exception events only explain a failure: a handled exception is recorded on a
    # span that still succeeded (seen from the Node SDK's recordException).
    if n.status == "error" and raw.events and (not etype or not message):
        for ev in raw.events:
            if ev.get("name") == "exception":
                ea = ev.get("attributes") or {}
                etype = etype or _text(ea.get("exception.type"))
                message = message or _text(ea.get("exception.message"))
                break
    n.status_message = message
    n.error_type = _error_type(etype)

    # ---- rollout phase, interventions, KPI and eval values
    phase = a.get("agentops.autonomy.phase")
    if type(phase) is str and phase.lower() in PHASES:
        n.phase = phase.lower()
    n.intervened = (
        a.get("agentops.human.intervened") in _TRUE
        or n.step == ESCALATION
        or a.get("agentops.policy.decision") == "escalate"
    )
    if "agentops.kpi." in _AGENTOPS_PREFIXES(a) or "agentops.eval." in _AGENTOPS_PREFIXES(a):
        n.kpis = _numbers_under(a, "agentops.kpi.")
        n.evals = _numbers_under(a, "agentops.eval.")
    return n


def _AGENTOPS_PREFIXES(a: dict[str, Any]) -> set[str]:
    """Which of our value namespaces occur on the span (one pass over the keys)."""
    found = set()
    for key in a:
        if key.startswith("agentops.kpi."):
            found.add("agentops.kpi.")
        elif key.startswith("agentops.eval."):
            found.add("agentops.eval.")
    return found


def _numbers_under(a: dict[str, Any], prefix: str) -> dict[str, float] | None:
    """{name: value} of numeric (or boolean, as 0/1) attributes named prefix + name."""
    out = {}
    for key, value in a.items():
        if not key.startswith(prefix) or len(key) == len(prefix):
            continue
        if type(value) is bool:
            out[key[len(prefix) :]] = 1.0 if value else 0.0
            continue
        number = _float(value)
        if number is not None:
            out[key[len(prefix) :]] = number
    return out or None


def _float(value: Any) -> float | None:
    if type(value) in (int, float):
        f = float(value)
    elif type(value) is str:
        try:
            f = float(value)
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) else None


# ------------------------------------------------------------------ extract_messages


def extract_messages(attributes: dict[str, Any], events: list[dict[str, Any]]) -> Messages:
    """Input/output messages of a span for display, from whichever shape it carries."""
    try:
        return _extract(
            attributes if isinstance(attributes, dict) else {},
            events if isinstance(events, list) else [],
        )
    except (RecursionError, MemoryError):  # a pathologically nested payload
        return Messages()


def _loads(v: Any) -> Any:
    """A JSON string → its value; anything else (or invalid JSON) unchanged."""
    if type(v) is str and v[:1] in ("[", "{"):
        try:
            return orjson.loads(v)
        except orjson.JSONDecodeError:
            return v
    return v


_MEDIA_PARTS = frozenset({"blob", "file", "uri", "image", "image_url", "input_audio", "audio"})


def _parts_text(parts: list[Any], calls: list[dict[str, Any]]) -> str:
    """OTel message parts / OpenAI or Anthropic content blocks → text; tool calls to `calls`."""
    texts = []
    for p in parts:
        if type(p) is str:
            texts.append(p)
            continue
        if type(p) is not dict:
            continue
        ptype = p.get("type")
        if ptype in ("tool_call", "tool_use", "function_call"):
            calls.append(
                _tool_call(
                    p.get("id") or p.get("call_id"),
                    p.get("name"),
                    p.get("arguments", p.get("input")),
                )
            )
        elif ptype in ("tool_call_response", "tool_result", "function_call_output"):
            resp = p.get("response", p.get("content", p.get("output")))
            texts.append(_content(resp, calls) if isinstance(resp, list) else _text(resp))
        elif ptype in ("reasoning", "thinking"):
            continue
        elif ptype in _MEDIA_PARTS:  # base64 or references: not text to show
            texts.append(f"[{ptype}]")
        else:
            t = p.get("content", p.get("text"))
            if t is not None:
                texts.append(_text(t))
    return "\n".join(texts)


def _content(v: Any, calls: list[dict[str, Any]]) -> str:
    if type(v) is str:
        return v
    if isinstance(v, list):
        return _parts_text(v, calls)
    return _text(v)


def _tool_call(cid: Any, name: Any, args: Any) -> dict[str, Any]:
    return {"id": _text(cid), "name": _text(name), "arguments": _text(args)}


def _openai_tool_calls(v: Any, calls: list[dict[str, Any]]) -> None:
    v = _loads(v)
    if not isinstance(v, list):
        return
    for tc in v:
        if type(tc) is not dict:
            continue
        fn = tc.get("function")
        if type(fn) is dict:
            calls.append(_tool_call(tc.get("id"), fn.get("name"), fn.get("arguments")))
        else:
            calls.append(_tool_call(tc.get("id"), tc.get("name"), tc.get("arguments")))


def _message(m: Any, default_role: str) -> dict[str, Any] | None:
    """One message of any known shape → {"role", "content", "tool_calls"}."""
    if type(m) is not dict:
        if m is None or m == "":
            return None
        return {"role": default_role, "content": _text(m), "tool_calls": []}
    calls: list[dict[str, Any]] = []
    role = m.get("role")
    if "parts" in m:  # OTel GenAI
        parts = m.get("parts")
        content = _parts_text(parts, calls) if isinstance(parts, list) else _text(parts)
    else:  # OpenAI / Anthropic / deprecated OTel event bodies
        content = _content(m.get("content", m.get("text")), calls)
        _openai_tool_calls(m.get("tool_calls"), calls)
    return {
        "role": role if type(role) is str and role else default_role,
        "content": content,
        "tool_calls": calls,
    }


def _is_message(m: Any) -> bool:
    return type(m) is dict and ("role" in m or "parts" in m or "content" in m)


def _as_text_message(v: Any, role: str) -> list[dict[str, Any]]:
    text = _text(v)
    return [{"role": role, "content": text, "tool_calls": []}] if text else []


def _messages(v: Any, default_role: str, finish: list[str] | None = None) -> list[dict]:
    """A message list, a single message, an OpenAI request/response body, or any other
    value, which becomes one message holding the value's text as it was sent."""
    parsed = _loads(v)
    if type(parsed) is dict:
        if isinstance(parsed.get("messages"), list):  # request bodies (OpenInference)
            parsed = parsed["messages"]
        elif isinstance(parsed.get("choices"), list):  # OpenAI response bodies
            out = []
            for c in parsed["choices"]:
                if type(c) is dict:
                    if finish is not None and type(c.get("finish_reason")) is str:
                        finish.append(c["finish_reason"])
                    msg = _message(c.get("message", c.get("text")), default_role)
                    if msg:
                        out.append(msg)
            return out
        elif _is_message(parsed):
            parsed = [parsed]
    if isinstance(parsed, list) and any(_is_message(m) for m in parsed):
        out = []
        for m in parsed:
            if finish is not None and type(m) is dict and type(m.get("finish_reason")) is str:
                finish.append(m["finish_reason"])
            msg = _message(m, default_role)
            if msg:
                out.append(msg)
        return out
    return _as_text_message(v, default_role)


def _system_text(v: Any) -> str:
    v = _loads(v)
    if isinstance(v, list):  # gen_ai.system_instructions: a list of parts
        return _parts_text(v, [])
    return _text(v)


def _indexed(attributes: dict[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    """`prefix.N.rest` attributes → {N: {rest: value}}."""
    out: dict[int, dict[str, Any]] = {}
    plen = len(prefix)
    for k, v in attributes.items():
        if type(k) is str and k.startswith(prefix):
            num, _, rest = k[plen:].partition(".")
            if num.isdigit() and rest:
                out.setdefault(int(num), {})[rest] = v
    return out


def _flat_tool_calls(
    fields: dict[str, Any], prefix: str, id_key: str, name_key: str, args_key: str
):
    calls = []
    for _, tc in sorted(_indexed(fields, prefix).items()):
        calls.append(_tool_call(tc.get(id_key), tc.get(name_key), tc.get(args_key)))
    return calls


def _openinference(attributes: dict[str, Any], prefix: str, role: str) -> list[dict]:
    out = []
    for _, f in sorted(_indexed(attributes, prefix).items()):
        content = f.get("message.content")
        if content is None:  # multimodal: message.contents.N.message_content.text
            texts = [
                _text(c.get("message_content.text"))
                for _, c in sorted(_indexed(f, "message.contents.").items())
                if c.get("message_content.text") is not None
            ]
            content = "\n".join(texts)
        r = f.get("message.role")
        out.append(
            {
                "role": r if type(r) is str and r else role,
                "content": _text(content),
                "tool_calls": _flat_tool_calls(
                    f,
                    "message.tool_calls.",
                    "tool_call.id",
                    "tool_call.function.name",
                    "tool_call.function.arguments",
                ),
            }
        )
    return out


def _legacy(attributes: dict[str, Any], prefix: str, role: str, finish: list[str]) -> list[dict]:
    out = []
    for _, f in sorted(_indexed(attributes, prefix).items()):
        if type(f.get("finish_reason")) is str:
            finish.append(f["finish_reason"])
        calls = _flat_tool_calls(f, "tool_calls.", "id", "name", "arguments")
        content = f.get("content")
        if not calls and type(content) is str and content[:1] == "[":
            inner: list[dict[str, Any]] = []
            text = _content(_loads(content), inner)
            if inner or text != content:
                content, calls = text, inner
        r = f.get("role")
        out.append(
            {
                "role": r if type(r) is str and r else role,
                "content": _text(content),
                "tool_calls": calls,
            }
        )
    return out


_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def _event_message(ea: dict[str, Any], role: str) -> dict[str, Any]:
    calls: list[dict[str, Any]] = []
    content = _loads(ea.get("content"))
    text = _parts_text(content, calls) if isinstance(content, list) else _text(content)
    _openai_tool_calls(ea.get("tool_calls"), calls)
    r = ea.get("role")
    return {"role": r if type(r) is str and r else role, "content": text, "tool_calls": calls}


def _extract(a: dict[str, Any], events: list[Any]) -> Messages:
    m = Messages()
    finish: list[str] = []

    # 1. Current OTel GenAI attributes.
    if a.get("gen_ai.input.messages") is not None:
        m.input = _messages(a["gen_ai.input.messages"], "user")
    if a.get("gen_ai.output.messages") is not None:
        m.output = _messages(a["gen_ai.output.messages"], "assistant", finish)
    if a.get("gen_ai.system_instructions") is not None:
        m.system = _system_text(a["gen_ai.system_instructions"])

    # 2. Events: the current inference details event, or the deprecated per-message ones.
    ev_in: list[dict[str, Any]] = []
    ev_out: list[dict[str, Any]] = []
    for ev in events:
        if type(ev) is not dict:
            continue
        name = ev.get("name")
        ea = ev.get("attributes")
        if type(ea) is not dict:
            continue
        if name == "gen_ai.client.inference.operation.details":
            if not m.input and ea.get("gen_ai.input.messages") is not None:
                m.input = _messages(ea["gen_ai.input.messages"], "user")
            if not m.output and ea.get("gen_ai.output.messages") is not None:
                m.output = _messages(ea["gen_ai.output.messages"], "assistant", finish)
            if not m.system and ea.get("gen_ai.system_instructions") is not None:
                m.system = _system_text(ea["gen_ai.system_instructions"])
        elif name in _EVENT_ROLES:
            ev_in.append(_event_message(ea, _EVENT_ROLES[name]))
        elif name == "gen_ai.choice":
            if type(ea.get("finish_reason")) is str:
                finish.append(ea["finish_reason"])
            msg = _loads(ea.get("message"))
            if type(msg) is dict:
                msg = _message(msg, "assistant")
                if msg:
                    ev_out.append(msg)
            else:
                ev_out.append(_event_message(ea, "assistant"))
    if not m.input and ev_in:
        m.input = ev_in
    if not m.output and ev_out:
        m.output = ev_out

    # 3. Flattened and vendor attributes, only where nothing better was found.
    if not m.input or not m.output:
        if _has_prefix(a, "llm.input_messages.") or _has_prefix(a, "llm.output_messages."):
            if not m.input:
                m.input = _openinference(a, "llm.input_messages.", "user")
            if not m.output:
                m.output = _openinference(a, "llm.output_messages.", "assistant")
        if not m.input:
            m.input = _legacy(a, "gen_ai.prompt.", "user", [])
        if not m.output:
            m.output = _legacy(a, "gen_ai.completion.", "assistant", finish)
        for in_key, out_key in (
            ("gen_ai.prompt", "gen_ai.completion"),
            ("input.value", "output.value"),
            ("traceloop.entity.input", "traceloop.entity.output"),
            ("langfuse.observation.input", "langfuse.observation.output"),
            ("langfuse.trace.input", "langfuse.trace.output"),
        ):
            if not m.input and a.get(in_key) not in (None, ""):
                m.input = _messages(a[in_key], "user")
            if not m.output and a.get(out_key) not in (None, ""):
                m.output = _messages(a[out_key], "assistant", finish)

    # System instructions sent as messages (OpenAI shape, deprecated events) are moved
    # out of the input; OpenLIT sends them both ways, so a copy is not repeated.
    systems = [x["content"] for x in m.input if x["role"] in ("system", "developer")]
    if systems:
        m.input = [x for x in m.input if x["role"] not in ("system", "developer")]
        extra = [t for t in systems if t and t not in m.system]
        if extra:
            m.system = "\n".join([m.system, *extra] if m.system else extra)

    reasons = a.get("gen_ai.response.finish_reasons")
    if reasons is None:
        reasons = a.get("llm.finish_reason")  # OpenInference
    reasons = _loads(reasons)  # Logfire sends the list as a JSON string
    if isinstance(reasons, list) and reasons:
        m.finish_reasons = [_text(r) for r in reasons]
    elif type(reasons) is str and reasons:
        m.finish_reasons = [reasons]
    else:
        m.finish_reasons = finish
    return m


def _has_prefix(a: dict[str, Any], prefix: str) -> bool:
    return any(type(k) is str and k.startswith(prefix) for k in a)
