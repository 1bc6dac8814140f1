"""Logfire and Pydantic AI: the operation name of a model request, the agent run span
(`agent_name`), the provider's raw usage object, tool spans written before Pydantic AI
adopted `gen_ai.tool.call.*`, and session/user baggage."""

from __future__ import annotations

from traces.conventions.steps import LLM

# Logfire's redaction of any value whose key says "session": counts as absent.
SCRUBBED = "[Scrubbed due to "

OPERATIONS = {"model_request": LLM}
CLASSIFY = {"gen_ai.operation.name": (40, OPERATIONS)}
KEYS = {
    "agent": ((30, "agent_name"),),
    "agent_marker": ((20, "agent_name"),),
    "model": ((100, "model"),),
    "model_marker": ((60, "model"),),
    "usage_blob": ((20, "gen_ai.usage.raw"),),
    "tool_arguments": ((70, "tool_arguments"),),
    "tool_result": ((60, "tool_response"),),
    "session_id": ((80, "session_id"),),
    "user_id": ((70, "user_id"),),
}
