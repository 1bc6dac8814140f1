"""`contracted_tool`: the contract and idempotency key on the current span, or on a tool
span of its own when there is none."""

from __future__ import annotations

import asyncio
import json

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
