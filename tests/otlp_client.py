"""Build OTLP bodies the way the real Python SDK and exporter do.

Spans are made with the OpenTelemetry SDK and encoded with the exporter's own encoder
(`encode_spans`), i.e. the exact bytes `OTLPSpanExporter` posts. OTLP/JSON is derived
from that message as the OTLP specification defines it (hex ids, int64 as strings,
enums as integers), which is what the JavaScript exporter sends.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Callable

import orjson
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def record(build: Callable, *, service: str = "test-agent") -> list[ReadableSpan]:
    """Run `build(tracer)` with a real SDK tracer and return the finished spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    build(provider.get_tracer("tests", "1.0"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def protobuf_body(spans: list[ReadableSpan], *, compress: bool = False) -> bytes:
    body = encode_spans(spans).SerializeToString()
    return gzip.compress(body) if compress else body


def json_body(spans: list[ReadableSpan], *, int_as_number: bool = False) -> bytes:
    doc = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
                if int_as_number:
                    for kv in span.get("attributes", []):
                        if "intValue" in kv["value"]:
                            kv["value"]["intValue"] = int(kv["value"]["intValue"])
    return orjson.dumps(doc)


def simple_run(tracer, *, agent: str = "support-agent", model: str = "gpt-4o-mini") -> None:
    """An agent run: root → LLM call (plan) → tool call → LLM call (final)."""
    with tracer.start_as_current_span(
        f"invoke_agent {agent}",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent},
    ):
        for tokens in ((120, 30), (200, 50)):
            with tracer.start_as_current_span(
                f"chat {model}",
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": model,
                    "gen_ai.usage.input_tokens": tokens[0],
                    "gen_ai.usage.output_tokens": tokens[1],
                },
            ):
                pass
            if tokens[0] == 120:
                with tracer.start_as_current_span(
                    "execute_tool lookup_order",
                    attributes={
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": "lookup_order",
                        "gen_ai.tool.call.arguments": '{"order_id": 42}',
                    },
                ):
                    pass
