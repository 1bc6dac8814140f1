"""OpenLLMetry (Traceloop): `traceloop.*` span kinds and entity names and inputs, the old
`llm.request.type`, and the non-standard token names of its releases."""

from __future__ import annotations

from typing import Any

from traces.conventions.steps import AGENT, LLM, RETRIEVAL, TOOL
from traces.conventions.values import text

SPAN_KIND = "traceloop.span.kind"
ENTITY_NAME = "traceloop.entity.name"
CLASSIFY = {
    SPAN_KIND: (30, {"workflow": AGENT, "agent": AGENT, "tool": TOOL}),
    "llm.request.type": (
        50,
        {"chat": LLM, "completion": LLM, "embedding": LLM, "rerank": RETRIEVAL},
    ),
}
KEYS = {
    "cached_input_tokens": ((30, "gen_ai.usage.cache_read_input_tokens"),),
    "cache_write_tokens": ((30, "gen_ai.usage.cache_creation_input_tokens"),),
    "reasoning_tokens": ((30, "gen_ai.usage.reasoning_tokens"), (40, "llm.usage.reasoning_tokens")),
    "tool_arguments": ((50, "traceloop.entity.input"),),
    "tool_result": ((40, "traceloop.entity.output"),),
    "session_id": ((70, "traceloop.association.properties.session_id"),),
    "user_id": ((60, "traceloop.association.properties.user_id"),),
    # Its SDK copies gen_ai.agent.name onto every span below an @agent, HTTP client spans
    # included: an agent name alone does not make such a span an agent run.
    "agent_marker_excluded": ((10, "traceloop.workflow.name"), (20, SPAN_KIND)),
}


def agent_name(a: dict[str, Any], span_name: str) -> str | None:
    if a.get(SPAN_KIND) in ("agent", "workflow"):
        return text(a.get(ENTITY_NAME))
    return None


def tool_name(a: dict[str, Any], span_name: str) -> str:
    return text(a.get(ENTITY_NAME)) if a.get(SPAN_KIND) == "tool" else ""
