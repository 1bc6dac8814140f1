"""Governed demo agents: live runs that ask the console before they act, through agentops_sdk,
traced with the real OpenTelemetry SDK and exported by the OTLP/HTTP exporter.

Every run asks `budget_check` before each model call and `policy_check` before each
side-effecting tool, and calls its tools through `contracted_tool`, which validates the
arguments against the registry (controls.demo registers the contracts and policies). The
scenarios, so that the Controls pages fill in within a minute:

* ``lookup``: read-only tools only (no policy question);
* ``refund``: a small refund, permitted, run with its idempotency key;
* ``big_refund``: a refund over 100.00, escalated to a person by policy, not run;
* ``close_account``: forbidden by policy, not run;
* ``bad_arguments``: the model asks for a refund of order "A-1234" (the contract says an
  integer): the SDK refuses the call before the tool runs, and the console's contract
  check flags the span;
* ``runaway``: a research agent that keeps searching, stopped by its per-run cost cap
  (budgets.demo, "Runaway research run") when the budget check says run_cap_exceeded.

The model calls are simulated (no model is called); their spans carry real token counts,
which the console prices. The spans of each model call are flushed before the next budget
check, so the console knows the run's spend when it is asked.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from agentops_sdk import (
    Client,
    ContractUnavailable,
    ContractViolation,
    contracted_tool,
    record_decision,
)
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from traces.demo import AGENTS, AgentProfile

SCENARIOS = ("lookup", "refund", "big_refund", "close_account", "bad_arguments", "runaway")
WEIGHTS = (4, 4, 2, 1, 2, 1)
# The agent's own price list, for the estimate it sends with each budget check (USD per
# million input and output tokens); the console prices the spans from its price data.
PRICES = {
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60")),
    "claude-3-5-sonnet-20241022": (Decimal(3), Decimal(15)),
}
MAX_LOOP = 25


@dataclass
class RunOutcome:
    agent: str
    scenario: str
    outcome: str  # done, refunded, escalated, denied, violation, budget_stop, not_run
    trace_id: str
    detail: str = ""
    model_calls: int = 0


@dataclass
class _Agent:
    profile: AgentProfile
    provider: TracerProvider
    console: Client
    tools: Any
    tracer: Any = field(init=False)

    def __post_init__(self) -> None:
        self.tracer = self.provider.get_tracer("agentops.demo.governed", "1.0")


def _tools(console: Client, provider: TracerProvider) -> SimpleNamespace:
    """The demo tools, each validated against its registered contract before it runs."""
    checked = {"validate": console, "tracer_provider": provider}

    @contracted_tool("lookup_order", "1", **checked)
    def lookup_order(*, order_id):
        return {"status": "shipped", "order_id": order_id, "carrier": "DHL"}

    @contracted_tool("track_shipment", "1", **checked)
    def track_shipment(*, order_id):
        return {"status": "in_transit", "eta_days": 2}

    @contracted_tool(
        "issue_refund", "2", idempotency_key=lambda a, kw: f"refund-{kw['order_id']}", **checked
    )
    def issue_refund(*, order_id, amount, reason=""):
        return {"status": "refunded", "refund_id": f"rf_{order_id}", "amount": amount}

    @contracted_tool(
        "close_account", "1", idempotency_key=lambda a, kw: f"close-{kw['customer_id']}", **checked
    )
    def close_account(*, customer_id):  # never runs: policy forbids it
        return {"status": "closed"}

    @contracted_tool("search_docs", "1", **checked)
    def search_docs(*, query):
        return {"status": "ok", "hits": 3}

    tools = (lookup_order, track_shipment, issue_refund, close_account, search_docs)
    return SimpleNamespace(**{tool.__name__: tool for tool in tools})


class GovernedDemo:
    """Sends governed demo runs to the console at `base_url` with the project key `key`."""

    def __init__(
        self,
        *,
        base_url: str,
        key: str,
        seed: int | None = None,
        pause: float = 1.0,
        timeout: float = 5.0,
    ) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
        self.pause = pause  # scales the simulated model and tool latencies (0: none)
        by_name = {a.name: a for a in AGENTS}
        self.agents: dict[str, _Agent] = {}
        for name in ("support-agent", "research-agent"):
            profile = by_name[name]
            provider = TracerProvider(
                resource=Resource.create(
                    {
                        "service.name": profile.service,
                        "service.version": profile.version,
                        "deployment.environment.name": "demo",
                    }
                )
            )
            exporter = OTLPSpanExporter(
                endpoint=f"{base_url.rstrip('/')}/v1/traces",
                headers={"authorization": f"Bearer {key}"},
                compression=Compression.Gzip,
                timeout=30,
            )
            provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
            console = Client(base_url, key, timeout=timeout, tracer_provider=provider)
            self.agents[name] = _Agent(profile, provider, console, _tools(console, provider))

    # ------------------------------------------------------------------ driving

    def tour(self) -> list[RunOutcome]:
        """One run of each scenario: what a newcomer should see first."""
        return [self.run(scenario) for scenario in SCENARIOS]

    def run(self, scenario: str | None = None) -> RunOutcome:
        scenario = scenario or self.rng.choices(SCENARIOS, weights=WEIGHTS)[0]
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}")
        agent = self.agents["research-agent" if scenario == "runaway" else "support-agent"]
        return self._run(agent, scenario)

    def flush(self) -> None:
        for agent in self.agents.values():
            agent.provider.force_flush(timeout_millis=30_000)

    def shutdown(self) -> None:
        for agent in self.agents.values():
            agent.provider.shutdown()

    # ------------------------------------------------------------------ one run

    def _run(self, agent: _Agent, scenario: str) -> RunOutcome:
        rng, profile = self.rng, agent.profile
        n = rng.randint(1000, 9999)
        user = f"user-{rng.randint(1, 40)}"
        request = {
            "lookup": f"Where is my order #{n}?",
            "refund": f"I was charged twice for order #{n}, please refund the duplicate.",
            "big_refund": f"Order #{n} arrived broken, I want all my money back.",
            "close_account": "Close my account and delete everything you have on me.",
            "bad_arguments": f"Refund the shipping fee of order A-{n}, please.",
            "runaway": "Find every churn driver mentioned anywhere in the knowledge base.",
        }[scenario]
        common = {
            "gen_ai.agent.name": profile.name,
            "agentops.agent.version": profile.version,
            "agentops.autonomy.phase": profile.phase,
            "session.id": f"sess-{user}-governed",
            "user.id": user,
        }
        messages: list[dict[str, Any]] = [
            {"role": "user", "parts": [{"type": "text", "content": request}]}
        ]
        with agent.tracer.start_as_current_span(
            f"invoke_agent {profile.name}",
            kind=SpanKind.INTERNAL,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "agentops.step": "intent",
                "gen_ai.input.messages": json.dumps(messages),
                **common,
            },
        ) as root:
            out = RunOutcome(
                profile.name, scenario, "done", trace.format_trace_id(root.context.trace_id)
            )
            step = getattr(self, f"_{scenario}")
            answer = step(agent, out, n, messages, common)
            root.set_attribute(
                "gen_ai.output.messages",
                json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "text", "content": answer}],
                            "finish_reason": "stop",
                        }
                    ]
                ),
            )
            root.set_attribute("agentops.kpi.resolved", int(out.outcome in ("done", "refunded")))
            if out.outcome in ("violation", "budget_stop", "not_run"):
                root.set_status(Status(StatusCode.ERROR, f"{out.outcome}: {out.detail}"[:200]))
            else:
                root.set_status(Status(StatusCode.OK))
        self.flush()
        return out

    def _think(self, agent, out, messages, common, *, tool_call=None, answer="") -> bool:
        """Ask the budget, then (if allowed) make one simulated model call; False when the
        budget check refuses it (the run must stop)."""
        rng, profile = self.rng, agent.profile
        input_tokens = 600 + 150 * len(messages) + rng.randint(0, 200)
        output_tokens = rng.randint(60, 160)
        price_in, price_out = PRICES.get(profile.model, (Decimal(0), Decimal(0)))
        estimate = (input_tokens * price_in + output_tokens * price_out) / 1_000_000
        budget = agent.console.budget_check(
            agent=profile.name, session=common["session.id"], estimated_cost=estimate
        )
        if not budget.allow:
            out.outcome, out.detail = "budget_stop", budget.reason
            return False
        with agent.tracer.start_as_current_span(
            f"chat {profile.model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": profile.provider,
                "gen_ai.request.model": profile.model,
                "gen_ai.response.model": profile.model,
                "gen_ai.usage.input_tokens": input_tokens,
                "gen_ai.usage.output_tokens": output_tokens,
                "gen_ai.input.messages": json.dumps(messages),
                "agentops.step": "plan" if tool_call else "final",
                **common,
            },
        ) as span:
            time.sleep(self.pause * rng.uniform(0.05, 0.25))
            if tool_call:
                part = {"type": "tool_call", "id": f"call_{rng.getrandbits(48):012x}", **tool_call}
                reply = {"role": "assistant", "parts": [part], "finish_reason": "tool_call"}
            else:
                reply = {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": answer}],
                    "finish_reason": "stop",
                }
            span.set_attribute("gen_ai.output.messages", json.dumps([reply]))
            span.set_attribute("gen_ai.response.finish_reasons", [reply["finish_reason"]])
        messages.append({k: v for k, v in reply.items() if k != "finish_reason"})
        out.model_calls += 1
        # The console learns the run's spend from its spans: send them before the next check.
        agent.provider.force_flush(timeout_millis=30_000)
        return True

    def _tool(self, agent, out, func, **arguments) -> Any:
        """Call a contracted tool; a refused call ends the run's useful work."""
        time.sleep(self.pause * self.rng.uniform(0.02, 0.1))
        try:
            return func(**arguments)
        except ContractViolation as exc:
            out.outcome, out.detail = "violation", str(exc)
        except ContractUnavailable as exc:
            out.outcome, out.detail = "not_run", str(exc)
        return None

    def _final(self, agent, out, messages, common, answer: str) -> str:
        self._think(agent, out, messages, common, answer=answer)
        return answer

    # ------------------------------------------------------------------ scenarios

    def _lookup(self, agent, out, n, messages, common) -> str:
        for name in ("lookup_order", "track_shipment"):
            call = {"name": name, "arguments": {"order_id": n}}
            if not self._think(agent, out, messages, common, tool_call=call):
                return "I had to stop: the budget check refused the next model call."
            if self._tool(agent, out, getattr(agent.tools, name), order_id=n) is None:
                return "I could not look that up."
        return self._final(agent, out, messages, common, f"Order #{n} is on its way.")

    def _refund(self, agent, out, n, messages, common, *, amount=None, order_id=None) -> str:
        amount = amount if amount is not None else Decimal(self.rng.randint(500, 9000)) / 100
        order_id = n if order_id is None else order_id
        arguments = {"order_id": order_id, "amount": float(amount)}
        call = {"name": "issue_refund", "arguments": arguments}
        if not self._think(agent, out, messages, common, tool_call=call):
            return "I had to stop: the budget check refused the next model call."
        decision = agent.console.policy_check(
            agent.profile.name,
            "issue_refund",
            {"order_id": order_id, "amount": str(amount)},
            agent_version=agent.profile.version,
            amount=amount,
            risk="high",
        )
        # Decision memory: what the agent knew, what it weighed, what it chose.
        record_decision(
            f"Customer asks for a refund of {amount} on order #{n} (duplicate charge).",
            ["issue_refund", "escalate to a person", "decline"],
            "issue_refund" if decision.ok else f"stop: policy said {decision.decision}",
            confidence=0.86,
            policies=decision.policy_ids,
            child_span=True,
            tracer_provider=agent.provider,
        )
        if decision.decision == "escalate":
            out.outcome, out.detail = "escalated", decision.reason
            with agent.tracer.start_as_current_span(
                "escalate to human review",
                attributes={
                    "agentops.step": "escalation",
                    "agentops.human.intervened": True,
                    "agentops.escalation.queue": "tier-2-support",
                    "agentops.escalation.reason": decision.reason,
                    **common,
                },
            ):
                pass
            return f"A colleague will review the refund of {amount} for order #{n}."
        if not decision.ok:
            out.outcome, out.detail = "denied", decision.reason
            return "I am not allowed to issue that refund."
        done = self._tool(
            agent,
            out,
            agent.tools.issue_refund,
            order_id=order_id,
            amount=float(amount),
            reason="duplicate charge",
        )
        if done is None:
            return "The refund could not be issued."
        out.outcome = "refunded"
        return self._final(agent, out, messages, common, f"Refunded {amount} for order #{n}.")

    def _big_refund(self, agent, out, n, messages, common) -> str:
        amount = Decimal(self.rng.randint(15_000, 90_000)) / 100
        return self._refund(agent, out, n, messages, common, amount=amount)

    def _bad_arguments(self, agent, out, n, messages, common) -> str:
        # The model copies the order number as the customer wrote it: a string, not the
        # integer the contract asks for.
        amount = Decimal("4.99")
        return self._refund(agent, out, n, messages, common, amount=amount, order_id=f"A-{n}")

    def _close_account(self, agent, out, n, messages, common) -> str:
        customer = f"cus_{n}"
        call = {"name": "close_account", "arguments": {"customer_id": customer}}
        if not self._think(agent, out, messages, common, tool_call=call):
            return "I had to stop: the budget check refused the next model call."
        decision = agent.console.policy_check(
            agent.profile.name,
            "close_account",
            {"customer_id": customer},
            agent_version=agent.profile.version,
            risk="critical",
        )
        if not decision.ok:
            out.outcome, out.detail = "denied", decision.reason
            return "I cannot close accounts; I have passed your request on."
        self._tool(agent, out, agent.tools.close_account, customer_id=customer)
        return self._final(agent, out, messages, common, "Your account is closed.")

    def _runaway(self, agent, out, n, messages, common) -> str:
        # A loop that never decides it has enough: only the run cap stops it.
        for page in range(1, MAX_LOOP + 1):
            query = f"churn drivers, page {page}"
            call = {"name": "search_docs", "arguments": {"query": query}}
            if not self._think(agent, out, messages, common, tool_call=call):
                return f"Stopped after {out.model_calls} model calls: {out.detail}."
            self._tool(agent, out, agent.tools.search_docs, query=query)
        return self._final(agent, out, messages, common, "Here is what I found.")
