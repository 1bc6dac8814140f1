"""The Vercel AI SDK's `ai.*` names: operation ids, usage, tool calls, telemetry metadata."""

from __future__ import annotations

from typing import Any

from traces.conventions.steps import LLM, OTHER, TOOL

OPERATIONS = {
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
CLASSIFY = {"ai.operationId": (60, OPERATIONS)}
KEYS = {
    "model": ((50, "ai.response.model"), (90, "ai.model.id")),
    "input_tokens": ((40, "ai.usage.inputTokens"), (50, "ai.usage.promptTokens")),
    "output_tokens": ((40, "ai.usage.outputTokens"), (50, "ai.usage.completionTokens")),
    "cached_input_tokens": ((50, "ai.usage.cachedInputTokens"),),
    "reasoning_tokens": ((60, "ai.usage.reasoningTokens"),),
    "tool_name": ((30, "ai.toolCall.name"),),
    "tool_call_id": ((40, "ai.toolCall.id"),),
    "tool_arguments": ((30, "ai.toolCall.args"),),
    "tool_result": ((20, "ai.toolCall.result"),),
    "session_id": ((60, "ai.telemetry.metadata.sessionId"),),
    "user_id": ((50, "ai.telemetry.metadata.userId"),),
}


def provider(a: dict[str, Any]) -> str:
    value = a.get("ai.model.provider")  # "openai.chat"
    return value.split(".", 1)[0] if type(value) is str else ""
