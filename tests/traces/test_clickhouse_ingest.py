"""Ingest → rollup → budget with the spans in ClickHouse (chDB, the engine in process),
whatever the relational database of the run (SQLite or PostgreSQL).

Requests go through the real endpoint (POST /v1/traces, protobuf); spans must land in
the span store and not in traces_span, and everything counted from them (trace summary,
rollups, a budget envelope and its alerts) must count each span once, however it was
re-sent, and nothing when the request failed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import timedelta
from decimal import Decimal

import grpc
import pytest
from django.db import OperationalError, connection, transaction
from django.db.models import Sum
from django.test import Client
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from budgets.evaluate import budget_evaluate
from budgets.models import Alert, BudgetEnvelope, State
from tests.concurrency import run_concurrently
from tests.otlp_client import protobuf_body, record, simple_run
from tests.traces.test_otlp_grpc import call, refused, retry_delay, start_receiver  # noqa: F401 (a fixture)
from traces import ingest
from traces.models import IngestBatch, ModelPriceOverride, Rollup, Span, Trace
from traces.rollups import rollup_pending, rollup_rebuild
from traces.spanstore import clickhouse
from traces.spanstore.relational import RelationalSpanStore

PB = "application/x-protobuf"
MODEL = "gpt-4o-mini"
# simple_run: 320 input and 80 output tokens over two model calls; at $1,000 per million
# tokens either way (the override below) one run costs exactly $0.40.
RUN_COST = Decimal("0.40")

pytestmark = pytest.mark.django_db


@pytest.fixture
def ch(ch_store, project, settings):
    """The ClickHouse span store selected for this test, with no spans of this test's
    project (SQLite gives the same project ids again in every test)."""
    project_id = project.pk  # a test may delete the project
    ch_store.delete_project(project_id)
    settings.SPAN_STORE_URL = ch_store.url
    ModelPriceOverride.objects.create(
        model=MODEL,
        effective_from=project.created_at - timedelta(days=365),
        input_per_mtok=Decimal(1000),
        output_per_mtok=Decimal(1000),
    )
    yield ch_store
    ch_store.delete_project(project_id)


def post(body: bytes, secret: str):
    return Client().post(
        "/v1/traces", data=body, content_type=PB, HTTP_AUTHORIZATION=f"Bearer {secret}"
    )


def accepted(response) -> None:
    assert response.status_code == 200, response.content
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 0


def rollup_sums(project) -> dict:
    return Rollup.objects.filter(project=project).aggregate(
        spans=Sum("span_count"),
        runs=Sum("trace_count"),
        input_tokens=Sum("input_tokens"),
        output_tokens=Sum("output_tokens"),
        cost=Sum("cost_usd"),
    )


ONE_RUN = {"spans": 4, "runs": 1, "input_tokens": 320, "output_tokens": 80, "cost": RUN_COST}


@pytest.fixture
def run_spans():
    return record(simple_run)


def test_spans_land_in_the_store_and_not_in_traces_span(ch, project, ingest_secret, run_spans):
    accepted(post(protobuf_body(run_spans), ingest_secret))

    assert Span.objects.count() == 0
    assert ch.count(project.pk) == 4
    trace = Trace.objects.get(project=project)
    assert (trace.span_count, trace.llm_call_count, trace.tool_call_count) == (4, 2, 1)
    assert (trace.input_tokens, trace.output_tokens, trace.cost_usd) == (320, 80, RUN_COST)
    assert (trace.agent, trace.status) == ("support-agent", "ok")
    stored = ch.trace_spans(project.pk, trace.trace_id, trace.started_at, trace.ended_at)
    assert sorted(s["step"] for s in stored) == ["agent", "llm", "llm", "tool"]
    assert sum(s["cost_usd"] or 0 for s in stored) == RUN_COST
    assert {s["received_at"] for s in stored} == {trace.first_received_at}
    batch = IngestBatch.objects.get(project=project)
    assert batch.span_count == 4
    assert len(batch.token) == 32
    tokens = ch.trace_spans(project.pk, trace.trace_id, columns=["batch_token"])
    assert {s["batch_token"] for s in tokens} == {batch.token}


def test_deleting_a_project_deletes_its_spans_from_the_store(
    ch, project, other_project, ingest_secret, run_spans, django_capture_on_commit_callbacks
):
    accepted(post(protobuf_body(run_spans), ingest_secret))
    kept = ch.insert_spans(other_project.pk, [], "none", retention_days=30)  # nothing
    ch.insert_spans(
        other_project.pk,
        ch.trace_spans(project.pk, Trace.objects.get(project=project).trace_id),
        "copy",
        retention_days=30,
    )
    assert (kept, ch.count(project.pk), ch.count(other_project.pk)) == (0, 4, 4)

    project_id = project.pk
    with django_capture_on_commit_callbacks(execute=True):
        project.delete()

    assert ch.count(project_id) == 0
    assert ch.count(other_project.pk) == 4  # another project's spans stay
    ch.delete_project(other_project.pk)


@pytest.mark.django_db(transaction=True)
def test_the_same_request_twice_at_once_counts_once(
    ch, project, ingest_secret, run_spans, monkeypatch
):
    """An exporter retrying a request still in flight: both look the spans up before either
    wrote them, unless the second waits for the first (it must)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writing transactions; the race needs PostgreSQL")
    body = protobuf_body(run_spans)
    both_looked = threading.Barrier(2, timeout=3)
    real = type(ch).existing_keys

    def existing_keys(self, *args, **kwargs):
        # broken: the other request waits on this one
        with contextlib.suppress(threading.BrokenBarrierError):
            both_looked.wait()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(ch), "existing_keys", existing_keys)
    answers, errors = run_concurrently(lambda: post(body, ingest_secret).status_code)

    assert (errors, answers) == ([], [200, 200])
    assert ch.count(project.pk) == 4
    trace = Trace.objects.get(project=project)
    assert (trace.span_count, trace.cost_usd) == (4, RUN_COST)
    assert IngestBatch.objects.filter(project=project).count() == 1
    rollup_pending()
    assert rollup_sums(project) == ONE_RUN


