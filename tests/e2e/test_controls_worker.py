"""The controls' background work with real parts: spans through the real OTLP/HTTP
exporter into a live console, a real Celery worker on Redis running the contract checks
and the idempotency and retry detectors, sent through the broker as the beat sends them.

Planted: a duplicate side effect (one key executed twice), a side-effecting call retried
without a key, a retry storm, retried model calls, and a run with none of these. Exactly
those findings and one contract check per tool span appear; when the storm goes on, the
next tick updates its row and adds or changes nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from celery import Celery
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    Status,
    StatusCode,
    set_span_in_context,
)

from controls.models import ContractCheck, Finding
from controls.services import contract_upsert
from tests.e2e.test_alerts_worker import REDIS_URL, redis_available, wait_for
from tests.live import database_url
from tests.otlp_client import record
from traces.models import Span

ROOT = Path(__file__).resolve().parents[2]
Kind = Finding.Kind

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def broker(monkeypatch):
    if not redis_available():
        reason = f"Redis is not reachable at {REDIS_URL}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    queue = f"e2e-controls-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CELERY_BROKER_URL", REDIS_URL)
    client = Celery("e2e-controls", broker=REDIS_URL)
    yield client, queue
    client.close()


@pytest.fixture
def worker(broker, live_server):
    """A real `celery worker` process on the Redis broker and the test database."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_QUEUE": broker[1],
        "FINDINGS_WINDOW_MINUTES": "15",
    }
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "agentops_site", "worker", "--pool", "solo",
            "--loglevel", "WARNING", "--without-heartbeat", "--without-gossip", "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )  # fmt: skip
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def tool(
    tracer, name: str, arguments: str, *, key="", failed=False, attempt=None, context=None
) -> None:
    attrs = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.arguments": arguments,
    }
    if key:
        attrs["agentops.idempotency_key"] = key
    if attempt is not None:
        attrs["agentops.retry.attempt"] = attempt
    span_name = f"execute_tool {name}"
    with tracer.start_as_current_span(span_name, context=context, attributes=attrs) as span:
        if failed:
            span.set_status(Status(StatusCode.ERROR, "upstream timeout"))


def model(tracer, attempt: int) -> None:
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 10,
        "gen_ai.usage.cost": 0.05,
        "agentops.retry.attempt": attempt,
    }
    with tracer.start_as_current_span("chat gpt-4o-mini", attributes=attrs):
        pass


def run(tracer, agent: str, body) -> SpanContext:
    attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent}
    with tracer.start_as_current_span(f"invoke_agent {agent}", attributes=attrs) as root:
        body(tracer)
        return root.get_span_context()


def export(live_server, secret: str, build) -> None:
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}/v1/traces",
        headers={"authorization": f"Bearer {secret}"},
        compression=Compression.Gzip,
        timeout=10,
    )
    assert exporter.export(record(build)) is SpanExportResult.SUCCESS


def send_runs(live_server, secret: str) -> dict[str, SpanContext]:
    runs: dict[str, SpanContext] = {}

    def build(tracer):
        def duplicate(t):
            tool(t, "refund_order", '{"order_id": "A1"}', key="refund-A1")
            tool(t, "refund_order", '{"order_id": "A1"}', key="refund-A1")

        def unkeyed(t):
            tool(t, "refund_order", '{"order_id": "B1"}', failed=True)
            tool(t, "refund_order", '{"order_id": "B1"}')

        def storm(t):
            for attempt in range(7):
                tool(t, "lookup_order", '{"id": 7}', failed=attempt < 6, attempt=attempt)

        def model_retries(t):
            for attempt in range(3):
                model(t, attempt)

        def clean(t):
            tool(t, "lookup_order", '{"id": 8}')
            tool(t, "refund_order", '{"order_id": "C1"}', key="refund-C1")
            tool(t, "search_web", '{"q": "refund policy"}')  # no contract
            model(t, 0)

        runs["duplicate"] = run(tracer, "billing-agent", duplicate)
        runs["unkeyed"] = run(tracer, "billing-agent", unkeyed)
        runs["storm"] = run(tracer, "support-agent", storm)
        runs["model"] = run(tracer, "support-agent", model_retries)
        runs["clean"] = run(tracer, "support-agent", clean)

    export(live_server, secret, build)
    return runs


