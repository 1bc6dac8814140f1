"""`contracted_tool`: the contract and idempotency key on the current tool span, or on a tool
span of its own when there is none (or the current one is not a tool span); the settings of
local validation checked when the decorator is applied."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from agentops_sdk import contracted_tool
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@pytest.fixture
def provider():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.exporter = exporter
    return provider


def test_it_marks_the_current_span(provider):
    @contracted_tool(
        "refund_order", "2.1.0", idempotency_key=lambda args, kwargs: f"refund-{args[0]}"
    )
    def refund(order_id, amount):
        return f"refunded {order_id}"

    with provider.get_tracer("test").start_as_current_span("execute_tool refund_order"):
        assert refund("A-1", amount=5) == "refunded A-1"
    (span,) = provider.exporter.get_finished_spans()
    assert span.name == "execute_tool refund_order"
    assert span.attributes["agentops.contract.name"] == "refund_order"
    assert span.attributes["agentops.contract.version"] == "2.1.0"
    assert span.attributes["agentops.idempotency_key"] == "refund-A-1"
    assert "gen_ai.tool.call.arguments" not in span.attributes


def test_with_no_span_it_opens_a_tool_span(provider):
    @contracted_tool("lookup_order", "1.0.0", tracer_provider=provider)
    async def lookup(order_id, verbose=False):
        return {"id": order_id}

    assert asyncio.run(lookup("A-1", verbose=True)) == {"id": "A-1"}
    (span,) = provider.exporter.get_finished_spans()
    assert span.name == "execute_tool lookup_order"
    assert span.attributes["gen_ai.operation.name"] == "execute_tool"
    assert span.attributes["gen_ai.tool.name"] == "lookup_order"
    assert json.loads(span.attributes["gen_ai.tool.call.arguments"]) == {
        "order_id": "A-1",
        "verbose": True,
    }
    assert span.attributes["agentops.contract.version"] == "1.0.0"
    assert "agentops.idempotency_key" not in span.attributes


def test_inside_a_run_span_it_opens_a_child_tool_span_with_the_result(provider):
    """The run's span is not the tool call: marking it would make the whole run one tool
    call in the console. The call gets its own span, and its result is recorded."""

    @contracted_tool("lookup_order", "1.0.0", tracer_provider=provider)
    def lookup(order_id, **options):
        return {"id": order_id, "status": "shipped"}

    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("invoke_agent support") as run:
        lookup("A-1", verbose=True)
    tool, root = provider.exporter.get_finished_spans()
    assert "agentops.contract.name" not in root.attributes
    assert tool.name == "execute_tool lookup_order"
    assert tool.parent.span_id == run.get_span_context().span_id
    # **options spread out: what the caller passed, by name.
    assert json.loads(tool.attributes["gen_ai.tool.call.arguments"]) == {
        "order_id": "A-1",
        "verbose": True,
    }
    assert json.loads(tool.attributes["gen_ai.tool.call.result"]) == {
        "id": "A-1",
        "status": "shipped",
    }


def test_a_framework_tool_span_is_recognised_by_its_attributes(provider):
    @contracted_tool("lookup_order", "1.0.0")
    def lookup(order_id):
        return None

    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("tool", attributes={"openinference.span.kind": "TOOL"}):
        lookup("A-1")
    (span,) = provider.exporter.get_finished_spans()
    assert span.attributes["agentops.contract.name"] == "lookup_order"


def test_methods_leave_self_out_of_the_arguments(provider):
    class Tools:
        @contracted_tool("lookup_order", "1.0.0", tracer_provider=provider)
        def lookup(self, order_id):
            return "ok"

    Tools().lookup(order_id="A-1")
    (span,) = provider.exporter.get_finished_spans()
    assert json.loads(span.attributes["gen_ai.tool.call.arguments"]) == {"order_id": "A-1"}


def test_validation_without_jsonschema_fails_at_decoration(monkeypatch):
    from agentops_sdk import Client

    monkeypatch.setitem(sys.modules, "jsonschema", None)  # import jsonschema → ImportError
    console = Client("http://127.0.0.1:9", "key")
    with pytest.raises(ImportError, match=r"agentops-sdk\[validate\]"):

        @contracted_tool("lookup_order", "1.0.0", validate=console)
        def lookup(order_id): ...

    # Without validation the decorator needs nothing but the OpenTelemetry API.
    @contracted_tool("lookup_order", "1.0.0")
    def plain(order_id):
        return order_id

    assert plain("A-1") == "A-1"


def test_bad_validation_settings_are_refused_at_decoration():
    from agentops_sdk import Client

    with pytest.raises(ValueError, match="only with validate"):
        contracted_tool("lookup_order", "1", on_unavailable="run")
    with pytest.raises(ValueError, match="on_unavailable must be one of"):
        contracted_tool("lookup_order", "1", validate=Client("http://x", "k"), on_unavailable="x")
    with pytest.raises(TypeError, match=r"agentops_sdk\.Client"):
        contracted_tool("lookup_order", "1", validate="http://127.0.0.1:8000")