@pytest.mark.django_db(transaction=True)
def test_a_retry_waiting_on_a_failing_request_stores_the_spans(
    ch, project, ingest_secret, run_spans, monkeypatch
):
    """The first request's spans are in ClickHouse when its relational transaction fails;
    its retry, waiting on the same traces, must not find those copies (about to be
    discarded) and answer 200 for spans nobody stored."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writing transactions; the race needs PostgreSQL")
    body = protobuf_body(run_spans)
    failing, attempts = threading.Event(), []
    real_outcomes, real_discard = ingest._insert_outcomes, type(ch).discard_batch

    def outcomes(*args, **kwargs):
        attempts.append(1)
        if len(attempts) == 1:
            failing.set()
            time.sleep(0.3)  # the retry is waiting on the traces' locks by now
            raise OperationalError("server closed the connection unexpectedly")
        return real_outcomes(*args, **kwargs)

    def slow_discard(self, *args, **kwargs):
        time.sleep(0.5)  # a retry let in before the discard would find the copies
        return real_discard(self, *args, **kwargs)

    monkeypatch.setattr(ingest, "_insert_outcomes", outcomes)
    monkeypatch.setattr(type(ch), "discard_batch", slow_discard)
    answers = {}

    def send(name):
        try:
            answers[name] = post(body, ingest_secret).status_code
        finally:
            connection.close()

    first = threading.Thread(target=send, args=("first",))
    first.start()
    assert failing.wait(10)
    retry = threading.Thread(target=send, args=("retry",))
    retry.start()
    first.join(30)
    retry.join(30)

    assert answers == {"first": 503, "retry": 200}
    assert ch.count(project.pk) == 4
    assert Trace.objects.get(project=project).span_count == 4
    rollup_pending()
    assert rollup_sums(project) == ONE_RUN


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL's locks")
@pytest.mark.parametrize(("traces", "held"), [(10, 11), (500, 1)])
def test_a_batch_holds_a_bounded_number_of_locks(project, traces, held):
    """A request may carry thousands of traces; the server's lock table is shared and
    small. Up to LOCKS_PER_BATCH buckets: the project's lock shared plus one per bucket;
    past it, the project's lock alone."""
    trace_ids = {f"{i:032x}" for i in range(traces)}
    with transaction.atomic(), connection.cursor() as cursor:
        ingest._lock_traces(project.pk, trace_ids)
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )
        assert cursor.fetchone()[0] == held


def test_the_same_request_sent_again_counts_once(ch, project, ingest_secret, run_spans):
    body = protobuf_body(run_spans)
    accepted(post(body, ingest_secret))
    accepted(post(body, ingest_secret))

    # the second request found every span stored and wrote nothing (no copy to merge)
    assert ch.count(project.pk, final=False) == 4
    assert IngestBatch.objects.filter(project=project).count() == 1
    assert Trace.objects.get(project=project).span_count == 4
    assert rollup_pending().spans == 4
    assert rollup_sums(project) == ONE_RUN


