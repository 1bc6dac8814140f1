"""OpenLIT: its extra operation names, cost per call, legacy token detail names and the
requested tool's arguments."""

from __future__ import annotations

from traces.conventions.steps import AGENT, LLM, RETRIEVAL

OPERATIONS = {"image": LLM, "audio": LLM, "agent": AGENT, "vectordb": RETRIEVAL}
CLASSIFY = {"gen_ai.operation.name": (40, OPERATIONS)}
KEYS = {
    "cached_input_tokens": ((40, "gen_ai.usage.prompt_tokens_details.cached_tokens"),),
    "reasoning_tokens": ((50, "gen_ai.usage.completion_tokens_details.reasoning_tokens"),),
    "cost": ((20, "gen_ai.usage.cost"),),
    "tool_arguments": ((20, "gen_ai.tool.args"),),
}
