"""record_decision on an agent's own tracer provider (not the global one)."""

from __future__ import annotations

from agentops_sdk import record_decision
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def test_a_child_decision_span_goes_to_the_given_provider():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("invoke_agent support"):
        record_decision(
            "refund of 12.00 asked",
            ["issue_refund", "decline"],
            "issue_refund",
            confidence=0.9,
            child_span=True,
            tracer_provider=provider,
        )
    decision, run = exporter.get_finished_spans()
    assert decision.name == "decision"
    assert decision.parent.span_id == run.context.span_id
    assert decision.attributes["agentops.decision.action"] == "issue_refund"
