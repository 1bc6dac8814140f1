"""The Langfuse SDK (`langfuse.*`): observation types and names, usage and cost details,
prompt versions, levels and status messages, and its session/user lookup order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from traces.conventions.steps import AGENT, LLM, OTHER, POLICY, RETRIEVAL, TOOL
from traces.conventions.values import MAX_COST, Neutral, amount, cost, json_obj, note_invalid

TYPE = "langfuse.observation.type"
COST_DETAILS = "langfuse.observation.cost_details"
# A value missing here ("span", "event") says nothing: the next kind table decides.
TYPES = {
    "generation": LLM,
    "embedding": LLM,
    "agent": AGENT,
    "tool": TOOL,
    "retriever": RETRIEVAL,
    "guardrail": POLICY,
    "chain": OTHER,
    "evaluator": OTHER,
}
# Older operation names Langfuse accepts too.
OPERATIONS = {"completion": LLM, "generate": LLM, "embedding": LLM}
CLASSIFY = {TYPE: (10, TYPES), "gen_ai.operation.name": (40, OPERATIONS)}
# Its lookup order for session and user comes first: the metadata values are JSON-encoded
# ("\"abc\""), which the id reader unquotes.
KEYS = {
    "model": ((40, "langfuse.observation.model.name"),),
    "model_marker": ((50, "langfuse.observation.model.name"),),
    "prompt_version": ((20, "langfuse.observation.prompt.version"),),
    "usage_blob": ((10, "langfuse.observation.usage_details"),),
    "tool_arguments": ((60, "langfuse.observation.input"),),
    "tool_result": ((50, "langfuse.observation.output"),),
    "session_id": (
        (10, "langfuse.session.id"),
        (40, "langfuse.observation.metadata.langfuse_session_id"),
        (50, "langfuse.trace.metadata.langfuse_session_id"),
    ),
    "user_id": (
        (10, "langfuse.user.id"),
        (30, "langfuse.observation.metadata.langfuse_user_id"),
        (40, "langfuse.trace.metadata.langfuse_user_id"),
    ),
    "status_message": ((10, "langfuse.observation.status_message"),),
}
ERROR_WHEN = {"langfuse.observation.level": "ERROR"}


def agent_name(a: dict[str, Any], span_name: str) -> str | None:
    return span_name if a.get(TYPE) == "agent" else None


def tool_name(a: dict[str, Any], span_name: str) -> str:
    return span_name if a.get(TYPE) == "tool" else ""


def reported_cost(a: dict[str, Any], tokens: int, n: Neutral) -> Decimal | None:
    """cost_details' total, else the sum of its parts. All zeros with tokens is no price:
    Langfuse sends that on failed generations."""
    v = a.get(COST_DETAILS)
    if v is None:
        return None
    d = json_obj(v)
    if not d:
        return None
    value = cost(d.get("total"), n, COST_DETAILS)
    if value is None:
        parts = [c for c in map(amount, d.values()) if c is not None]
        value = sum(parts, Decimal(0)) if parts else None
        if value is not None and value > MAX_COST:
            note_invalid(n, COST_DETAILS)
            value = None
    if value is not None and (value or not tokens):
        return value
    return None
