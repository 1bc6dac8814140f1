"""The real OpenTelemetry SDK and OTLP/HTTP exporter, sending to a live console."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from tests.otlp_client import record, simple_run
from traces.demo import DemoTraffic
from traces.models import Span, Trace

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def exporter(live_server, secret, **kwargs):
    return OTLPSpanExporter(
        endpoint=f"{live_server.url}/v1/traces",
        headers={"authorization": f"Bearer {secret}"},
        timeout=10,
        **kwargs,
    )


@pytest.mark.parametrize("compression", [Compression.Gzip, Compression.NoCompression])
def test_the_real_exporter_stores_a_run(live_server, project, ingest_secret, compression):
    spans = record(simple_run)
    result = exporter(live_server, ingest_secret, compression=compression).export(spans)

    assert result is SpanExportResult.SUCCESS
    trace = Trace.objects.get(project=project)
    assert trace.span_count == 4
    assert trace.agent == "support-agent"
    assert trace.llm_call_count == 2
    assert trace.tool_call_count == 1
    assert trace.cost_usd > 0


def test_the_exporter_gives_up_on_a_bad_key_and_nothing_is_stored(live_server, project):
    result = exporter(live_server, "ak_wrong").export(record(simple_run))
    assert result is SpanExportResult.FAILURE
    assert Span.objects.count() == 0


def test_a_batch_span_processor_with_the_environment_variables_users_set(
    live_server, project, ingest_secret, monkeypatch
):
    """What the README tells users to set, exactly."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{live_server.url}/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{ingest_secret}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    provider = TracerProvider(resource=Resource.create({"service.name": "env-configured"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    simple_run(provider.get_tracer("tests"))
    assert provider.force_flush(10_000)
    provider.shutdown()

    trace = Trace.objects.get(project=project)
    assert trace.service_name == "env-configured"
    assert trace.span_count == 4


def test_the_demo_traffic_arrives_through_the_exporter(live_server, project, ingest_secret):
    demo = DemoTraffic(endpoint=f"{live_server.url}/v1/traces", key=ingest_secret, seed=3)
    for _ in range(5):
        demo.run()
    demo.flush()
    demo.shutdown()

    traces = Trace.objects.filter(project=project)
    assert traces.count() == 5
    assert all(t.status in ("ok", "error") for t in traces)
    assert Span.objects.filter(step="llm").exists()
    assert Span.objects.filter(step="tool").exclude(tool_arguments="").exists()
    assert Span.objects.filter(role="intent").count() == 5
