"""The SDK's policy and budget checks against a live console: real answers, failing closed
(or open, when asked) when the console cannot answer, and the decision on a policy span."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from agentops_sdk import Client, RequestRefused
from django.utils import timezone
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from budgets.models import BudgetEnvelope, State
from controls.policies import policy_version_create
from controls.services import contract_upsert
from traces.services import ingest_key_create

POLICIES = """
@id("lookups")
permit(principal, action == Action::"call_tool", resource == Tool::"lookup_order");

@id("no-refunds")
forbid(principal, action, resource == Tool::"refund_order");
"""


@pytest.fixture
def client(live_server, project):
    contract_upsert(project=project, data={"name": "lookup_order", "version": "1.0.0"})
    policy_version_create(project=project, text=POLICIES, created_by="ada")
    return Client(live_server.url, ingest_key_create(project=project).secret, timeout=5)


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    exporter.provider = provider
    return provider.get_tracer("test"), exporter


def test_allow_and_deny_come_back_from_the_console(client):
    allowed = client.policy_check("support", "lookup_order", arguments={"order_id": "A-1"})
    assert (allowed.decision, allowed.ok, allowed.policy_ids) == ("allow", True, ["lookups"])
    assert allowed.decision_id
    denied = client.policy_check("support", "refund_order", amount=Decimal("12.50"))
    assert (denied.decision, denied.ok, denied.policy_ids) == ("deny", False, ["no-refunds"])


def test_the_decision_lands_on_a_policy_span_of_its_own(client, spans):
    """The console reads agentops.policy.* as a policy gate: on the run's span it would turn
    the run into a policy step, so the decision gets a child span."""
    tracer, exporter = spans
    client.tracer_provider = exporter.provider
    with tracer.start_as_current_span("invoke_agent support") as run:
        decision = client.policy_check("support", "refund_order")
    policy, root = exporter.get_finished_spans()
    assert root.name == "invoke_agent support"
    assert not any(k.startswith("agentops.policy") for k in root.attributes)
    assert policy.name == "policy refund_order"
    assert policy.parent.span_id == run.get_span_context().span_id
    assert policy.attributes["agentops.step"] == "policy"
    assert policy.attributes["agentops.policy.decision"] == "deny"
    assert policy.attributes["agentops.policy.name"] == "no-refunds"
    assert policy.attributes["agentops.policy.reason"] == "forbidden by no-refunds"
    assert policy.attributes["agentops.policy.decision_id"] == decision.decision_id
    assert policy.attributes["agentops.policy.version"] == decision.policy_version == 1


def test_a_policy_span_the_agent_opened_is_used(client, spans):
    tracer, exporter = spans
    client.tracer_provider = exporter.provider
    with tracer.start_as_current_span("gate", attributes={"agentops.step": "policy"}):
        decision = client.policy_check("support", "lookup_order")
    (span,) = exporter.get_finished_spans()
    assert span.name == "gate"
    assert span.attributes["agentops.policy.decision_id"] == decision.decision_id


def test_without_the_agents_provider_the_decision_goes_on_the_current_span(client, spans):
    """The agent traces with a provider of its own and did not pass it: the global one is a
    no-op, and the current span is the only place left for the decision."""
    tracer, exporter = spans
    with tracer.start_as_current_span("execute_tool refund_order"):
        decision = client.policy_check("support", "refund_order")
    (span,) = exporter.get_finished_spans()
    assert span.attributes["agentops.policy.decision"] == "deny"
    assert span.attributes["agentops.policy.decision_id"] == decision.decision_id


def test_a_budget_stop_comes_back_and_lands_on_the_span(client, project, spans):
    now = timezone.now()
    BudgetEnvelope.objects.create(
        project=project,
        name="Monthly",
        limit=Decimal(100),
        thresholds=[80, 100],
        state=State.EXCEEDED,
        last_value=Decimal(100),
        last_period_start=now - timedelta(days=1),
        last_period_end=now + timedelta(days=20),
        last_evaluated_at=now,
    )
    tracer, exporter = spans
    with tracer.start_as_current_span("chat"):
        answer = client.budget_check(agent="support", estimated_cost=Decimal("0.10"))
    assert (answer.allow, answer.reason) == (False, "budget_exhausted")
    assert answer.envelopes[0]["name"] == "Monthly"
    (span,) = exporter.get_finished_spans()
    assert span.attributes["agentops.budget.allow"] is False
    assert span.attributes["agentops.budget.reason"] == "budget_exhausted"


def test_a_bad_request_raises(client):
    with pytest.raises(RequestRefused) as caught:
        client.policy_check("support", "lookup_order", confidence="2")
    assert caught.value.status == 400
    assert "confidence" in caught.value.detail
    with pytest.raises(RequestRefused) as caught:
        Client(client.base_url, "not-a-key").budget_check()
    assert caught.value.status == 401


def test_an_unreachable_console_fails_closed(closed_port, spans):
    tracer, exporter = spans
    client = Client(
        f"http://127.0.0.1:{closed_port}", "key", timeout=1, tracer_provider=exporter.provider
    )
    with tracer.start_as_current_span("invoke_agent support"):
        decision = client.policy_check("support", "refund_order")
        budget = client.budget_check(agent="support")
    assert (decision.decision, decision.ok) == ("deny", False)
    assert decision.reason.startswith("unavailable: ")
    assert (budget.allow, budget.reason.startswith("unavailable: ")) == (False, True)
    policy, run = exporter.get_finished_spans()
    assert policy.attributes["agentops.policy.decision"] == "deny"
    assert policy.attributes["agentops.policy.reason"].startswith("unavailable: ")
    assert run.attributes["agentops.budget.allow"] is False


def test_the_budget_check_asks_for_the_current_run(client, spans, monkeypatch):
    """trace_id defaults to the current span's trace, so a per-run cap covers the run."""
    sent = []
    monkeypatch.setattr(client, "_request", lambda m, p, body=None: sent.append(body) or {})
    tracer, _ = spans
    with tracer.start_as_current_span("invoke_agent support") as run:
        client.budget_check(agent="support")
        client.budget_check(agent="support", trace_id="")
    client.budget_check(agent="support")
    assert sent[0]["trace_id"] == format(run.get_span_context().trace_id, "032x")
    assert "trace_id" not in sent[1]
    assert "trace_id" not in sent[2]


def test_a_silent_console_fails_closed_within_the_timeout(silent_port):
    client = Client(f"http://127.0.0.1:{silent_port}", "key", timeout=0.3)
    started = time.monotonic()
    decision = client.policy_check("support", "lookup_order")
    assert time.monotonic() - started < 1.5
    assert decision.decision == "deny"
    assert "timed out" in decision.reason


def test_fail_open_allows_and_says_so(closed_port):
    client = Client(f"http://127.0.0.1:{closed_port}", "key", timeout=1, fail_closed=False)
    decision = client.policy_check("support", "refund_order")
    assert (decision.decision, decision.ok) == ("allow", True)
    assert "fail_closed=False" in decision.reason
    budget = client.budget_check()
    assert budget.allow is True
    assert "fail_closed=False" in budget.reason


def test_a_server_error_fails_closed(live_server, project, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("controls.api.policy_views.policy_check", broken)
    client = Client(live_server.url, ingest_key_create(project=project).secret, timeout=5)
    decision = client.policy_check("support", "lookup_order")
    assert decision.decision == "deny"
    assert decision.reason.startswith("unavailable: 500")
