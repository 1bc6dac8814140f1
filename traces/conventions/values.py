"""Reading attribute values the way every convention needs: text, ids, counts, money,
JSON objects and provider usage blobs. Pure functions, no convention names besides the
usage-blob keys (raw provider usage and Langfuse's own buckets share one reader)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from traces.conventions.logfire import SCRUBBED

# Plausibility limits of the figures a span reports. Beyond them a value is not a
# measurement but garbage (or an attack on the sums): no model call has used 10^8 tokens,
# nor cost $10,000. Both keep every sum far inside its column; the arithmetic is in
# traces/ingest.py next to MAX_TRACE_COST.
MAX_TOKENS = 100_000_000
MAX_COST = Decimal(10_000)
IMPLAUSIBLE = -1  # what count returns for a number outside 0..MAX_TOKENS


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
    # {attribute: count} of values present but beyond the plausibility limits above,
    # treated as absent (reported in the OTLP partial success).
    invalid: dict[str, int] | None = None


def note_invalid(n: Neutral, key: str) -> None:
    if n.invalid is None:
        n.invalid = {}
    n.invalid[key] = n.invalid.get(key, 0) + 1


def text(v: Any) -> str:
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


def first_text(a: dict[str, Any], keys: tuple[str, ...]) -> str:
    for k in keys:
        if k in a:
            v = a[k]
            if v is not None and v != "":
                return v if type(v) is str else text(v)
    return ""


def ident(v: Any) -> str:
    s = v.strip() if type(v) is str else text(v)
    if len(s) > 1 and s[0] == '"' and s[-1] == '"':  # JSON-encoded (Langfuse metadata)
        s = s[1:-1]
    if s.startswith(SCRUBBED):
        return ""
    return s


def first_ident(a: dict[str, Any], keys: tuple[str, ...]) -> str:
    for k in keys:
        if k in a:
            s = ident(a[k])
            if s:
                return s
    return ""


def count(v: Any) -> int | None:
    """A token count from an int, a float or a numeric string; None if unusable,
    IMPLAUSIBLE if a number outside 0..MAX_TOKENS (negative included)."""
    t = type(v)
    if t is int:
        return v if 0 <= v <= MAX_TOKENS else IMPLAUSIBLE
    if t is float:
        if v != v:  # NaN
            return None
        return int(v) if 0 <= v <= MAX_TOKENS else IMPLAUSIBLE
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
            return int(f) if 0 <= f <= MAX_TOKENS else IMPLAUSIBLE
        return n if 0 <= n <= MAX_TOKENS else IMPLAUSIBLE
    return None


def first_count(a: dict[str, Any], keys: tuple[str, ...], n: Neutral) -> int | None:
    for k in keys:
        if k in a:
            v = count(a[k])
            if v is not None:
                if v == IMPLAUSIBLE:
                    note_invalid(n, k)
                    continue
                return v
    return None


def amount(v: Any) -> Decimal | None:
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


def cost(v: Any, n: Neutral, key: str) -> Decimal | None:
    """A reported cost within 0..MAX_COST; a number beyond it is noted and dropped."""
    d = amount(v)
    if d is None:
        if v is not None and type(v) is not bool and _is_negative_number(v):
            note_invalid(n, key)
        return None
    if d > MAX_COST:
        note_invalid(n, key)
        return None
    return d


def _is_negative_number(v: Any) -> bool:
    try:
        return Decimal(f"{v:.15g}" if type(v) is float else v) < 0
    except (InvalidOperation, TypeError, ValueError):
        return False


def json_obj(v: Any) -> dict[str, Any] | None:
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


def unwrap_call(text: str) -> str:
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


def error_type(v: str) -> str:
    # Python repr seen from openai-v2: "<class 'openai.RateLimitError'>".
    if v.startswith("<class '") and v.endswith("'>"):
        return v[8:-2]
    return v


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
    """The first usable count; IMPLAUSIBLE if the only numbers found were."""
    found = None
    for k in keys:
        v = d.get(k)
        if v is not None:
            n = count(v)
            if n is not None:
                if n != IMPLAUSIBLE:
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


def usage_blob(
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
        inp = count(d.get("input"))
        if inp is not None and inp != IMPLAUSIBLE:
            inp += max(cache_read or 0, 0) + max(cache_write or 0, 0)
    out = _blob_first(d, _BLOB_OUTPUT_RAW)
    if out is None:
        out = count(d.get("output"))
        if out is not None and out != IMPLAUSIBLE:
            out += max(reasoning or 0, 0)
    return inp, out, cache_read, cache_write, reasoning
