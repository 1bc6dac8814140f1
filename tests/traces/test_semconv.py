"""Convention mapping (traces/conventions/) against payloads recorded from real clients.

The fixtures under tests/fixtures/ are OTLP request bodies as the client libraries sent
them (see tests/fixtures/README.md); they are decoded with traces.otlp exactly as the
endpoint does. No database: plain functions.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from traces.conventions import Neutral, map_span
from traces.otlp import RawSpan, decode_json, decode_protobuf
from traces.timeline_messages import Messages, extract_messages

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MODEL = "gpt-4o-mini-2024-07-18"
ORDER_ARGS = {"order_id": "A-1001"}
ORDER_RESULT = {"order_id": "A-1001", "status": "shipped", "eta": "Friday"}


def load(name: str) -> list[RawSpan]:
    path = FIXTURES / name
    body = path.read_bytes()
    if name.endswith(".gz"):
        body = gzip.decompress(body)
    return decode_json(body) if ".json" in name else decode_protobuf(body)


def mapped(name: str) -> list[tuple[RawSpan, Neutral]]:
    return [(raw, map_span(raw)) for raw in load(name)]


def steps(pairs) -> Counter:
    return Counter(n.step for _, n in pairs)


def only(pairs, pred) -> tuple[RawSpan, Neutral]:
    found = [(r, n) for r, n in pairs if pred(r, n)]
    assert len(found) == 1, [r.name for r, _ in found]
    return found[0]


def llm_calls(pairs) -> list[Neutral]:
    """The two chat calls of the recorded agent loop (plan, final answer): the first
    model calls, in start order (the runs add a priced gateway call after them)."""
    calls = [(r, n) for r, n in pairs if n.step == "llm" and n.model == MODEL]
    return [n for r, n in sorted(calls, key=lambda p: p[0].start_ns)][:2]


def span(
    attributes=None, *, name="s", status_code=0, status_message="", events=None, resource=None
):
    return RawSpan(
        trace_id="0" * 31 + "1",
        span_id="0" * 15 + "1",
        parent_span_id="",
        name=name,
        kind=1,
        start_ns=1,
        end_ns=2,
        attributes=attributes or {},
        events=events or [],
        links=[],
        status_code=status_code,
        status_message=status_message,
        resource=resource if resource is not None else {"service.name": "svc"},
        scope={"name": "test", "version": ""},
    )


def m(attributes, **kw) -> Neutral:
    return map_span(span(attributes, **kw))


# ------------------------------------------------------------------ recorded fixtures


def test_every_fixture_decodes_and_maps():
    names = [
        p.name
        for p in FIXTURES.iterdir()
        if p.is_file() and p.name.endswith((".pb", ".json", ".gz"))
    ]
    assert len(names) >= 9
    for name in names:
        pairs = mapped(name)
        assert pairs, name
        for raw, n in pairs:
            assert n.step in {"agent", "llm", "tool", "retrieval", "policy", "escalation", "other"}
            assert n.input_tokens >= n.cached_input_tokens
            assert n.output_tokens >= n.reasoning_tokens
            msgs = extract_messages(raw.attributes, raw.events)
            assert isinstance(msgs, Messages)


def test_it_reads_otel_genai_current_names():
    pairs = mapped("otel_genai_current.pb")
    assert steps(pairs) == {"llm": 3, "tool": 1, "agent": 2}

    plan, final = llm_calls(pairs)
    assert (plan.provider, plan.input_tokens, plan.output_tokens) == ("openai", 52, 18)
    assert (final.input_tokens, final.output_tokens) == (87, 14)
    assert plan.service_name == "support-bot-otel-current"

    _, tool = only(pairs, lambda r, n: n.step == "tool")
    assert tool.tool_name == "get_order_status"
    assert tool.tool_call_id == "call_0001"
    assert json.loads(tool.tool_arguments) == ORDER_ARGS
    assert json.loads(tool.tool_result) == ORDER_RESULT

    _, agent = only(pairs, lambda r, n: n.step == "agent" and n.status != "error")
    assert agent.agent == "support-agent"
    assert agent.agent_version == "1.4.0"
    assert agent.model == "gpt-4o-mini"  # only a request model on the agent span
    assert (agent.session_id, agent.user_id) == ("conv-otel-1", "user-42")


def test_it_keeps_tokens_off_agent_spans_so_totals_count_once():
    raw_agent, agent = only(
        mapped("otel_genai_current.pb"),
        lambda r, n: n.step == "agent" and n.status != "error",
    )
    # The agent span repeats its children's usage (139 / 32) …
    assert raw_agent.attributes["gen_ai.usage.input_tokens"] == 139
    # … which must not be counted again.
    assert (agent.input_tokens, agent.output_tokens, agent.reported_cost) == (0, 0, None)
    total = sum(n.input_tokens for _, n in mapped("otel_genai_current.pb"))
    assert total == 52 + 87


def test_it_normalises_the_python_repr_error_type():
    pairs = mapped("otel_genai_current.pb")
    _, failed = only(pairs, lambda r, n: n.step == "llm" and n.status == "error")
    assert failed.error_type == "openai.RateLimitError"
    assert failed.status_message.startswith("Error code: 429")
    assert failed.model == "rate-limited"
    _, run = only(pairs, lambda r, n: n.step == "agent" and n.status == "error")
    assert run.error_type == "openai.RateLimitError"


def test_it_reads_otel_genai_content_attributes():
    raw, _ = only(
        mapped("otel_genai_current.pb"),
        lambda r, n: n.step == "llm" and n.output_tokens == 18,
    )
    msgs = extract_messages(raw.attributes, raw.events)
    assert msgs.system == "You are a support agent. Use tools to look up orders."
    assert msgs.input == [
        {"role": "user", "content": "Where is my order A-1001?", "tool_calls": []}
    ]
    assert msgs.output[0]["tool_calls"] == [
        {"id": "call_0001", "name": "get_order_status", "arguments": '{"order_id":"A-1001"}'}
    ]
    assert msgs.finish_reasons == ["tool_calls"]


def test_it_reads_otel_genai_deprecated_names():
    pairs = mapped("otel_genai_deprecated.pb")
    assert steps(pairs) == {"llm": 3, "tool": 1, "agent": 1}
    plan, _final = llm_calls(pairs)
    assert plan.provider == "openai"  # from gen_ai.system only
    assert (plan.input_tokens, plan.output_tokens) == (52, 18)
    _, failed = only(pairs, lambda r, n: n.status == "error")
    assert failed.error_type == "RateLimitError"
    _, agent = only(pairs, lambda r, n: n.step == "agent")
    assert (agent.agent, agent.session_id) == ("support-agent", "sess-deprecated-1")


def test_it_reads_the_agentops_namespace():
    pairs = mapped("agentops.pb")
    by_name = {r.name: n for r, n in pairs}

    intent = by_name["intent"]
    assert (intent.step, intent.role, intent.prompt_version) == ("other", "intent", "v3")

    gate = by_name["policy refund_limit"]
    assert (gate.step, gate.role) == ("policy", "policy")

    # agentops.policy.* alone makes a policy step; a deny is reported as an error.
    deny = by_name["refund gate"]
    assert (deny.step, deny.role, deny.status) == ("policy", "", "error")
    assert deny.status_message == "refund above the 200 USD limit"

    escalation = by_name["escalate to human"]
    assert (escalation.step, escalation.role) == ("escalation", "escalation")

    tool = by_name["execute_tool get_order_status"]
    assert (tool.step, tool.role, tool.tool_name) == ("tool", "tool", "get_order_status")

    assert by_name["final"].role == "final"

    root = by_name["support run"]
    assert (root.step, root.agent, root.agent_version) == ("agent", "refund-agent", "2026.11.1")
    assert (root.session_id, root.user_id) == ("conv-agentops-1", "user-7")
    assert steps(pairs)["llm"] == 2


def test_it_reads_openinference_token_counts():
    pairs = mapped("openinference.pb")
    plan, final = llm_calls(pairs)
    assert (plan.input_tokens, plan.output_tokens) == (52, 18)
    assert (plan.cached_input_tokens, plan.reasoning_tokens) == (16, 4)
    assert (final.input_tokens, final.cached_input_tokens) == (87, 64)
    assert (plan.model, plan.provider, plan.status) == (MODEL, "openai", "ok")
    assert (plan.session_id, plan.user_id) == ("sess-oi-1", "user-oi-9")


def test_it_reads_openinference_reported_cost():
    pairs = mapped("openinference.pb")
    _raw, gateway = only(pairs, lambda r, n: r.name == "gateway summarize")
    assert gateway.step == "llm"
    assert gateway.reported_cost == Decimal("0.0000075")
    assert (gateway.input_tokens, gateway.output_tokens) == (30, 5)


def test_it_reads_openinference_agent_and_tool_spans():
    pairs = mapped("openinference.pb")
    assert steps(pairs) == {"llm": 3, "tool": 2, "agent": 1}
    _, agent = only(pairs, lambda r, n: n.step == "agent")
    assert agent.agent == "support-agent"  # the AGENT span's name
    _, tool = only(pairs, lambda r, n: n.tool_name == "get_order_status")
    assert json.loads(tool.tool_arguments) == ORDER_ARGS
    assert json.loads(tool.tool_result) == ORDER_RESULT
    _, failed = only(pairs, lambda r, n: n.tool_name == "refund_order")
    assert (failed.status, failed.error_type) == ("error", "PermissionError")
    assert "needs approval" in failed.status_message


def test_it_reads_openinference_flattened_messages():
    raw, _ = only(
        mapped("openinference.pb"), lambda r, n: n.step == "llm" and n.output_tokens == 14
    )
    msgs = extract_messages(raw.attributes, raw.events)
    assert [x["role"] for x in msgs.input] == ["user", "assistant", "tool"]
    assert msgs.input[1]["tool_calls"][0]["name"] == "get_order_status"
    assert msgs.output[0]["content"] == "Your order A-1001 has shipped and arrives on Friday."
    assert msgs.system.startswith("You are a support agent")
    assert msgs.finish_reasons == ["stop"]


def test_it_counts_openinference_dual_emit_tokens_once():
    pairs = mapped("openinference_genai.pb")
    plan, _final = llm_calls(pairs)
    raw_plan = next(r for r, n in pairs if n is plan)
    assert raw_plan.attributes["gen_ai.usage.input_tokens"] == 52
    assert raw_plan.attributes["llm.token_count.prompt"] == 52
    assert (plan.input_tokens, plan.cached_input_tokens, plan.reasoning_tokens) == (52, 16, 4)
    assert sum(n.input_tokens for _, n in pairs) == 52 + 87 + 30


def test_it_prefers_openinference_tool_input_over_its_genai_schema_copy():
    _, tool = only(mapped("openinference_genai.pb"), lambda r, n: n.tool_name == "get_order_status")
    # OpenInference's GenAI dual-emit puts the parameter schema in gen_ai.tool.call.arguments.
    assert json.loads(tool.tool_arguments) == ORDER_ARGS


def test_it_reads_openllmetry_spans():
    pairs = mapped("openllmetry.pb")
    assert steps(pairs) == {"llm": 2, "tool": 2, "agent": 2}
    plan, _final = llm_calls(pairs)
    assert (plan.input_tokens, plan.output_tokens) == (52, 18)
    assert (plan.cached_input_tokens, plan.reasoning_tokens) == (16, 4)
    assert (plan.agent, plan.session_id, plan.user_id) == (
        "support-agent",
        "sess-tl-1",
        "user-tl-3",
    )

    _, tool = only(pairs, lambda r, n: n.tool_name == "get_order_status")
    # {"args": [], "kwargs": {...}} from the decorator → the keyword arguments.
    assert json.loads(tool.tool_arguments) == ORDER_ARGS
    assert json.loads(tool.tool_result) == ORDER_RESULT
    _, failed = only(pairs, lambda r, n: n.tool_name == "refund_order")
    assert (failed.status, failed.error_type) == ("error", "PermissionError")
    # Positional arguments keep the wrapper: their names are unknown.
    assert json.loads(failed.tool_arguments) == {"args": ["A-1001"], "kwargs": {"amount": 250.0}}

    agents = {n.agent for _, n in pairs if n.step == "agent"}
    assert agents == {"support-agent", "support-run"}


def test_it_reads_openllmetry_legacy_names():
    pairs = mapped("openllmetry_legacy.pb")
    plan, final = llm_calls(pairs)
    assert plan.provider == "openai"  # gen_ai.system = "OpenAI"
    assert (plan.input_tokens, plan.output_tokens) == (52, 18)  # gen_ai.usage.prompt_tokens
    assert (final.input_tokens, final.output_tokens) == (87, 14)
    assert plan.session_id == "sess-tl-1"

    raw, _ = only(pairs, lambda r, n: n.step == "llm" and n.output_tokens == 14)
    msgs = extract_messages(raw.attributes, raw.events)
    assert [x["role"] for x in msgs.input] == ["user", "assistant", "tool"]
    assert msgs.input[1]["tool_calls"] == [
        {"id": "call_0001", "name": "get_order_status", "arguments": '{"order_id": "A-1001"}'}
    ]
    assert msgs.output[0]["content"].startswith("Your order A-1001")
    assert msgs.finish_reasons == ["stop"]


def test_it_reads_openlit_cost_and_keeps_its_chat_span_an_llm_call():
    pairs = mapped("openlit.pb")
    plan, final = llm_calls(pairs)
    raw_plan = next(r for r, n in pairs if n is plan)
    # OpenLIT puts the *requested* tool on the chat span: still a model call.
    assert raw_plan.attributes["gen_ai.tool.name"] == "get_order_status"
    assert (plan.step, plan.tool_name) == ("llm", "")
    assert plan.reported_cost == Decimal("0.0000186")
    assert final.reported_cost == Decimal("0.00002145")
    assert (plan.input_tokens, plan.output_tokens, plan.cached_input_tokens) == (52, 18, 16)
    assert (plan.session_id, plan.user_id) == ("sess-openlit-1", "user-openlit-4")

    _, tool = only(pairs, lambda r, n: n.step == "tool")
    assert tool.tool_name == "get_order_status"
    assert json.loads(tool.tool_arguments) == ORDER_ARGS
    assert json.loads(tool.tool_result) == ORDER_RESULT

    _, failed = only(pairs, lambda r, n: n.step == "llm" and n.status == "error")
    assert failed.error_type == "RateLimitError"
    assert sum(n.input_tokens for _, n in pairs) == 52 + 87


def test_it_reads_langfuse_observations():
    pairs = mapped("langfuse.pb.gz")
    assert steps(pairs) == {"llm": 4, "tool": 1, "agent": 1}
    plan, _final = llm_calls(pairs)
    # usage_details holds OpenAI's raw usage, nested details included.
    assert (plan.input_tokens, plan.output_tokens) == (52, 18)
    assert (plan.cached_input_tokens, plan.reasoning_tokens) == (16, 4)
    assert plan.model == MODEL
    assert (plan.session_id, plan.user_id) == ("sess-lf-1", "user-lf-5")

    _, agent = only(pairs, lambda r, n: n.step == "agent")
    assert agent.agent == "support-agent"
    _, tool = only(pairs, lambda r, n: n.step == "tool")
    assert tool.tool_name == "get_order_status"
    assert json.loads(tool.tool_arguments) == ORDER_ARGS
    assert json.loads(tool.tool_result) == ORDER_RESULT


def test_it_reads_langfuse_cost_details_and_native_usage_keys():
    _, gateway = only(mapped("langfuse.pb.gz"), lambda r, n: r.name == "gateway-summarize")
    assert gateway.reported_cost == Decimal("0.0000075")
    # Langfuse's own keys are disjoint buckets: input 30 + 10 cached = 40 in OTel terms.
    assert (gateway.input_tokens, gateway.cached_input_tokens, gateway.output_tokens) == (40, 10, 5)


def test_it_maps_langfuse_error_level_and_its_zero_cost():
    _, failed = only(mapped("langfuse.pb.gz"), lambda r, n: n.status == "error")
    assert failed.status_message == "Error code: 429 - Rate limit reached for requests"
    # All-zero cost_details with no tokens: the failed call did cost nothing.
    assert failed.reported_cost == Decimal(0)
    assert failed.input_tokens == 0


def test_it_reads_logfire_spans():
    pairs = mapped("logfire.pb")
    assert steps(pairs) == {"llm": 2, "tool": 2, "agent": 1}
    plan, _final = llm_calls(pairs)
    # Cached and reasoning counts only exist in gen_ai.usage.raw.
    assert (plan.input_tokens, plan.output_tokens) == (52, 18)
    assert (plan.cached_input_tokens, plan.reasoning_tokens) == (16, 4)
    assert plan.service_name == "support-bot-logfire"

    _, tool = only(pairs, lambda r, n: n.tool_name == "get_order_status")
    assert (tool.tool_call_id, json.loads(tool.tool_arguments)) == ("call_0001", ORDER_ARGS)
    assert json.loads(tool.tool_result) == ORDER_RESULT
    _, failed = only(pairs, lambda r, n: n.status == "error")
    assert (failed.tool_name, failed.error_type) == ("refund_order", "PermissionError")
    _, agent = only(pairs, lambda r, n: n.step == "agent")
    assert agent.agent == "support-agent"


def test_it_ignores_logfire_scrubbed_session_ids():
    pairs = mapped("logfire.pb")
    raw_agent, agent = only(pairs, lambda r, n: n.step == "agent")
    assert raw_agent.attributes["session_id"] == "[Scrubbed due to 'session']"
    assert agent.session_id == ""
    assert agent.user_id == "user-logfire-2"
    # The trace still gets its session from the spans Logfire did not scrub.
    assert {n.session_id for _, n in pairs} == {"", "sess-logfire-1"}


def test_it_reads_logfire_finish_reasons_sent_as_json_text():
    raw, _ = only(mapped("logfire.pb"), lambda r, n: n.step == "llm" and n.output_tokens == 18)
    assert raw.attributes["gen_ai.response.finish_reasons"] == '["tool_calls"]'
    assert extract_messages(raw.attributes, raw.events).finish_reasons == ["tool_calls"]


def test_it_reads_the_node_sdk_otlp_json_payload():
    pairs = mapped("otel_genai_node.json")
    assert steps(pairs) == {"llm": 3, "tool": 1, "agent": 1}
    plan, final = llm_calls(pairs)
    # intValue arrived as a JSON number; gen_ai.system is the only provider name.
    assert (plan.input_tokens, plan.output_tokens, plan.provider) == (52, 18, "openai")
    assert (final.input_tokens, final.output_tokens) == (87, 14)
    _, tool = only(pairs, lambda r, n: n.step == "tool")
    assert (tool.tool_name, tool.tool_call_id) == ("get_order_status", "call_0001")
    assert json.loads(tool.tool_result) == ORDER_RESULT
    _, failed = only(pairs, lambda r, n: n.status == "error")
    assert (failed.error_type, failed.status_message) == (
        "RateLimitError",
        "429 Rate limit reached for requests",
    )
    raw_agent, agent = only(pairs, lambda r, n: n.step == "agent")
    # The agent recorded the exception it handled; the run itself did not fail.
    assert raw_agent.events[0]["name"] == "exception"
    assert (agent.status, agent.error_type, agent.status_message) == ("unset", "", "")
    assert (agent.session_id, agent.user_id) == ("conv-node-1", "user-node-8")


# ------------------------------------------------------------------ step kind


@pytest.mark.parametrize(
    ("attributes", "step"),
    [
        ({"gen_ai.operation.name": "chat"}, "llm"),
        ({"gen_ai.operation.name": "text_completion"}, "llm"),
        ({"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "e"}, "llm"),
        ({"gen_ai.operation.name": "retrieval"}, "retrieval"),
        ({"gen_ai.operation.name": "vectordb"}, "retrieval"),
        ({"gen_ai.operation.name": "invoke_agent"}, "agent"),
        ({"gen_ai.operation.name": "invoke_workflow"}, "agent"),
        ({"gen_ai.operation.name": "execute_tool"}, "tool"),
        ({"openinference.span.kind": "EMBEDDING"}, "llm"),
        ({"openinference.span.kind": "RETRIEVER"}, "retrieval"),
        ({"openinference.span.kind": "RERANKER"}, "retrieval"),
        ({"openinference.span.kind": "GUARDRAIL"}, "policy"),
        ({"openinference.span.kind": "CHAIN", "llm.model_name": "m"}, "other"),
        ({"langfuse.observation.type": "generation"}, "llm"),
        ({"langfuse.observation.type": "retriever"}, "retrieval"),
        ({"langfuse.observation.type": "guardrail"}, "policy"),
        # Langfuse's default type says nothing; the next convention decides.
        ({"langfuse.observation.type": "span", "gen_ai.operation.name": "chat"}, "llm"),
        ({"langfuse.observation.type": "span"}, "other"),
        ({"traceloop.span.kind": "task"}, "other"),
        ({"traceloop.span.kind": "task", "gen_ai.agent.name": "a"}, "other"),
        ({"llm.request.type": "embedding"}, "llm"),
        ({"llm.request.type": "rerank"}, "retrieval"),
        ({"ai.operationId": "ai.generateText", "ai.model.id": "m"}, "other"),
        ({"ai.operationId": "ai.generateText.doGenerate"}, "llm"),
        ({"ai.operationId": "ai.toolCall"}, "tool"),
        ({"gen_ai.tool.name": "lookup"}, "tool"),  # Pydantic AI: no operation on tools
        ({"gen_ai.operation.name": "chat", "gen_ai.tool.name": "lookup"}, "llm"),
        ({"gen_ai.response.model": "m"}, "llm"),
        ({"gen_ai.agent.name": "a"}, "agent"),
        ({"gen_ai.operation.name": "someday_new_op"}, "other"),
        ({"http.request.method": "GET"}, "other"),
        ({}, "other"),
    ],
)
def test_it_classifies_steps_by_attributes(attributes, step):
    assert m(attributes).step == step


def test_it_does_not_classify_by_span_name():
    assert m({}, name="chat gpt-4o").step == "other"
    assert m({}, name="execute_tool lookup").step == "other"


def test_the_convention_order_decides_between_conflicting_kinds():
    attrs = {
        "langfuse.observation.type": "tool",
        "openinference.span.kind": "LLM",
        "gen_ai.operation.name": "chat",
    }
    assert m(attrs).step == "tool"
    del attrs["langfuse.observation.type"]
    attrs["openinference.span.kind"] = "AGENT"
    assert m(attrs).step == "agent"


def test_agentops_policy_and_escalation_win_but_a_judge_call_keeps_its_tokens():
    judge = m(
        {
            "agentops.step": "policy",
            "agentops.policy.decision": "allow",
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 2,
        }
    )
    assert (judge.step, judge.role, judge.input_tokens, judge.output_tokens) == (
        "policy",
        "policy",
        10,
        2,
    )
    assert m({"agentops.step": "escalation"}).step == "escalation"
    assert m({"agentops.policy.decision": "escalate"}).step == "policy"


def test_it_sets_role_only_for_known_agentops_steps():
    assert m({"agentops.step": "plan", "gen_ai.operation.name": "chat"}).role == "plan"
    assert m({"agentops.step": "plan", "gen_ai.operation.name": "chat"}).step == "llm"
    assert m({"agentops.step": "whatever"}).role == ""
    assert m({"agentops.step": 3}).role == ""
    assert m({"agentops.step": "result"}).step == "tool"


# ------------------------------------------------------------------ model, provider, agent


def test_it_prefers_the_response_model():
    assert m({"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024"}).model == (
        "gpt-4o-2024"
    )
    assert m({"gen_ai.request.model": "gpt-4o"}).model == "gpt-4o"
    assert m({"llm.request.model_name": "a", "llm.model_name": "b"}).model == "b"
    assert m({"langfuse.observation.model.name": "c"}).model == "c"
    assert m({"embedding.model_name": "text-embedding-3-small"}).model == "text-embedding-3-small"


def test_it_normalises_the_provider():
    assert m({"gen_ai.system": "OpenAI"}).provider == "openai"
    assert (
        m({"gen_ai.provider.name": "aws.bedrock", "gen_ai.system": "x"}).provider == "aws.bedrock"
    )
    assert m({"llm.provider": "Azure", "llm.system": "openai"}).provider == "azure"
    assert m({"llm.system": "anthropic"}).provider == "anthropic"
    assert m({"ai.model.provider": "openai.chat"}).provider == "openai"


def test_it_reads_agent_name_and_versions():
    n = m(
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "triage",
            "gen_ai.agent.version": "2",
            "agentops.agent.version": "ignored",
            "agentops.prompt.version": "p7",
        }
    )
    assert (n.agent, n.agent_version, n.prompt_version) == ("triage", "2", "p7")
    assert m({"agentops.agent.version": "9"}).agent_version == "9"
    assert m({"agent.name": "oi"}).agent == "oi"
    oi_graph = {"openinference.span.kind": "AGENT", "graph.node.name": "planner"}
    assert m(oi_graph, name="span").agent == "planner"
    assert m({"langfuse.observation.type": "agent"}, name="lf-agent").agent == "lf-agent"
    # Span names only name agents of conventions that name agents that way.
    assert m({"gen_ai.operation.name": "invoke_agent"}, name="invoke_agent x").agent == ""


# ------------------------------------------------------------------ tokens


def test_it_accepts_numeric_strings_and_floats_as_token_counts():
    n = m(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": "120",
            "gen_ai.usage.output_tokens": 30.0,
            "gen_ai.usage.cache_read.input_tokens": "40.0",
        }
    )
    assert (n.input_tokens, n.output_tokens, n.cached_input_tokens) == (120, 30, 40)


def test_it_skips_unusable_token_values_for_the_next_name():
    n = m(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": "n/a",
            "gen_ai.usage.prompt_tokens": 7,
            "gen_ai.usage.output_tokens": float("nan"),
            "llm.token_count.completion": [1, 2],
            "gen_ai.usage.reasoning.output_tokens": True,
        }
    )
    assert (n.input_tokens, n.output_tokens, n.reasoning_tokens) == (7, 0, 0)
    assert m({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": -5}).input_tokens == 0


def test_the_first_present_token_name_wins():
    n = m(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.prompt_tokens": 99,
            "llm.token_count.prompt": 98,
            "gen_ai.usage.cache_read.input_tokens": 4,
            "gen_ai.usage.cache_read_input_tokens": 97,
            "gen_ai.usage.cache_creation.input_tokens": 3,
            "gen_ai.usage.reasoning.output_tokens": 2,
            "gen_ai.usage.reasoning_tokens": 96,
        }
    )
    assert (n.input_tokens, n.cached_input_tokens, n.cache_write_tokens, n.reasoning_tokens) == (
        10,
        4,
        3,
        2,
    )


@pytest.mark.parametrize("operation", ["invoke_agent", "execute_tool", "retrieval"])
def test_it_drops_usage_and_cost_from_spans_that_are_not_model_calls(operation):
    n = m(
        {
            "gen_ai.operation.name": operation,
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 50,
            "gen_ai.usage.cost": 0.5,
        }
    )
    assert (n.input_tokens, n.output_tokens, n.reported_cost) == (0, 0, None)


def test_it_reads_langfuse_usage_details_in_both_shapes():
    raw_usage = {
        "prompt_tokens": "100",
        "completion_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 30},
        "completion_tokens_details": {"reasoning_tokens": 5},
    }
    n = m(
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.usage_details": json.dumps(raw_usage),
        }
    )
    assert (n.input_tokens, n.output_tokens, n.cached_input_tokens, n.reasoning_tokens) == (
        100,
        20,
        30,
        5,
    )
    native = {
        "input": 70,
        "output": 15,
        "input_cached_tokens": 30,
        "cache_creation_input_tokens": 5,
        "output_reasoning_tokens": 5,
    }
    n = m(
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.usage_details": json.dumps(native),
        }
    )
    assert (n.input_tokens, n.cached_input_tokens, n.cache_write_tokens) == (105, 30, 5)
    assert (n.output_tokens, n.reasoning_tokens) == (20, 5)


def test_it_completes_direct_counts_from_logfire_raw_usage():
    n = m(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.usage.raw": json.dumps(
                {
                    "input_tokens": 999,
                    "cache_read_input_tokens": 40,
                    "cache_creation_input_tokens": 10,
                }
            ),
        }
    )
    assert (n.input_tokens, n.cached_input_tokens, n.cache_write_tokens) == (100, 40, 10)


@pytest.mark.parametrize("blob", ["not json", "[1, 2]", "{", "{}", '{"input": "x"}', 12])
def test_it_survives_odd_usage_blobs(blob):
    n = m({"langfuse.observation.type": "generation", "langfuse.observation.usage_details": blob})
    assert (n.input_tokens, n.output_tokens) == (0, 0)


# ------------------------------------------------------------------ reported cost


def test_reported_cost_precedence_is_langfuse_then_openlit_then_openinference():
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": 10,
        "langfuse.observation.cost_details": '{"input": 0.1, "output": 0.2, "total": 0.3}',
        "gen_ai.usage.cost": 0.4,
        "llm.cost.total": 0.5,
    }
    assert m(attrs).reported_cost == Decimal("0.3")
    del attrs["langfuse.observation.cost_details"]
    assert m(attrs).reported_cost == Decimal("0.4")
    del attrs["gen_ai.usage.cost"]
    assert m(attrs).reported_cost == Decimal("0.5")
    del attrs["llm.cost.total"]
    assert m(attrs).reported_cost is None


def test_it_sums_cost_details_without_a_total():
    n = m(
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.cost_details": {"input": "0.001", "output": 0.002, "note": "x"},
        }
    )
    assert n.reported_cost == Decimal("0.003")


def test_a_zero_reported_cost_with_tokens_is_not_a_price():
    zeros = '{"input": 0, "output": 0, "total": 0}'
    with_tokens = m(
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.cost_details": zeros,
            "langfuse.observation.usage_details": '{"input": 10, "output": 3}',
        }
    )
    assert with_tokens.reported_cost is None
    # … and the next source still counts.
    openlit_unknown_model = m(
        {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 5, "gen_ai.usage.cost": 0}
    )
    assert openlit_unknown_model.reported_cost is None
    fallback = m(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": 5,
            "langfuse.observation.cost_details": zeros,
            "llm.cost.total": 0.01,
        }
    )
    assert fallback.reported_cost == Decimal("0.01")
    no_tokens = m(
        {"langfuse.observation.type": "generation", "langfuse.observation.cost_details": zeros}
    )
    assert no_tokens.reported_cost == Decimal(0)


@pytest.mark.parametrize("value", [-1, "abc", float("inf"), float("nan"), True, [1], {"a": 1}])
def test_it_ignores_unusable_costs(value):
    n = m({"gen_ai.operation.name": "chat", "gen_ai.usage.cost": value})
    assert n.reported_cost is None


# ------------------------------------------------------------------ tools


def test_it_reads_tool_fields_per_convention():
    otel = m(
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "lookup",
            "gen_ai.tool.call.id": "c1",
            "gen_ai.tool.call.arguments": {"q": "x"},
            "gen_ai.tool.call.result": ["a", 1],
        }
    )
    assert (otel.tool_name, otel.tool_call_id) == ("lookup", "c1")
    assert json.loads(otel.tool_arguments) == {"q": "x"}
    assert json.loads(otel.tool_result) == ["a", 1]

    traceloop = m(
        {
            "traceloop.span.kind": "tool",
            "traceloop.entity.name": "search",
            "traceloop.entity.input": '{"args": [], "kwargs": {"q": "y"}}',
            "traceloop.entity.output": '"done"',
        }
    )
    assert (traceloop.tool_name, traceloop.tool_arguments, traceloop.tool_result) == (
        "search",
        '{"q":"y"}',
        '"done"',
    )
    vercel = m(
        {
            "ai.operationId": "ai.toolCall",
            "ai.toolCall.name": "weather",
            "ai.toolCall.id": "v1",
            "ai.toolCall.args": '{"city":"Oslo"}',
            "ai.toolCall.result": "rain",
        }
    )
    assert (vercel.tool_name, vercel.tool_call_id, vercel.tool_result) == ("weather", "v1", "rain")
    openlit = m({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.args": "{}"})
    assert openlit.tool_arguments == "{}"


def test_it_keeps_tool_fields_off_other_spans():
    n = m({"gen_ai.operation.name": "chat", "gen_ai.tool.name": "x", "gen_ai.tool.call.id": "c"})
    assert (n.tool_name, n.tool_call_id, n.tool_arguments) == ("", "", "")


def test_it_leaves_malformed_decorator_arguments_as_sent():
    text = '{"args": [], "kwargs": {"q": '
    assert m({"traceloop.span.kind": "tool", "traceloop.entity.input": text}).tool_arguments == text


# ------------------------------------------------------------------ session, user, service


def test_session_and_user_follow_langfuse_lookup_order():
    n = m(
        {
            "gen_ai.conversation.id": "conv",
            "session.id": "sess",
            "langfuse.session.id": "lf",
            "user.id": "u",
            "langfuse.user.id": "lfu",
        }
    )
    assert (n.session_id, n.user_id) == ("lf", "lfu")
    n = m({"gen_ai.conversation.id": "conv", "traceloop.association.properties.session_id": "t"})
    assert n.session_id == "conv"
    n = m(
        {
            "langfuse.trace.metadata.langfuse_session_id": '"s-json"',
            "langfuse.observation.metadata.langfuse_user_id": '"u-json"',
        }
    )
    assert (n.session_id, n.user_id) == ("s-json", "u-json")
    assert m({"session_id": "[Scrubbed due to 'session']", "session.id": " "}).session_id == ""
    assert m({"user.id": 42}).user_id == "42"


def test_it_falls_back_to_resource_attributes_for_session_user_and_service():
    resource = {"service.name": "billing", "session.id": "r-sess", "user.id": "r-user"}
    n = m({}, resource=resource)
    assert (n.service_name, n.session_id, n.user_id) == ("billing", "r-sess", "r-user")
    n = m({"session.id": "span-sess"}, resource=resource)
    assert n.session_id == "span-sess"
    assert m({}, resource={}).service_name == ""
    # Resources are remembered by identity: a different dict is read afresh.
    assert m({}, resource={"service.name": "other"}).service_name == "other"


# ------------------------------------------------------------------ status


def test_it_derives_status():
    assert m({}, status_code=0).status == "unset"
    assert m({}, status_code=1).status == "ok"
    assert m({}, status_code=2, status_message="boom").status_message == "boom"
    assert m({"langfuse.observation.level": "ERROR"}).status == "error"
    assert m({"langfuse.observation.level": "WARNING"}).status == "unset"
    # A recorded (handled) exception alone does not fail the span.
    exc = [{"name": "exception", "attributes": {"exception.type": "KeyError"}}]
    handled = m({}, events=exc)
    assert (handled.status, handled.error_type) == ("unset", "")


def test_it_reads_error_type_and_message():
    exc = {
        "name": "exception",
        "attributes": {"exception.type": "ValueError", "exception.message": "bad input"},
    }
    n = m({}, status_code=2, events=[{"name": "other", "attributes": {}}, exc])
    assert (n.error_type, n.status_message) == ("ValueError", "bad input")
    n = m(
        {"error.type": "<class 'openai.APIError'>"}, status_code=2, status_message="s", events=[exc]
    )
    assert (n.error_type, n.status_message) == ("openai.APIError", "s")
    n = m(
        {
            "langfuse.observation.level": "ERROR",
            "langfuse.observation.status_message": "quota",
        }
    )
    assert n.status_message == "quota"


# ------------------------------------------------------------------ messages


def test_it_extracts_otel_messages_given_as_structures():
    attrs = {
        "gen_ai.system_instructions": [{"type": "text", "content": "Be brief."}],
        "gen_ai.input.messages": [
            {"role": "user", "parts": [{"type": "text", "content": "hi"}]},
            {
                "role": "tool",
                "parts": [{"type": "tool_call_response", "id": "c", "response": {"ok": 1}}],
            },
        ],
        "gen_ai.output.messages": [
            {
                "role": "assistant",
                "parts": [
                    {"type": "reasoning", "content": "hmm"},
                    {"type": "text", "content": "hello"},
                    {"type": "blob", "modality": "image", "content": "iVBORw0KGgo="},
                    {"type": "tool_call", "id": "c2", "name": "f", "arguments": {"a": 1}},
                ],
                "finish_reason": "tool_call",
            }
        ],
    }
    msgs = extract_messages(attrs, [])
    assert msgs.system == "Be brief."
    assert msgs.input[1] == {"role": "tool", "content": '{"ok":1}', "tool_calls": []}
    assert msgs.output == [
        {
            "role": "assistant",
            "content": "hello\n[blob]",
            "tool_calls": [{"id": "c2", "name": "f", "arguments": '{"a":1}'}],
        }
    ]
    assert msgs.finish_reasons == ["tool_call"]


def test_it_extracts_messages_from_deprecated_events():
    events = [
        {"name": "gen_ai.system.message", "attributes": {"content": "sys"}},
        {"name": "gen_ai.user.message", "attributes": {"content": "question"}},
        {
            "name": "gen_ai.assistant.message",
            "attributes": {
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ]
            },
        },
        {"name": "gen_ai.tool.message", "attributes": {"content": "42", "id": "c"}},
        {
            "name": "gen_ai.choice",
            "attributes": {
                "index": 0,
                "finish_reason": "stop",
                "message": '{"role": "assistant", "content": "answer"}',
            },
        },
    ]
    msgs = extract_messages({}, events)
    assert msgs.system == "sys"
    assert [x["role"] for x in msgs.input] == ["user", "assistant", "tool"]
    assert msgs.input[1]["tool_calls"] == [{"id": "c", "name": "f", "arguments": "{}"}]
    assert msgs.output == [{"role": "assistant", "content": "answer", "tool_calls": []}]
    assert msgs.finish_reasons == ["stop"]


def test_it_extracts_parts_carried_as_json_in_event_content():
    # The shape the bench corpus and some SDKs send: content = JSON list of parts.
    events = [
        {
            "name": "gen_ai.user.message",
            "attributes": {"content": json.dumps([{"type": "text", "content": "hi"}])},
        }
    ]
    assert extract_messages({}, events).input[0]["content"] == "hi"


def text(content: str) -> dict:
    return {"type": "text", "content": content}


def test_it_extracts_messages_from_the_inference_details_event():
    events = [
        {
            "name": "gen_ai.client.inference.operation.details",
            "attributes": {
                "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [text("q")]}]),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [text("a")], "finish_reason": "stop"}]
                ),
                "gen_ai.system_instructions": json.dumps([text("s")]),
            },
        }
    ]
    msgs = extract_messages({}, events)
    assert (msgs.input[0]["content"], msgs.output[0]["content"], msgs.system) == ("q", "a", "s")
    assert msgs.finish_reasons == ["stop"]


def test_it_extracts_openinference_multimodal_contents():
    attrs = {
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.contents.0.message_content.type": "text",
        "llm.input_messages.0.message.contents.0.message_content.text": "look",
        "llm.input_messages.0.message.contents.1.message_content.type": "image",
        "llm.input_messages.10.message.role": "user",
        "llm.input_messages.10.message.content": "tenth",
        "llm.input_messages.2.message.role": "user",
        "llm.input_messages.2.message.content": "second",
    }
    msgs = extract_messages(attrs, [])
    assert [x["content"] for x in msgs.input] == ["look", "second", "tenth"]


def test_it_extracts_vendor_input_and_output_values():
    attrs = {
        "input.value": json.dumps(
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "hey"}]}]}
        ),
        "output.value": json.dumps(
            {
                "choices": [
                    {"message": {"role": "assistant", "content": "yo"}, "finish_reason": "stop"}
                ]
            }
        ),
    }
    msgs = extract_messages(attrs, [])
    assert msgs.input == [{"role": "user", "content": "hey", "tool_calls": []}]
    assert msgs.output == [{"role": "assistant", "content": "yo", "tool_calls": []}]
    assert msgs.finish_reasons == ["stop"]

    plain = extract_messages(
        {"traceloop.entity.input": "just text", "output.value": '{"a": 1}'}, []
    )
    assert plain.input == [{"role": "user", "content": "just text", "tool_calls": []}]
    # Not a message: kept as the client sent it.
    assert plain.output == [{"role": "assistant", "content": '{"a": 1}', "tool_calls": []}]

    anthropic = extract_messages(
        {
            "langfuse.observation.output": {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "checking"},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}},
                ],
            }
        },
        [],
    )
    assert anthropic.output[0]["tool_calls"] == [{"id": "t1", "name": "f", "arguments": '{"x":1}'}]


def test_it_extracts_legacy_prompt_and_completion_attributes():
    attrs = {
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "q",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "a",
        "gen_ai.completion.0.finish_reason": "length",
    }
    msgs = extract_messages(attrs, [])
    assert (msgs.input[0]["content"], msgs.output[0]["content"]) == ("q", "a")
    assert msgs.finish_reasons == ["length"]


ODD_VALUES = [
    None,
    "",
    "[",
    "{",
    "[]",
    "{}",
    "null",
    "[1, 2]",
    '[{"role": 5, "parts": "x"}]',
    '[{"parts": [null, 1, {"type": "tool_call", "arguments": {"a": [1, {}]}}]}]',
    '{"messages": "nope"}',
    '{"choices": [1, null, {"message": 3}]}',
    0,
    -1,
    1.5,
    float("nan"),
    True,
    [],
    [None],
    [{"role": None, "content": {"nested": [1, 2]}}],
    [{"tool_calls": "oops"}],
    [{"tool_calls": [1, {"function": "f"}]}],
    {"role": "user"},
    {1: 2},
    b"bytes",
    ["a", 1, None],
]
ODD_KEYS = [
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.response.finish_reasons",
    "llm.finish_reason",
    "input.value",
    "output.value",
    "traceloop.entity.input",
    "langfuse.observation.output",
    "gen_ai.prompt",
    "gen_ai.prompt.0.content",
    "gen_ai.prompt.x.content",
    "gen_ai.completion.0.tool_calls.0.name",
    "llm.input_messages.0.message.role",
    "llm.output_messages.0.message.tool_calls.0.tool_call.id",
    "langfuse.observation.usage_details",
    "langfuse.observation.cost_details",
    "gen_ai.usage.raw",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.cost",
    "gen_ai.operation.name",
    "openinference.span.kind",
    "gen_ai.tool.name",
    "session.id",
    "error.type",
    "agentops.step",
]


def test_it_never_raises_on_odd_payloads():
    rng = random.Random(7)
    event_names = [
        "gen_ai.user.message",
        "gen_ai.choice",
        "gen_ai.client.inference.operation.details",
        "exception",
    ]
    for _ in range(3000):
        attrs = {rng.choice(ODD_KEYS): rng.choice(ODD_VALUES) for _ in range(rng.randint(0, 6))}
        events = [
            rng.choice(
                [
                    None,
                    "x",
                    {"name": rng.choice(event_names)},
                    {"name": rng.choice(event_names), "attributes": None},
                    {
                        "name": rng.choice(event_names),
                        "attributes": {
                            rng.choice(
                                ["content", "message", "tool_calls", "finish_reason"]
                            ): rng.choice(ODD_VALUES),
                            **{k: rng.choice(ODD_VALUES) for k in rng.sample(ODD_KEYS, 2)},
                        },
                    },
                ]
            )
            for _ in range(rng.randint(0, 3))
        ]
        msgs = extract_messages(attrs, events)
        for msg in msgs.input + msgs.output:
            assert isinstance(msg["role"], str)
            assert isinstance(msg["content"], str)
            assert isinstance(msg["tool_calls"], list)
        assert all(isinstance(r, str) for r in msgs.finish_reasons)
        clean_events = [
            e for e in events if isinstance(e, dict) and isinstance(e.get("attributes"), dict)
        ]
        n = map_span(span(attrs, status_code=rng.choice([0, 1, 2]), events=clean_events))
        assert isinstance(n.session_id, str) and isinstance(n.tool_arguments, str)


def test_it_never_raises_on_non_dict_arguments():
    assert extract_messages(None, None) == Messages()  # type: ignore[arg-type]
    assert extract_messages({"gen_ai.input.messages": "[" * 100000 + "]" * 100000}, []) is not None


# ------------------------------------------------------------------ rollout and outcomes


def _span(attributes: dict):
    from traces.otlp import RawSpan

    return RawSpan(
        trace_id="a" * 32,
        span_id="b" * 16,
        parent_span_id="",
        name="run",
        kind=1,
        start_ns=1,
        end_ns=2,
        attributes=attributes,
        events=[],
        links=[],
        status_code=0,
        status_message="",
        resource={},
        scope={},
    )


def test_it_reads_the_rollout_phase_and_ignores_unknown_phases():
    assert map_span(_span({"agentops.autonomy.phase": "Bounded"})).phase == "bounded"
    assert map_span(_span({"agentops.autonomy.phase": "human"})).phase == "human"
    assert map_span(_span({"agentops.autonomy.phase": "yolo"})).phase == ""


@pytest.mark.parametrize(
    ("attributes", "intervened"),
    [
        ({"agentops.human.intervened": True}, True),
        ({"agentops.human.intervened": "true"}, True),
        ({"agentops.human.intervened": False}, False),
        ({"agentops.step": "escalation"}, True),
        ({"agentops.policy.decision": "escalate"}, True),
        ({"agentops.policy.decision": "allow"}, False),
        ({}, False),
    ],
)
def test_it_counts_interventions_from_flags_escalations_and_escalating_policies(
    attributes, intervened
):
    assert map_span(_span(attributes)).intervened is intervened


def test_it_reads_kpi_and_eval_values_as_numbers():
    n = map_span(
        _span(
            {
                "agentops.kpi.resolved": True,
                "agentops.kpi.handle_time_s": "42.5",
                "agentops.kpi.bad": "n/a",
                "agentops.kpi.nan": float("nan"),
                "agentops.eval.helpfulness": 0.8,
                "agentops.kpi.": 3,
            }
        )
    )
    assert n.kpis == {"resolved": 1.0, "handle_time_s": 42.5}
    assert n.evals == {"helpfulness": 0.8}
    assert map_span(_span({"gen_ai.operation.name": "chat"})).kpis is None


# ------------------------------------------------------------------ the documented order

DOC = Path(__file__).resolve().parents[2] / "docs" / "semconv-mapping.md"


@pytest.mark.parametrize(
    ("row", "keys"),
    [
        ("model", "MODEL_KEYS"),
        ("input_tokens", "INPUT_KEYS"),
        ("output_tokens", "OUTPUT_KEYS"),
        ("cached_input_tokens", "CACHE_READ_KEYS"),
        ("cache_write_tokens", "CACHE_WRITE_KEYS"),
        ("reasoning_tokens", "REASONING_KEYS"),
        ("agent", "AGENT_KEYS"),
        ("agent_version", "AGENT_VERSION_KEYS"),
        ("prompt_version", "PROMPT_VERSION_KEYS"),
        ("tool_name", "TOOL_NAME_KEYS"),
        ("tool_call_id", "TOOL_CALL_ID_KEYS"),
        ("tool_arguments", "TOOL_ARGS_KEYS"),
        ("tool_result", "TOOL_RESULT_KEYS"),
        ("session_id", "SESSION_KEYS"),
        ("user_id", "USER_KEYS"),
    ],
)
def test_the_families_ranks_give_the_documented_order(row, keys):
    from traces.conventions import mapping

    line = next(x for x in DOC.read_text().splitlines() if x.startswith(f"| `{row}` |"))
    documented = re.findall(r"`([^`]+)`", line.split("|")[2])
    code = getattr(mapping, keys)
    assert documented[: len(code)] == list(code)
