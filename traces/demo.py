"""Demo agent traffic, sent the way a real agent sends it: OpenTelemetry SDK spans
exported by the OTLP/HTTP exporter (protobuf, gzip) to the console's /v1/traces.

Runs are made of the steps the console shows: intent (root agent span with the user's
request) → plan (an LLM call that asks for tools) → tool calls and their results →
final answer, with policy gates, escalations to a human, retries, errors, several
agents, models (one deliberately unpriced), sessions and users. Times are backdated
so a fresh console shows a day of history at once, at the rate of the live runs that
follow (`history_starts`).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from traces.models import Phase

NS = 1_000_000_000
DAY_S = 24 * 3600
# One live slot in this many is a governed run (controls.demo_agent) instead of a plain one.
GOVERNED_SLOT_EVERY = 4


def history_starts(*, now_ns: int, runs: int, every: float) -> list[int]:
    """Start times (ns) of the backdated runs, oldest first: one run every `every` seconds,
    the newest `every` seconds before now, the live loop's own rate (one run per slot), so
    the history and the live runs make one even line on the cost chart. Without live runs
    (every 0) the history is spread over the last day."""
    step = every if every > 0 else DAY_S / max(runs, 1)
    return [now_ns - int((runs - i) * step * NS) for i in range(runs)]


def live_slot_is_governed(slot: int) -> bool:
    """Whether live slot number `slot` (0, 1, …) sends a governed run rather than a plain one:
    each slot sends exactly one run, so the live rate is one run per `every` seconds."""
    return slot % GOVERNED_SLOT_EVERY == GOVERNED_SLOT_EVERY - 1


@dataclass(frozen=True)
class AgentProfile:
    name: str
    service: str
    model: str
    provider: str
    version: str
    phase: str
    requests: tuple[str, ...]
    tools: tuple[str, ...]


AGENTS = (
    AgentProfile(
        name="support-agent",
        service="support-api",
        model="gpt-4o-mini",
        provider="openai",
        version="1.4.0",
        phase=Phase.BOUNDED.value,
        requests=(
            "Where is my order #{n}? It was due yesterday.",
            "I was charged twice for order #{n}, please fix it.",
            "Can I change the delivery address of order #{n}?",
        ),
        tools=("lookup_order", "track_shipment", "issue_refund"),
    ),
    AgentProfile(
        name="research-agent",
        service="research-worker",
        model="claude-3-5-sonnet-20241022",
        provider="anthropic",
        version="0.9.2",
        phase=Phase.SHADOW.value,
        requests=(
            "Summarise last week's churn drivers for the EU accounts.",
            "Which competitors changed their pricing this month?",
        ),
        tools=("search_docs", "query_warehouse"),
    ),
    AgentProfile(
        name="triage-agent",
        service="ops-bot",
        model="acme-internal-llm-7b",  # not in any price list: shows as unpriced
        provider="self-hosted",
        version="2.0.0",
        phase=Phase.EXPANDED.value,
        requests=("Alert: checkout latency p95 above 2s in eu-west-1 (incident {n}).",),
        tools=("get_runbook", "page_oncall"),
    ),
)


class DemoTraffic:
    """Sends demo runs to `endpoint` (…/v1/traces) with the given ingest key."""

    def __init__(self, *, endpoint: str, key: str, seed: int | None = None):
        self.rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
        self.providers: dict[str, TracerProvider] = {}
        self.endpoint = endpoint
        self.key = key

    def _tracer(self, agent: AgentProfile):
        provider = self.providers.get(agent.service)
        if provider is None:
            provider = TracerProvider(
                resource=Resource.create(
                    {
                        "service.name": agent.service,
                        "service.version": agent.version,
                        "deployment.environment.name": "demo",
                    }
                )
            )
            exporter = OTLPSpanExporter(
                endpoint=self.endpoint,
                headers={"authorization": f"Bearer {self.key}"},
                compression=Compression.Gzip,
                timeout=30,
            )
            provider.add_span_processor(
                BatchSpanProcessor(exporter, max_export_batch_size=256, schedule_delay_millis=500)
            )
            self.providers[agent.service] = provider
        return provider.get_tracer("agentops.demo", "1.0")

    def flush(self) -> None:
        for provider in self.providers.values():
            provider.force_flush(timeout_millis=30_000)

    def shutdown(self) -> None:
        for provider in self.providers.values():
            provider.shutdown()

    # ------------------------------------------------------------------ one run

    def run(self, *, start_ns: int | None = None) -> None:
        rng = self.rng
        agent = rng.choices(AGENTS, weights=(6, 3, 2))[0]
        tracer = self._tracer(agent)
        t = start_ns or time.time_ns()
        n = rng.randint(1000, 9999)
        request = rng.choice(agent.requests).format(n=n)
        user = f"user-{rng.randint(1, 40)}"
        session = f"sess-{user}-{rng.randint(1, 3)}"
        # Rollout story for the KPI pages: runs older than 12 hours ran the previous
        # version, which failed and escalated more; a fifth of support requests are a
        # human-handled control group, tagged with the phase "human".
        age_h = (time.time_ns() - t) / NS / 3600
        version = agent.version
        fail_rate, escalate_rate = 0.06, 0.12
        if age_h > 12:
            major, minor, _ = agent.version.split(".")
            version = f"{major}.{max(int(minor) - 1, 0)}.0"
            fail_rate, escalate_rate = 0.10, 0.22
        phase = agent.phase
        if agent.name == "support-agent" and rng.random() < 0.2:
            phase = Phase.HUMAN.value
            escalate_rate = 0.30
        fail = rng.random() < fail_rate
        escalate = rng.random() < escalate_rate
        common = {
            "gen_ai.agent.name": agent.name,
            "agentops.agent.version": version,
            "agentops.autonomy.phase": phase,
            "agentops.prompt.name": f"{agent.name}-system",
            "agentops.prompt.version": "v3" if rng.random() < 0.7 else "v4",
            "session.id": session,
            "user.id": user,
        }
        root = tracer.start_span(
            f"invoke_agent {agent.name}",
            kind=SpanKind.INTERNAL,
            start_time=t,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                **common,
                "agentops.step": "intent",
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": request}]}]
                ),
            },
        )
        ctx = _ctx(root)
        t += int(rng.uniform(0.005, 0.02) * NS)
        messages = [{"role": "user", "parts": [{"type": "text", "content": request}]}]
        tools = rng.sample(agent.tools, k=rng.randint(1, len(agent.tools)))
        for i, tool in enumerate(tools):
            call_id = f"call_{rng.getrandbits(48):012x}"
            args = (
                {"order_id": n} if "order" in tool or "refund" in tool else {"query": request[:40]}
            )
            t = self._llm(
                tracer,
                ctx,
                agent,
                t,
                messages,
                tool_call={"id": call_id, "name": tool, "arguments": args},
                common=common,
                role="plan",
            )
            if tool in ("issue_refund", "page_oncall"):
                t = self._policy(tracer, ctx, agent, t, tool, escalate, common)
                if escalate:
                    t = self._escalation(tracer, ctx, t, tool, common)
            tool_fails = fail and i == len(tools) - 1 and rng.random() < 0.5
            attempts = 2 if rng.random() < 0.08 else 1
            for attempt in range(attempts):
                result = {"status": "ok", "tool": tool, "n": n}
                span = tracer.start_span(
                    f"execute_tool {tool}",
                    context=ctx,
                    kind=SpanKind.INTERNAL,
                    start_time=t,
                    attributes={
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": tool,
                        "gen_ai.tool.type": "function",
                        "gen_ai.tool.call.id": call_id,
                        "gen_ai.tool.call.arguments": json.dumps(args),
                        "agentops.contract.name": tool,
                        "agentops.contract.version": "1",
                        "agentops.idempotency_key": f"{agent.name}:{tool}:{n}",
                        "agentops.retry.attempt": attempt,
                        **common,
                    },
                )
                t += int(rng.uniform(0.03, 0.6) * NS)
                if tool_fails or attempt < attempts - 1:
                    exc = TimeoutError(f"{tool} timed out after 30s")
                    span.record_exception(exc, timestamp=t)
                    span.set_status(Status(StatusCode.ERROR, str(exc)))
                    span.set_attribute("error.type", "TimeoutError")
                else:
                    span.set_attribute("gen_ai.tool.call.result", json.dumps(result))
                span.end(end_time=t)
                t += int(0.002 * NS)
            messages.append(
                {
                    "role": "tool",
                    "parts": [{"type": "tool_call_response", "id": call_id, "response": result}],
                }
            )
        answer = f"I checked {', '.join(tools)}. " + (
            "Everything is resolved." if not fail else "I could not finish this request."
        )
        t = self._llm(tracer, ctx, agent, t, messages, answer=answer, common=common, role="final")
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
        root.set_attribute("agentops.human.intervened", escalate)
        root.set_attribute("agentops.kpi.resolved", 0 if fail or escalate else 1)
        # Minutes a customer waited for the answer: the business's own cycle time.
        root.set_attribute(
            "agentops.kpi.handle_time_min",
            round(rng.lognormvariate(1.2 if phase != Phase.HUMAN else 2.3, 0.5), 1),
        )
        root.set_attribute("agentops.eval.helpfulness", round(rng.uniform(0.55, 0.98), 2))
        root.set_attribute("agentops.confidence", round(rng.uniform(0.4, 0.99), 2))
        if fail:
            root.set_status(Status(StatusCode.ERROR, "agent run failed"))
        else:
            root.set_status(Status(StatusCode.OK))
        root.end(end_time=t + int(0.003 * NS))

    def _llm(self, tracer, ctx, agent, t, messages, *, common, role, tool_call=None, answer=""):
        rng = self.rng
        input_tokens = 300 + 120 * len(messages) + rng.randint(0, 400)
        cached = (input_tokens // 2) if rng.random() < 0.4 else 0
        output_tokens = rng.randint(20, 300)
        span = tracer.start_span(
            f"chat {agent.model}",
            context=ctx,
            kind=SpanKind.CLIENT,
            start_time=t,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": agent.provider,
                "gen_ai.request.model": agent.model,
                "gen_ai.response.model": agent.model,
                "gen_ai.usage.input_tokens": input_tokens,
                "gen_ai.usage.output_tokens": output_tokens,
                "gen_ai.usage.cache_read.input_tokens": cached,
                "gen_ai.input.messages": json.dumps(messages),
                "agentops.step": role,
                **common,
            },
        )
        if tool_call:
            out = {
                "role": "assistant",
                "parts": [{"type": "tool_call", **tool_call}],
                "finish_reason": "tool_call",
            }
            messages.append({k: v for k, v in out.items() if k != "finish_reason"})
        else:
            out = {
                "role": "assistant",
                "parts": [{"type": "text", "content": answer}],
                "finish_reason": "stop",
            }
        span.set_attribute("gen_ai.output.messages", json.dumps([out]))
        span.set_attribute("gen_ai.response.finish_reasons", [out["finish_reason"]])
        t += int(rng.uniform(0.4, 3.5) * NS)
        span.end(end_time=t)
        return t + int(0.002 * NS)

    def _policy(self, tracer, ctx, agent, t, tool, escalate, common):
        span = tracer.start_span(
            f"policy {tool}",
            context=ctx,
            start_time=t,
            attributes={
                "agentops.step": "policy",
                "agentops.policy.name": f"{tool}-limit",
                "agentops.policy.decision": "escalate" if escalate else "allow",
                "agentops.risk": "high" if escalate else "low",
                "agentops.policy.reason": "amount above auto-approval limit"
                if escalate
                else "within limits",
                **common,
            },
        )
        t += int(0.004 * NS)
        span.end(end_time=t)
        return t + int(0.001 * NS)

    def _escalation(self, tracer, ctx, t, tool, common):
        span = tracer.start_span(
            "escalate to human review",
            context=ctx,
            start_time=t,
            attributes={
                "agentops.step": "escalation",
                "agentops.human.intervened": True,
                "agentops.escalation.queue": "tier-2-support",
                "agentops.escalation.reason": f"{tool} needs approval",
                **common,
            },
        )
        t += int(self.rng.uniform(20, 180) * NS)  # a person takes a while
        span.end(end_time=t)
        return t


def _ctx(span):
    from opentelemetry import trace

    return trace.set_span_in_context(span)
