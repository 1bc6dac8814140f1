"""`Client.request_approval` against a live console, traced with the real OpenTelemetry SDK
and OTLP/HTTP exporter: a person's approval lets the tool run, bound to its arguments (a
replay with other arguments is flagged); a denial, an expiry or a console that cannot be
reached stops it (fail closed); the answer is recorded on the span."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from agentops_sdk import Approval as SdkApproval
from agentops_sdk import Client, contracted_tool
from django.db import connection
from django.utils import timezone
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from controls.approvals import approval_decide, approval_violations
from controls.models import Approval
from traces.models import Span
from traces.services import ingest_key_create

pytestmark = pytest.mark.live


def decide_when_asked(decision: str, *, by: str = "ada", note: str = "") -> threading.Thread:
    """A reviewer who decides the first pending request as soon as it appears."""

    def run():
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                approval = Approval.objects.filter(status="pending").first()
                if approval is not None:
                    time.sleep(0.3)  # the agent is waiting by now
                    approval_decide(approval, decision, by, note)
                    return
                time.sleep(0.05)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def agent(live_server, project):
    secret = ingest_key_create(project=project).secret
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(
                endpoint=f"{live_server.url}/v1/traces",
                headers={"authorization": f"Bearer {secret}"},
                timeout=10,
            )
        )
    )
    client = Client(live_server.url, secret, timeout=5, tracer_provider=provider)
    ran: list[dict] = []

    @contracted_tool("issue_refund", "1", tracer_provider=provider)
    def issue_refund(*, order_id, amount):
        # Asked inside the tool's span: the span carries the approval it runs under.
        approval = client.request_approval(
            "support-agent",
            "issue_refund",
            {"order_id": order_id, "amount": amount},
            risk="high",
            confidence=0.4,
            reason="refund over 100",
            timeout_s=5,
        )
        if not approval.approved:
            return {"refused": approval.status}
        ran.append({"order_id": order_id, "amount": amount})
        return {"refund_id": f"rf-{order_id}"}

    yield client, provider, issue_refund, ran
    provider.shutdown()


def test_an_approved_call_runs_and_a_replay_with_other_arguments_is_flagged(agent, project):
    _client, provider, issue_refund, ran = agent
    tracer = provider.get_tracer("support-agent")
    reviewer = decide_when_asked("approved", note="ok")
    with tracer.start_as_current_span("invoke_agent support-agent") as root:
        assert issue_refund(order_id=7, amount=150) == {"refund_id": "rf-7"}
        approval = Approval.objects.get()
        # The agent replays the approved call with another amount, under the same approval.
        with tracer.start_as_current_span(
            "execute_tool issue_refund",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "issue_refund",
                "gen_ai.tool.call.arguments": '{"order_id": 7, "amount": 15000}',
                "agentops.approval.id": str(approval.public_id),
            },
        ):
            pass
    reviewer.join(5)
    assert provider.force_flush(10_000)
    trace_id = format(root.get_span_context().trace_id, "032x")

    assert ran == [{"order_id": 7, "amount": 150}]
    assert (approval.status, approval.decided_by, approval.tool) == (
        "approved",
        "ada",
        "issue_refund",
    )
    assert approval.trace_id == trace_id
    spans = list(Span.objects.filter(trace_id=trace_id, name="execute_tool issue_refund"))
    assert len(spans) == 2
    asked = next(s for s in spans if "agentops.approval.status" in s.attributes)
    assert asked.attributes["agentops.approval.id"] == str(approval.public_id)
    assert asked.attributes["agentops.approval.status"] == "approved"
    now = timezone.now()
    flagged = approval_violations(
        project_id=project.pk, since=now - timedelta(hours=1), until=now + timedelta(minutes=1)
    )
    assert [(r["trace_id"], r["outcome"]) for r in flagged] == [(trace_id, "other_arguments")]
    assert flagged[0]["span_id"] != asked.span_id


def test_a_denial_stops_the_call_and_is_not_a_violation(agent, project):
    _client, provider, issue_refund, ran = agent
    reviewer = decide_when_asked("denied", note="too much")
    assert issue_refund(order_id=8, amount=900) == {"refused": "denied"}
    reviewer.join(5)
    assert provider.force_flush(10_000)
    assert ran == []
    span = Span.objects.get(name="execute_tool issue_refund")
    assert span.attributes["agentops.approval.status"] == "denied"
    now = timezone.now()
    window = {"since": now - timedelta(hours=1), "until": now + timedelta(minutes=1)}
    assert approval_violations(project_id=project.pk, **window) == []


def test_no_decision_in_time_expires_and_fails_closed(agent):
    client, _provider, _issue_refund, _ran = agent
    started = time.monotonic()
    answer = client.request_approval("support-agent", "issue_refund", {"order_id": 9}, timeout_s=1)
    assert time.monotonic() - started < 6
    assert (answer.approved, answer.status) == (False, "expired")
    assert Approval.objects.get(public_id=answer.id).status == "expired"


def test_past_the_waiter_cap_the_client_polls_until_decided(agent, settings):
    settings.APPROVAL_MAX_WAITERS = 0
    client, _provider, _issue_refund, _ran = agent
    reviewer = decide_when_asked("approved")
    answer = client.request_approval(
        "support-agent", "issue_refund", {"order_id": 10}, timeout_s=10
    )
    reviewer.join(5)
    assert (answer.approved, answer.decided_by) == (True, "ada")


def test_a_console_that_cannot_be_reached_is_not_an_approval(closed_port):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = Client(f"http://127.0.0.1:{closed_port}", "key", timeout=1)
    with provider.get_tracer("t").start_as_current_span("run"):
        answer = client.request_approval("a", "t", {"x": 1})
    assert isinstance(answer, SdkApproval)
    assert (answer.approved, answer.status, answer.id) == (False, "unavailable", "")
    assert answer.reason.startswith("unavailable:")
    (span,) = exporter.get_finished_spans()
    assert span.attributes["agentops.approval.status"] == "unavailable"
    assert "agentops.approval.id" not in span.attributes


@pytest.mark.parametrize("timeout_s", [0, 86_401, 2.5, True])
def test_a_bad_timeout_is_refused_before_asking(timeout_s):
    client = Client("http://127.0.0.1:9", "key")
    with pytest.raises((ValueError, TypeError)):
        client.request_approval("a", "t", {}, timeout_s=timeout_s)


def test_an_empty_span_context_sends_no_trace_ids(agent):
    client, _provider, _issue_refund, _ran = agent
    assert trace.get_current_span().get_span_context().is_valid is False
    reviewer = decide_when_asked("denied")
    answer = client.request_approval("support-agent", "issue_refund", {"order_id": 11})
    reviewer.join(5)
    assert answer.status == "denied"
    assert Approval.objects.get(public_id=answer.id).trace_id == ""
