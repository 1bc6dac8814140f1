"""OpenInference (Arize Phoenix): span kinds, `llm.*` model and token names, costs,
tool and graph names, and `input.value` / `output.value`."""

from __future__ import annotations

from typing import Any

from traces.conventions.steps import AGENT, LLM, OTHER, POLICY, RETRIEVAL, TOOL
from traces.conventions.values import text

KIND = "openinference.span.kind"
KINDS = {
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
CLASSIFY = {KIND: (20, KINDS)}
KEYS = {
    "model": (
        (20, "llm.response.model_name"),
        (30, "llm.model_name"),  # the model the response names
        (70, "llm.request.model_name"),
        (80, "embedding.model_name"),
    ),
    "provider": ((30, "llm.provider"), (40, "llm.system")),
    "agent": ((20, "agent.name"),),
    "input_tokens": ((30, "llm.token_count.prompt"),),
    "output_tokens": ((30, "llm.token_count.completion"),),
    "cached_input_tokens": ((20, "llm.token_count.prompt_details.cache_read"),),
    "cache_write_tokens": ((20, "llm.token_count.prompt_details.cache_write"),),
    "reasoning_tokens": ((20, "llm.token_count.completion_details.reasoning"),),
    "cost": ((30, "llm.cost.total"),),
    "tool_name": ((20, "tool.name"),),
    "tool_call_id": ((20, "tool_call.id"), (30, "tool.id")),
    "tool_arguments": ((40, "input.value"),),
    "tool_result": ((30, "output.value"),),
    "session_id": ((20, "session.id"),),
    "model_marker": ((30, "llm.model_name"), (40, "llm.request.model_name")),
}
# On OpenInference spans these come first and are kept as sent: its GenAI dual-emit writes
# the tool's parameter *schema* into gen_ai.tool.call.arguments.
TOOL_IO_FIRST = (KIND, ("input.value",), ("output.value",))


def agent_name(a: dict[str, Any], span_name: str) -> str | None:
    if a.get(KIND) == "AGENT":
        return text(a.get("graph.node.name")) or span_name
    return None


def tool_name(a: dict[str, Any], span_name: str) -> str:
    return span_name if a.get(KIND) == "TOOL" else ""