def test_a_span_sent_again_inside_another_batch_counts_once(ch, project, ingest_secret, run_spans):
    accepted(post(protobuf_body(run_spans[:2]), ingest_secret))
    accepted(post(protobuf_body(run_spans), ingest_secret))  # the first two again

    assert ch.count(project.pk, final=False) == 4
    assert sorted(IngestBatch.objects.values_list("span_count", flat=True)) == [2, 2]
    trace = Trace.objects.get(project=project)
    assert (trace.span_count, trace.input_tokens, trace.cost_usd) == (4, 320, RUN_COST)
    assert rollup_pending().batches == 2
    assert rollup_sums(project) == ONE_RUN


def test_a_copy_stored_by_a_concurrent_request_is_folded_with_the_first_one(
    ch, project, ingest_secret, run_spans
):
    """Two requests carrying the same spans at the same moment both find them new and
    both insert: the rollups still fold each span once, with the batch of its first
    stored copy (ReplacingMergeTree keeps the first copy; batch_spans reads FINAL)."""
    accepted(post(protobuf_body(run_spans), ingest_secret))
    first = IngestBatch.objects.get(project=project)
    trace = Trace.objects.get(project=project)
    copies = ch.trace_spans(project.pk, trace.trace_id)
    # no background merge may fold the copies before the rollup reads them
    ch.client.command(f"SYSTEM STOP MERGES {ch.table}")
    try:
        ch.insert_spans(project.pk, copies, "racing-request", retention_days=20_000)
        IngestBatch.objects.create(
            project=project, received_at=first.received_at, span_count=4, token="racing-request"
        )
        assert ch.count(project.pk, final=False) == 8  # two copies of each span

        assert rollup_pending().batches == 2
    finally:
        ch.client.command(f"SYSTEM START MERGES {ch.table}")
    assert rollup_sums(project) == ONE_RUN


def test_rollups_feed_a_budget_that_alerts_once(ch, project, ingest_secret, run_spans):
    envelope = BudgetEnvelope.objects.create(
        project=project,
        name="Support bot",
        metric=BudgetEnvelope.Metric.COST,
        limit=Decimal("0.50"),
        period=BudgetEnvelope.Period.DAY,
        timezone="UTC",
        thresholds=[50, 80, 100],
        forecast=False,
    )
    body = protobuf_body(run_spans)
    accepted(post(body, ingest_secret))
    trace = Trace.objects.get(project=project)
    BudgetEnvelope.objects.filter(pk=envelope.pk).update(
        created_at=trace.started_at - timedelta(days=2)
    )
    envelope.refresh_from_db()
    now = trace.ended_at + timedelta(seconds=1)

    rollup_pending()
    first = budget_evaluate(envelope=envelope, now=now)
    accepted(post(body, ingest_secret))  # the exporter re-sends the request
    accepted(post(protobuf_body(run_spans[1:3]), ingest_secret))  # and some spans again
    rollup_pending()
    again = budget_evaluate(envelope=envelope, now=now + timedelta(seconds=1))

    assert (first.state, first.value) == (State.WARNING, RUN_COST)
    assert sorted(a.threshold for a in first.alerts) == [50, 80]
    assert (again.state, again.value, again.alerts) == (State.WARNING, RUN_COST, [])
    assert Alert.objects.filter(envelope=envelope).count() == 2


