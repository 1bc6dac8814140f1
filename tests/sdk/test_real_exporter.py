"""An agent governed through the SDK, traced with the real OpenTelemetry SDK and OTLP/HTTP
exporter, against a live console: what it sends is stored with its contract, key and
decision; the console's contract check of those spans agrees with what the SDK refused; a
deny or escalate stops the tool; a run cap stops a loop; a console that is down stops
everything (fail closed)."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import pytest
from agentops_sdk import Client, ContractUnavailable, ContractViolation, contracted_tool
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from budgets.models import BudgetEnvelope
from controls.checks import contract_checks_run
from controls.models import ContractCheck, PolicyDecision
from controls.policies import policy_version_create
from controls.services import contract_upsert
from traces.models import Span, Step, Trace
from traces.services import ingest_key_create

pytestmark = pytest.mark.live

AGENT = "support-agent"
POLICIES = """
@id("lookups")
permit(principal, action == Action::"call_tool", resource == Tool::"lookup_order");

@id("refunds")
permit(principal, action == Action::"call_tool", resource == Tool::"issue_refund");

@id("big-refund")
@escalate("refunds over 100.00 need a person")
forbid(principal, action == Action::"call_tool", resource == Tool::"issue_refund")
when { context.amount > 10000 };

@id("blocked-order")
forbid(principal, action, resource == Tool::"issue_refund")
when { context.arguments has order_id && context.arguments.order_id == 13 };
"""
ORDER = {"type": "integer", "minimum": 1}
# gpt-4o: 1000 input and 250 output tokens are $0.005 at $2.50 / $10 per million.
CALL_COST = Decimal("0.005")
RUN_CAP = Decimal("0.018")  # three calls fit (0.015), a fourth would not


class Agent:
    """A support agent: budget before the model call, policy before the refund, both tools
    contracted and validated locally."""

    def __init__(self, base_url: str, key: str, provider: TracerProvider) -> None:
        self.console = Client(base_url, key, timeout=5, tracer_provider=provider)
        self.provider = provider
        self.tracer = provider.get_tracer("support-agent")
        self.ran: list[tuple[str, object]] = []
        checked = {"validate": self.console, "tracer_provider": provider}

        @contracted_tool("lookup_order", "1", **checked)
        def lookup_order(*, order_id):
            self.ran.append(("lookup_order", order_id))
            return {"status": "shipped"}

        @contracted_tool(
            "issue_refund", "2", idempotency_key=lambda a, kw: f"refund-{kw['order_id']}", **checked
        )
        def issue_refund(*, order_id, amount):
            self.ran.append(("issue_refund", order_id))
            return {"refund_id": f"rf-{order_id}"}

        self.lookup_order, self.issue_refund = lookup_order, issue_refund

    def model_call(self) -> None:
        with self.tracer.start_as_current_span(
            "chat gpt-4o",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 250,
            },
        ):
            pass
        # The console knows the run's spend once its spans are in.
        self.provider.force_flush(10_000)

    def handle(self, order_id, amount, *, refund_amount=None) -> dict:
        """One run: (outcome, decision, trace id)."""
        with self.tracer.start_as_current_span(
            f"invoke_agent {AGENT}",
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": AGENT},
        ) as root:
            run = {"trace_id": format(root.get_span_context().trace_id, "032x"), "decision": None}
            budget = self.console.budget_check(agent=AGENT, estimated_cost=CALL_COST)
            if not budget.allow:
                return run | {"outcome": f"budget: {budget.reason}"}
            self.model_call()
            try:
                self.lookup_order(order_id=order_id)
                decision = self.console.policy_check(
                    AGENT, "issue_refund", {"order_id": order_id}, amount=amount
                )
                run["decision"] = decision
                if not decision.ok:
                    return run | {"outcome": decision.decision}
                self.issue_refund(order_id=order_id, amount=refund_amount or float(amount))
            except ContractViolation as exc:
                return run | {"outcome": exc.outcome, "violation": exc}
            except ContractUnavailable:
                return run | {"outcome": "registry unavailable"}
            return run | {"outcome": "refunded"}

    def research(self, max_calls: int = 20) -> dict:
        """A loop that never decides it has enough: the budget check must stop it."""
        with self.tracer.start_as_current_span(
            "invoke_agent researcher", attributes={"gen_ai.agent.name": "researcher"}
        ) as root:
            calls = 0
            while calls < max_calls:
                budget = self.console.budget_check(agent="researcher", estimated_cost=CALL_COST)
                if not budget.allow:
                    break
                self.model_call()
                calls += 1
            trace_id = format(root.get_span_context().trace_id, "032x")
            return {"calls": calls, "reason": budget.reason, "trace_id": trace_id}


@pytest.fixture
def governed(live_server, project):
    contract_upsert(
        project=project,
        data={
            "name": "lookup_order",
            "version": "1",
            "arguments_schema": {
                "type": "object",
                "properties": {"order_id": ORDER},
                "required": ["order_id"],
            },
        },
    )
    contract_upsert(
        project=project,
        data={
            "name": "issue_refund",
            "version": "2",
            "side_effects": True,
            "requires_idempotency_key": True,
            "risk": "high",
            "arguments_schema": {
                "type": "object",
                "properties": {"order_id": ORDER, "amount": {"type": "number"}},
                "required": ["order_id", "amount"],
            },
        },
    )
    policy_version_create(project=project, text=POLICIES, created_by="ada")
    BudgetEnvelope.objects.create(
        project=project,
        name="Research run cap",
        agent="researcher",
        metric=BudgetEnvelope.Metric.RUN_COST,
        limit=RUN_CAP,
        period=BudgetEnvelope.Period.DAY,
        thresholds=[100],
    )
    secret = ingest_key_create(project=project).secret
    provider = TracerProvider(resource=Resource.create({"service.name": "support-api"}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(
                endpoint=f"{live_server.url}/v1/traces",
                headers={"authorization": f"Bearer {secret}"},
                timeout=10,
            )
        )
    )
    yield Agent(live_server.url, secret, provider)
    provider.shutdown()


def spans_of(trace_id: str) -> dict[str, Span]:
    return {s.name: s for s in Span.objects.filter(trace_id=trace_id)}


def test_a_governed_agent_through_the_real_exporter(governed, project):
    refunded = governed.handle(1001, Decimal("20.00"))
    escalated = governed.handle(1002, Decimal("250.00"))
    denied = governed.handle(13, Decimal("5.00"))
    invalid = governed.handle(1004, Decimal("5.00"), refund_amount="twenty")
    runaway = governed.research()
    assert governed.provider.force_flush(10_000)

    # What the SDK decided, and which tools ran.
    assert [r["outcome"] for r in (refunded, escalated, denied, invalid)] == [
        "refunded",
        "escalate",
        "deny",
        "arguments_invalid",
    ]
    assert invalid["violation"].pointer == "/amount"
    assert [r["decision"].policy_ids for r in (refunded, escalated, denied)] == [
        ["refunds"],
        ["big-refund"],
        ["blocked-order"],
    ]
    assert governed.ran == [
        ("lookup_order", 1001),
        ("issue_refund", 1001),
        ("lookup_order", 1002),
        ("lookup_order", 13),
        ("lookup_order", 1004),
    ]

    # The stored spans carry the contract, the key and the decision.
    stored = spans_of(refunded["trace_id"])
    tool = stored["execute_tool issue_refund"]
    assert tool.step == Step.TOOL
    assert tool.attributes["agentops.contract.name"] == "issue_refund"
    assert tool.attributes["agentops.contract.version"] == "2"
    assert tool.attributes["agentops.idempotency_key"] == "refund-1001"
    assert tool.attributes["agentops.contract.validation"] == "ok"
    assert json.loads(tool.tool_arguments) == {"order_id": 1001, "amount": 20.0}
    assert json.loads(tool.tool_result) == {"refund_id": "rf-1001"}
    policy = stored["policy issue_refund"]
    assert policy.step == Step.POLICY
    assert policy.attributes["agentops.policy.decision"] == "allow"
    decision_id = refunded["decision"].decision_id
    assert policy.attributes["agentops.policy.decision_id"] == decision_id
    audit = PolicyDecision.objects.get(public_id=decision_id)
    assert (audit.project_id, audit.tool, audit.decision) == (project.pk, "issue_refund", "allow")
    assert policy.started_at < tool.started_at
    # The escalated and denied refunds never ran: no tool span for them.
    for run, decision in ((escalated, "escalate"), (denied, "deny")):
        stored = spans_of(run["trace_id"])
        assert "execute_tool issue_refund" not in stored
        gate = stored["policy issue_refund"]
        assert gate.attributes["agentops.policy.decision"] == decision
        assert gate.attributes["agentops.policy.decision_id"] == run["decision"].decision_id
    refused = spans_of(invalid["trace_id"])["execute_tool issue_refund"]
    assert refused.status == "error"
    assert refused.attributes["agentops.contract.violation.pointer"] == "/amount"

    # The console's own contract check of those spans agrees with the SDK.
    contract_checks_run(project_id=project.pk)
    outcomes = Counter(
        ContractCheck.objects.filter(project=project).values_list("tool_name", "outcome")
    )
    assert outcomes == {
        ("lookup_order", "ok"): 4,
        ("issue_refund", "ok"): 1,
        ("issue_refund", "arguments_invalid"): 1,
    }
    check = ContractCheck.objects.get(outcome="arguments_invalid")
    assert (check.trace_id, check.contract_version) == (invalid["trace_id"], "2")
    assert check.detail == {"pointer": "/amount", "message": "'twenty' is not of type 'number'"}

    # The runaway loop stopped at its cap: three calls fit, a fourth would pass it.
    assert (runaway["calls"], runaway["reason"]) == (3, "run_cap_exceeded")
    run = Trace.objects.get(project=project, trace_id=runaway["trace_id"])
    assert run.cost_usd <= RUN_CAP < run.cost_usd + CALL_COST
    root = spans_of(runaway["trace_id"])["invoke_agent researcher"]
    assert root.attributes["agentops.budget.reason"] == "run_cap_exceeded"
    assert root.attributes["agentops.budget.allow"] is False


def test_with_the_console_down_the_agent_does_nothing(governed, closed_port):
    down = f"http://127.0.0.1:{closed_port}"
    agent = Agent(down, "ak_whatever", governed.provider)
    # The model call is refused first ...
    assert agent.handle(1001, Decimal("5.00"))["outcome"].startswith("budget: unavailable: ")
    # ... and each check on its own fails closed too.
    with agent.tracer.start_as_current_span("invoke_agent support-agent"):
        decision = agent.console.policy_check(AGENT, "issue_refund", {"order_id": 1})
        assert (decision.decision, decision.ok) == ("deny", False)
        assert decision.reason.startswith("unavailable: ")
        with pytest.raises(ContractUnavailable):
            agent.lookup_order(order_id=1)
        with pytest.raises(ContractUnavailable):
            agent.issue_refund(order_id=1, amount=5)
    assert agent.ran == []
    assert PolicyDecision.objects.count() == 0
