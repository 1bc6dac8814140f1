"""Database faults on POST /v1/traces: an outage is a 503 the exporter retries; a value the
database refuses costs only its own span (200 with partial success), never the batch."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.otlp_client import protobuf_body, record, simple_run
from traces import conventions, ingest
from traces.models import IngestBatch, Span, Trace

PB = "application/x-protobuf"
TOOL_SPAN = "execute_tool lookup_order"


def post(body: bytes, secret: str):
    return Client().post(
        "/v1/traces", data=body, content_type=PB, HTTP_AUTHORIZATION=f"Bearer {secret}"
    )


def answer(response) -> ExportTraceServiceResponse:
    return ExportTraceServiceResponse.FromString(response.content)


@pytest.fixture
def body():
    return protobuf_body(record(simple_run))


@pytest.fixture
def poison(monkeypatch):
    """Give the tool span a value the database cannot store, where rows are built."""

    def install(field: str, value):
        original = conventions.map_span

        def mapped(raw):
            n = original(raw)
            if raw.name == TOOL_SPAN:
                setattr(n, field, value)
            return n

        monkeypatch.setattr(ingest.conventions, "map_span", mapped)

    return install


@pytest.mark.django_db
def test_it_stores_the_good_spans_when_one_token_count_is_out_of_range(ingest_secret, body, poison):
    poison("input_tokens", 2**63)  # one past a bigint

    response = post(body, ingest_secret)

    assert response.status_code == 200
    result = answer(response)
    assert result.partial_success.rejected_spans == 1
    assert "the database refused it" in result.partial_success.error_message
    assert TOOL_SPAN not in set(Span.objects.values_list("name", flat=True))
    assert Span.objects.count() == 3
    trace = Trace.objects.get()
    assert trace.span_count == 3
    assert (trace.input_tokens, trace.output_tokens) == (320, 80)
    # Every stored span is waiting for the rollup.
    assert sum(IngestBatch.objects.values_list("span_count", flat=True)) == 3


@pytest.mark.django_db
def test_it_rejects_a_nul_character_the_database_refuses(ingest_secret, body, poison):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite stores NUL characters")
    poison("tool_name", "lookup\x00order")

    response = post(body, ingest_secret)

    assert response.status_code == 200
    result = answer(response)
    assert result.partial_success.rejected_spans == 1
    assert "NUL" in result.partial_success.error_message
    assert Span.objects.count() == 3


@pytest.mark.django_db
def test_a_resent_batch_after_a_refusal_stores_nothing_twice(ingest_secret, body, poison):
    poison("input_tokens", 2**63)
    post(body, ingest_secret)

    again = post(body, ingest_secret)

    assert again.status_code == 200
    assert answer(again).partial_success.rejected_spans == 1
    assert Span.objects.count() == 3
    assert Trace.objects.get().span_count == 3


@pytest.mark.django_db
def test_it_gives_up_span_by_span_on_a_fault_that_hits_every_span(ingest_secret, monkeypatch):
    from traces import ingest_fallback

    monkeypatch.setattr(ingest_fallback, "MAX_REFUSED_SPANS", 2)

    def broken(raw):
        raise ValueError("mapping failed")

    monkeypatch.setattr(ingest.conventions, "map_span", broken)
    body = protobuf_body(record(simple_run) + record(simple_run))

    response = post(body, ingest_secret)

    assert response.status_code == 200
    result = answer(response)
    assert result.partial_success.rejected_spans == 8
    assert "not attempted after 2 were refused" in result.partial_success.error_message
    assert Span.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_it_answers_503_when_the_server_shuts_down_during_the_copy(
    ingest_secret, body, monkeypatch
):
    psycopg = pytest.importorskip("psycopg")

    def shutdown(values):
        raise psycopg.errors.AdminShutdown("terminating connection due to administrator command")

    monkeypatch.setattr(ingest, "_insert_spans", shutdown)

    response = post(body, ingest_secret)

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert Span.objects.count() == 0
    assert IngestBatch.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_it_answers_503_when_the_connection_is_terminated_mid_request(
    ingest_secret, body, monkeypatch
):
    if connection.vendor != "postgresql":
        pytest.skip("needs a server to terminate the connection")
    import psycopg

    original = ingest._insert_spans
    settings = connection.settings_dict

    def terminate_then_insert(values):
        pid = connection.connection.info.backend_pid
        with psycopg.connect(
            dbname=settings["NAME"],
            host=settings["HOST"],
            port=settings["PORT"] or 5432,
            user=settings["USER"],
            password=settings["PASSWORD"] or None,
            autocommit=True,
        ) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [pid])
        return original(values)

    monkeypatch.setattr(ingest, "_insert_spans", terminate_then_insert)

    response = post(body, ingest_secret)

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    # The exporter resends once the database is back: the whole batch is stored once.
    monkeypatch.setattr(ingest, "_insert_spans", original)
    connection.close()  # what the request_started signal does for a real server
    assert post(body, ingest_secret).status_code == 200
    assert Span.objects.count() == 4


@pytest.mark.django_db
def test_a_refused_span_keeps_the_batch_limits_in_the_answer(ingest_secret, body, poison, settings):
    settings.OTLP_MAX_SPANS_PER_REQUEST = 3  # the fourth span (the root) is over the limit
    settings.OTLP_MAX_VALUE_LENGTH = 30
    poison("input_tokens", 2**63)

    result = answer(post(body, ingest_secret))

    # 1 over the span limit + 1 refused by the database; the values cut are still named.
    assert result.partial_success.rejected_spans == 2
    message = result.partial_success.error_message
    assert "beyond the 3-span per-request limit" in message
    assert "the database refused it" in message
    assert "stored with limits applied" in message