def test_a_failed_relational_transaction_discards_the_stored_copies_and_a_retry_counts(
    ch, project, ingest_secret, run_spans, monkeypatch
):
    def connection_lost(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    body = protobuf_body(run_spans)
    # the spans are in ClickHouse by the time the relational transaction fails
    monkeypatch.setattr(ingest, "_insert_outcomes", connection_lost)
    response = post(body, ingest_secret)

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert ch.count(project.pk, final=False) == 0
    assert not Trace.objects.filter(project=project).exists()
    assert not IngestBatch.objects.filter(project=project).exists()

    monkeypatch.undo()
    accepted(post(body, ingest_secret))
    assert ch.count(project.pk) == 4
    assert Trace.objects.get(project=project).span_count == 4
    rollup_pending()
    assert rollup_sums(project) == ONE_RUN


def test_a_store_outage_answers_503_and_stores_nothing(
    ch, project, ingest_secret, run_spans, settings
):
    settings.SPAN_STORE_URL = "clickhouse://127.0.0.1:1/x"  # nothing listens there
    body = protobuf_body(run_spans)

    response = post(body, ingest_secret)

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert "nothing was stored" in response.content.decode(errors="replace")
    assert not Trace.objects.filter(project=project).exists()
    assert not IngestBatch.objects.filter(project=project).exists()
    assert Span.objects.count() == 0
    # once the store is back, the exporter's retry is stored and counted
    settings.SPAN_STORE_URL = ch.url
    accepted(post(body, ingest_secret))
    assert Trace.objects.get(project=project).span_count == 4


@pytest.mark.django_db(transaction=True)
def test_a_store_outage_over_grpc_is_unavailable_with_retry_info(
    ch,
    project,
    ingest_secret,
    run_spans,
    settings,
    start_receiver,  # noqa: F811 (the imported fixture)
):
    settings.SPAN_STORE_URL = "clickhouse://127.0.0.1:1/x"
    address = start_receiver()
    body = protobuf_body(run_spans)

    error = refused(address, body, ingest_secret)

    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert retry_delay(error) == settings.OTLP_RETRY_AFTER_SECONDS
    assert not Trace.objects.filter(project=project).exists()
    settings.SPAN_STORE_URL = ch.url
    call(address, body, ingest_secret)
    assert Trace.objects.get(project=project).span_count == 4
    assert ch.count(project.pk) == 4


def test_a_store_outage_during_the_rollup_leaves_the_batch_pending_not_quarantined(
    ch, project, ingest_secret, run_spans, settings
):
    accepted(post(protobuf_body(run_spans), ingest_secret))
    settings.SPAN_STORE_URL = "clickhouse://127.0.0.1:1/x"

    with pytest.raises(Exception) as raised:
        rollup_pending()

    from traces.dberrors import is_outage

    assert is_outage(raised.value)
    batch = IngestBatch.objects.get(project=project)
    assert (batch.attempts, batch.failed_at) == (0, None)
    settings.SPAN_STORE_URL = ch.url
    assert rollup_pending().spans == 4
    assert rollup_sums(project) == ONE_RUN


def test_a_rebuild_reads_the_spans_from_the_store(ch, project, ingest_secret, run_spans):
    accepted(post(protobuf_body(run_spans), ingest_secret))
    accepted(post(protobuf_body(record(simple_run)), ingest_secret))  # a second run
    rollup_pending()
    folded = sorted(
        Rollup.objects.filter(project=project).values_list(
            "bucket_start", "agent", "model", "span_count", "trace_count", "cost_usd"
        )
    )
    assert sum(row[3] for row in folded) == 8

    result = rollup_rebuild(project_id=project.pk)

    assert result.spans == 8
    rebuilt = sorted(
        Rollup.objects.filter(project=project).values_list(
            "bucket_start", "agent", "model", "span_count", "trace_count", "cost_usd"
        )
    )
    assert rebuilt == folded


@pytest.mark.parametrize("kind", ["clickhouse", "relational"])
def test_existing_keys_answers_the_stored_keys_in_the_range(kind, ch, project, monkeypatch):
    store = ch if kind == "clickhouse" else RelationalSpanStore()
    monkeypatch.setattr(clickhouse, "KEYS_PER_QUERY", 2)  # several statements
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    t0 = project.created_at.replace(microsecond=0)
    rows = [
        {
            "trace_id": trace_id,
            "span_id": f"{i:016x}",
            "name": f"step {i}",
            "started_at": t0 + timedelta(hours=i),
            "ended_at": t0 + timedelta(hours=i, seconds=1),
            "duration_ms": 1000.0,
            "received_at": t0,
        }
        for i in (1, 2, 3)
    ]
    batch = IngestBatch.objects.create(project=project, received_at=t0, span_count=3)
    store.insert_spans(project.pk, rows, str(batch.pk), retention_days=20_000)
    asked = [(trace_id, f"{i:016x}") for i in (0, 1, 2, 3, 4)] + [("f" * 32, f"{1:016x}")]

    found = store.existing_keys(project.pk, asked, t0, t0 + timedelta(days=1))
    assert found == {(trace_id, f"{i:016x}") for i in (1, 2, 3)}
    # only the batch's start range is looked at
    late = store.existing_keys(project.pk, asked, t0 + timedelta(hours=2), t0 + timedelta(days=1))
    assert late == {(trace_id, f"{i:016x}") for i in (2, 3)}
    assert store.existing_keys(project.pk + 1, asked, t0, t0 + timedelta(days=1)) == set()


def test_store_errors_are_outages_unless_raised_before_anything_was_sent():
    from clickhouse_connect.driver import exceptions as ch_errors

    from traces.dberrors import is_outage

    assert is_outage(ch_errors.OperationalError("Error executing HTTP request"))
    assert is_outage(ch_errors.DatabaseError("Code: 252. Too many parts"))  # the server's
    assert is_outage(ConnectionRefusedError(111, "Connection refused"))
    assert not is_outage(ch_errors.DataError("value out of range for Int64"))
    assert not is_outage(ch_errors.ProgrammingError("unknown column"))
    assert not is_outage(ValueError("span times must be timezone-aware"))
