"""POST /v1/traces as the OTLP/HTTP specification describes it: encodings, statuses,
partial success, and that nothing from a refused request is stored."""

from __future__ import annotations

import gzip
import zlib

import orjson
import pytest
from django.db import connection
from django.test import Client, override_settings
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.otlp_client import json_body, protobuf_body, record, simple_run
from traces.models import Span, Trace
from traces.services import ingest_key_create, ingest_key_revoke

PB = "application/x-protobuf"
JSON = "application/json"

pytestmark = pytest.mark.django_db


def post(body: bytes, *, secret: str | None, content_type: str = PB, path="/v1/traces", **headers):
    extra = {}
    if secret is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    for name, value in headers.items():
        extra["HTTP_" + name.upper()] = value
    return Client().post(path, data=body, content_type=content_type, **extra)


def status_message(response) -> str:
    if response["Content-Type"].startswith(PB):
        return status_pb2.Status.FromString(response.content).message
    return orjson.loads(response.content)["message"]


@pytest.fixture
def run_spans():
    return record(simple_run)


def test_it_stores_a_protobuf_batch_and_answers_an_export_response(ingest_secret, run_spans):
    response = post(protobuf_body(run_spans), secret=ingest_secret)

    assert response.status_code == 200
    assert response["Content-Type"] == PB
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 0
    assert Span.objects.count() == 4
    trace = Trace.objects.get()
    assert trace.span_count == 4
    assert trace.agent == "support-agent"
    assert (trace.input_tokens, trace.output_tokens) == (320, 80)
    assert trace.status == "ok"


def test_it_accepts_gzip(ingest_secret, run_spans):
    response = post(
        protobuf_body(run_spans, compress=True), secret=ingest_secret, content_encoding="gzip"
    )
    assert response.status_code == 200
    assert Span.objects.count() == 4


@pytest.mark.parametrize("int_as_number", [False, True])
def test_it_accepts_otlp_json_with_hex_ids_and_either_int64_form(
    ingest_secret, run_spans, int_as_number
):
    response = post(
        json_body(run_spans, int_as_number=int_as_number), secret=ingest_secret, content_type=JSON
    )

    assert response.status_code == 200
    assert response["Content-Type"] == JSON
    assert orjson.loads(response.content) == {}
    trace = Trace.objects.get()
    assert trace.trace_id == format(run_spans[0].context.trace_id, "032x")
    assert trace.input_tokens == 320


def test_it_accepts_a_json_charset_parameter(ingest_secret, run_spans):
    response = post(
        json_body(run_spans), secret=ingest_secret, content_type="application/json; charset=utf-8"
    )
    assert response.status_code == 200


def test_it_accepts_the_key_as_x_api_key(project, run_spans):
    secret = ingest_key_create(project=project).secret
    response = Client().post(
        "/v1/traces", data=protobuf_body(run_spans), content_type=PB, HTTP_X_API_KEY=secret
    )
    assert response.status_code == 200


def test_it_serves_the_same_endpoint_under_a_client_prefix(ingest_secret, run_spans):
    response = post(
        protobuf_body(run_spans), secret=ingest_secret, path="/api/public/otel/v1/traces"
    )
    assert response.status_code == 200
    assert Span.objects.count() == 4


def test_the_key_decides_the_project_not_the_payload(project, other_project, run_spans):
    secret = ingest_key_create(project=other_project).secret
    post(protobuf_body(run_spans), secret=secret)
    assert Trace.objects.get().project == other_project


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("secret", [None, "", "ak_not-a-real-key", "Bearer"])
def test_it_refuses_a_missing_or_unknown_key_with_401(db, run_spans, secret):
    response = post(protobuf_body(run_spans), secret=secret)
    assert response.status_code == 401
    assert "key" in status_message(response).lower()
    assert Span.objects.count() == 0


def test_it_refuses_a_revoked_key_with_401(project, run_spans):
    new = ingest_key_create(project=project)
    ingest_key_revoke(key=new.key)
    response = post(protobuf_body(run_spans), secret=new.secret)
    assert response.status_code == 401
    assert "revoked" in status_message(response)


def test_it_refuses_other_content_types_with_415(ingest_secret, run_spans):
    response = post(protobuf_body(run_spans), secret=ingest_secret, content_type="text/plain")
    assert response.status_code == 415
    assert "application/x-protobuf" in status_message(response)


def test_it_refuses_other_methods_with_405(ingest_secret):
    response = Client().get("/v1/traces", HTTP_AUTHORIZATION=f"Bearer {ingest_secret}")
    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_it_refuses_an_unknown_content_encoding_with_415(ingest_secret, run_spans):
    response = post(protobuf_body(run_spans), secret=ingest_secret, content_encoding="br")
    assert response.status_code == 415