def send_more_attempts(live_server, secret: str, storm: SpanContext) -> None:
    """Two more failed attempts of the storm's call, later, in the same run."""
    parent = set_span_in_context(NonRecordingSpan(storm))

    def build(tracer):
        for attempt in (7, 8):
            tool(tracer, "lookup_order", '{"id": 7}', failed=True, attempt=attempt, context=parent)

    export(live_server, secret, build)


def trace_id(context: SpanContext) -> str:
    return format(context.trace_id, "032x")


def test_the_worker_checks_contracts_and_stores_exactly_the_planted_findings(
    project, other_project, ingest_secret, live_server, worker, broker
):
    for p in (project, other_project):
        contract_upsert(
            project=p,
            data={
                "name": "refund_order",
                "version": "1.0.0",
                "side_effects": True,
                "requires_idempotency_key": True,
                "arguments_schema": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}},
                    "required": ["order_id"],
                },
            },
        )
        contract_upsert(project=p, data={"name": "lookup_order", "version": "1.0.0"})
    runs = send_runs(live_server, ingest_secret)
    tool_spans = Span.objects.filter(project=project, step="tool").count()
    assert tool_spans == 2 + 2 + 7 + 3

    client, queue = broker

    def beat_tick():
        for name in ("controls.tasks.check_contracts", "controls.tasks.detect_findings"):
            client.send_task(name, queue=queue)

    def rows():
        return {
            f["kind"]: f
            for f in Finding.objects.values("id", "kind", "count", "spans", "updated_at")
        }

    beat_tick()
    wait_for(
        lambda: ContractCheck.objects.filter(project=project).count() == tool_spans,
        what="a contract check of every tool span",
    )
    wait_for(lambda: Finding.objects.count() >= 4, what="the planted findings")
    first = rows()

    # The storm goes on in the same run; the next tick (a minute later from the beat)
    # updates its row, checks the new spans, and adds or changes nothing else.
    send_more_attempts(live_server, ingest_secret, runs["storm"])
    beat_tick()
    wait_for(
        lambda: Finding.objects.get(kind=Kind.RETRY_STORM).count == 9, what="the storm's growth"
    )
    wait_for(
        lambda: ContractCheck.objects.filter(project=project).count() == tool_spans + 2,
        what="the new attempts checked",
    )

    outcomes = Counter(
        ContractCheck.objects.filter(project=project).values_list("outcome", flat=True)
    )
    assert outcomes == {
        "ok": 2 + 9 + 1 + 1,  # the keyed refunds and every lookup
        "idempotency_key_missing": 2,  # the unkeyed retry
        "no_contract": 1,  # search_web
    }
    assert ContractCheck.objects.count() == tool_spans + 2

    found = {
        (f.kind, f.tool, f.agent, tuple(f.trace_ids), f.count)
        for f in Finding.objects.filter(project=project)
    }
    assert found == {
        (
            Kind.DUPLICATE_SIDE_EFFECT,
            "refund_order",
            "billing-agent",
            (trace_id(runs["duplicate"]),),
            2,
        ),
        (Kind.UNKEYED_RETRY, "refund_order", "billing-agent", (trace_id(runs["unkeyed"]),), 2),
        (Kind.RETRY_STORM, "lookup_order", "support-agent", (trace_id(runs["storm"]),), 9),
        (Kind.RETRIED_MODEL_COST, "", "support-agent", (trace_id(runs["model"]),), 2),
    }
    assert Finding.objects.get(kind=Kind.RETRIED_MODEL_COST).cost_usd == Decimal("0.10")
    assert Finding.objects.get(kind=Kind.DUPLICATE_SIDE_EFFECT).key == "refund-A1"
    assert not Finding.objects.exclude(project=project).exists()
    last = rows()
    assert last[Kind.RETRY_STORM]["id"] == first[Kind.RETRY_STORM]["id"]
    assert len(last[Kind.RETRY_STORM]["spans"]) == 9
    del first[Kind.RETRY_STORM], last[Kind.RETRY_STORM]
    assert last == first
