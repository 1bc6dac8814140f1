"""OpenTelemetry GenAI semantic conventions, current and deprecated names (also what
OpenLLMetry, OpenLIT and Logfire send for the standard fields), and the general
registry's `user.id` / `enduser.id`."""

from __future__ import annotations

from traces.conventions.steps import AGENT, LLM, RETRIEVAL, TOOL

OPERATIONS = {
    "chat": LLM,
    "text_completion": LLM,
    "generate_content": LLM,
    "embeddings": LLM,
    "retrieval": RETRIEVAL,
    "create_agent": AGENT,
    "invoke_agent": AGENT,
    "invoke_workflow": AGENT,
    "execute_tool": TOOL,
}
CLASSIFY = {"gen_ai.operation.name": (40, OPERATIONS)}
KEYS = {
    "model": ((10, "gen_ai.response.model"), (60, "gen_ai.request.model")),
    "provider": ((10, "gen_ai.provider.name"), (20, "gen_ai.system")),
    "agent": ((10, "gen_ai.agent.name"),),
    "agent_version": ((10, "gen_ai.agent.version"),),
    "input_tokens": ((10, "gen_ai.usage.input_tokens"), (20, "gen_ai.usage.prompt_tokens")),
    "output_tokens": (
        (10, "gen_ai.usage.output_tokens"),
        (20, "gen_ai.usage.completion_tokens"),
    ),
    "cached_input_tokens": ((10, "gen_ai.usage.cache_read.input_tokens"),),
    "cache_write_tokens": ((10, "gen_ai.usage.cache_creation.input_tokens"),),
    "reasoning_tokens": ((10, "gen_ai.usage.reasoning.output_tokens"),),
    "tool_name": ((10, "gen_ai.tool.name"),),
    "tool_call_id": ((10, "gen_ai.tool.call.id"),),
    "tool_arguments": ((10, "gen_ai.tool.call.arguments"),),
    "tool_result": ((10, "gen_ai.tool.call.result"),),
    "session_id": ((30, "gen_ai.conversation.id"),),
    "user_id": ((20, "user.id"), (80, "enduser.id")),
    # Checked after every kind table: OpenLIT puts gen_ai.tool.name on the chat span that
    # *requested* the tool, and that span already has gen_ai.operation.name = chat.
    "tool_marker": ((10, "gen_ai.tool.name"), (20, "gen_ai.tool.call.id")),
    "model_marker": ((10, "gen_ai.request.model"), (20, "gen_ai.response.model")),
    "agent_marker": ((10, "gen_ai.agent.name"),),
}