def test_it_explains_a_malformed_protobuf_body_with_400(ingest_secret):
    response = post(b"\x0a\xff\xff\xff\xff\x0f garbage", secret=ingest_secret)
    assert response.status_code == 400
    assert "protobuf" in status_message(response)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"resourceSpans": {}}', "must be a list"),
        (
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"ab","spanId":"cd",'
            b'"startTimeUnixNano":"soon"}]}]}]}',
            "startTimeUnixNano",
        ),
    ],
)
def test_it_explains_a_malformed_json_body_with_400(ingest_secret, body, needle):
    response = post(body, secret=ingest_secret, content_type=JSON)
    assert response.status_code == 400
    assert needle in status_message(response)


def test_it_refuses_a_corrupt_gzip_body_with_400(ingest_secret):
    response = post(
        b"\x1f\x8b\x08\x00 not really gzip", secret=ingest_secret, content_encoding="gzip"
    )
    assert response.status_code == 400
    assert "gzip" in status_message(response)


@override_settings(OTLP_MAX_BODY_BYTES=1000)
def test_it_refuses_a_body_above_the_limit_with_413(ingest_secret):
    response = post(b"\x00" * 1001, secret=ingest_secret)
    assert response.status_code == 413
    assert "1000-byte limit" in status_message(response)


@override_settings(OTLP_MAX_DECOMPRESSED_BYTES=100_000)
def test_it_refuses_a_gzip_bomb_without_inflating_it(ingest_secret):
    bomb = gzip.compress(b"\x00" * 50_000_000)  # ~50 KB on the wire, 50 MB inflated
    assert len(bomb) < 100_000
    response = post(bomb, secret=ingest_secret, content_encoding="gzip")
    assert response.status_code == 413
    assert "Decompressed" in status_message(response)


def test_a_refused_request_stores_nothing_and_a_later_good_one_is_stored(ingest_secret, run_spans):
    good = protobuf_body(run_spans)
    truncated = good[: len(good) // 2]
    assert post(truncated, secret=ingest_secret).status_code == 400
    assert Span.objects.count() == 0
    assert post(good, secret=ingest_secret).status_code == 200
    assert Span.objects.count() == 4


# ------------------------------------------------------------------ partial success


def test_spans_with_bad_ids_or_times_are_reported_and_the_rest_stored(ingest_secret, run_spans):
    request = ExportTraceServiceRequest.FromString(protobuf_body(run_spans))
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = b"\x00" * 16
    spans[1].span_id = b"\x01\x02"
    spans[2].start_time_unix_nano = 0

    response = post(request.SerializeToString(), secret=ingest_secret)

    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 3
    assert "trace_id" in answer.partial_success.error_message
    assert "start and end times" in answer.partial_success.error_message
    assert Span.objects.count() == 1


def test_partial_success_is_json_for_json_requests(ingest_secret, run_spans):
    doc = orjson.loads(json_body(run_spans))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "zz-not-hex"
    response = post(orjson.dumps(doc), secret=ingest_secret, content_type=JSON)
    assert response.status_code == 200
    partial = orjson.loads(response.content)["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "spans[0].spanId is not a hex string" in partial["errorMessage"]
    assert Span.objects.count() == 3


# ------------------------------------------------------------------ other signals


def test_logs_are_acknowledged_as_not_stored(ingest_secret):
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

    req = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[LogRecord(), LogRecord()])])]
    )
    response = post(req.SerializeToString(), secret=ingest_secret, path="/v1/logs")
    assert response.status_code == 200
    answer = ExportLogsServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_log_records == 2
    assert "traces only" in answer.partial_success.error_message


def test_metrics_as_json_are_acknowledged_as_not_stored(ingest_secret):
    body = orjson.dumps(
        {
            "resourceMetrics": [
                {"scopeMetrics": [{"metrics": [{"sum": {"dataPoints": [{}, {}, {}]}}]}]}
            ]
        }
    )
    response = post(body, secret=ingest_secret, path="/v1/metrics", content_type=JSON)
    assert response.status_code == 200
    partial = orjson.loads(response.content)["partialSuccess"]
    assert partial["rejectedDataPoints"] == "3"
    assert "not stored" in partial["errorMessage"] or "discarded" in partial["errorMessage"]


def test_logs_still_need_a_key(db):
    assert post(b"\x0a\x00", secret=None, path="/v1/logs").status_code == 401


# ------------------------------------------------------------------ outage


@pytest.mark.django_db(transaction=True)
def test_it_answers_503_with_retry_after_when_the_database_is_down(ingest_secret, run_spans):
    body = protobuf_body(run_spans)
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent-dir/agentops.sqlite3"
    else:
        connection.settings_dict["PORT"] = "1"  # nothing listens there
    try:
        response = post(body, secret=ingest_secret)
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    # The exporter retries; once the database is back, the same batch is stored.
    assert post(body, secret=ingest_secret).status_code == 200
    assert Span.objects.count() == 4


def test_decompress_limit_also_applies_to_deflate():
    from traces.otlp import OTLPError, decompress

    bomb = zlib.compress(b"\x00" * 1_000_000)
    with pytest.raises(OTLPError) as exc:
        decompress(bomb, "deflate", limit=10_000)
    assert exc.value.status == 413
