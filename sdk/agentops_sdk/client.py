"""The console's policy and budget checks over HTTP (urllib: no dependency beyond the OTel API).

When the console cannot answer (timeout, refused connection, 5xx, an answer that is not the
expected JSON) the client answers for it: deny by default (`fail_closed=True`), allow
otherwise, with a reason starting "unavailable:". A 4xx is the caller's mistake (bad field,
bad key) and raises `RequestRefused`: failing closed on it would hide the bug forever.

A policy decision goes on a span of its own, `policy {tool}` (`agentops.step` "policy"),
unless the current span is already one: the console reads `agentops.policy.*` on a span as
a policy gate, so the decision must not land on the run's span or the tool's.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace

# Throttling and a slow request body are the console being busy, not the caller's mistake.
UNAVAILABLE_4XX = {408, 429}


class RequestRefused(Exception):
    """The console refused the request as malformed or unauthorised (a 4xx)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"AgentOps Console refused the request ({status}): {detail}")
        self.status = status
        self.detail = detail


class Unavailable(Exception):
    """The console gave no usable answer."""


@dataclass(frozen=True)
class Decision:
    decision: str  # allow, deny or escalate
    policy_ids: list[str] = field(default_factory=list)
    reason: str = ""
    decision_id: str = ""
    policy_version: int | None = None  # the console's policy version that decided

    @property
    def ok(self) -> bool:
        return self.decision == "allow"


@dataclass(frozen=True)
class BudgetDecision:
    allow: bool
    reason: str
    envelopes: list[dict[str, Any]] = field(default_factory=list)


class Client:
    """One console and project key. Thread-safe: it keeps no state between calls."""

    def __init__(
        self,
        base_url: str,
        key: str,
        timeout: float = 2.0,
        fail_closed: bool = True,
        *,
        contract_ttl: float = 60.0,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise ValueError(f"base_url must be http:// or https://, not {base_url!r}")
        if contract_ttl < 0:
            raise ValueError("contract_ttl must be 0 or more seconds")
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.fail_closed = fail_closed
        # Seconds a contract fetched for local validation is used before it is fetched again.
        self.contract_ttl = contract_ttl
        self.tracer_provider = tracer_provider

    def policy_check(
        self,
        agent: str,
        tool: str,
        arguments: dict[str, Any] | None = None,
        agent_version: str = "",
        amount: Any = None,
        risk: str = "",
        confidence: Any = None,
    ) -> Decision:
        body: dict[str, Any] = {"agent": agent, "tool": tool, "agent_version": agent_version}
        if arguments is not None:
            body["arguments"] = arguments
        if risk:
            body["risk"] = risk
        # Sent as text: the console reads them as decimals, and a float would round.
        if amount is not None:
            body["amount"] = str(amount)
        if confidence is not None:
            body["confidence"] = str(confidence)
        current = trace.get_current_span()
        if current.is_recording() and _is_policy_span(current):
            decision = self._policy_answer(body)
            _record_decision(current, decision)
            return decision
        tracer = trace.get_tracer("agentops_sdk", tracer_provider=self.tracer_provider)
        span = tracer.start_span(
            f"policy {tool}", kind=trace.SpanKind.INTERNAL, attributes={"agentops.step": "policy"}
        )
        if not span.is_recording() and current.is_recording():
            # The agent traces with a provider that is not the global one and did not pass
            # tracer_provider=: the current span is the only place left for the decision.
            span = current
        with trace.use_span(span, end_on_exit=span is not current):
            decision = self._policy_answer(body)
            _record_decision(span, decision)
        return decision

    def _policy_answer(self, body: dict[str, Any]) -> Decision:
        try:
            answer = self._request("POST", "/api/policy/check", body)
            return Decision(
                decision=str(answer["decision"]),
                policy_ids=[str(p) for p in answer.get("policy_ids") or []],
                reason=str(answer.get("reason", "")),
                decision_id=str(answer.get("decision_id") or ""),
                policy_version=_int_or_none(answer.get("policy_version")),
            )
        except (Unavailable, KeyError, TypeError, AttributeError) as exc:
            return Decision(
                decision="deny" if self.fail_closed else "allow",
                reason=self._unavailable_reason(exc),
            )

    def budget_check(
        self,
        agent: str = "",
        session: str = "",
        trace_id: str | None = None,
        estimated_cost: Any = None,
    ) -> BudgetDecision:
        """`trace_id` None (the default) is the current span's trace, so a per-run cap
        covers the run being traced; "" asks for no run."""
        if trace_id is None:
            context = trace.get_current_span().get_span_context()
            trace_id = trace.format_trace_id(context.trace_id) if context.is_valid else ""
        body: dict[str, Any] = {}
        for name, value in (("agent", agent), ("session", session), ("trace_id", trace_id)):
            if value:
                body[name] = value
        if estimated_cost is not None:
            body["estimated_cost"] = str(estimated_cost)
        try:
            answer = self._request("POST", "/api/budgets/check", body)
            decision = BudgetDecision(
                allow=answer["allow"] is True,
                reason=str(answer["reason"]),
                envelopes=list(answer.get("envelopes") or []),
            )
        except (Unavailable, KeyError, TypeError, AttributeError) as exc:
            decision = BudgetDecision(
                allow=not self.fail_closed, reason=self._unavailable_reason(exc)
            )
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("agentops.budget.allow", decision.allow)
            span.set_attribute("agentops.budget.reason", decision.reason)
        return decision

    def _unavailable_reason(self, exc: Exception) -> str:
        outcome = "failing closed" if self.fail_closed else "failing open (fail_closed=False)"
        detail = str(exc) if isinstance(exc, Unavailable) else f"unexpected answer ({exc!r})"
        return f"unavailable: {detail}; {outcome}"

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.key}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        # The scheme is checked in __init__: only http and https reach urllib.
        request = urllib.request.Request(  # noqa: S310
            self.base_url + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            if exc.code >= 500 or exc.code in UNAVAILABLE_4XX:
                raise Unavailable(f"{exc.code} from the console") from exc
            raise RequestRefused(exc.code, detail) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            # TimeoutError and a dropped connection are OSErrors; a garbled status line is not.
            reason = getattr(exc, "reason", exc)
            raise Unavailable(f"{type(reason).__name__}: {reason}") from exc
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise Unavailable("the answer is not JSON") from exc
        if not isinstance(answer, dict):
            raise Unavailable("the answer is not a JSON object")
        return answer


def _is_policy_span(span: Any) -> bool:
    attrs = getattr(span, "attributes", None) or {}
    try:
        return attrs.get("agentops.step") == "policy"
    except AttributeError:
        return False


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _record_decision(span: Any, decision: Decision) -> None:
    if not span.is_recording():
        return
    span.set_attribute("agentops.policy.decision", decision.decision)
    if decision.reason:
        span.set_attribute("agentops.policy.reason", decision.reason[:500])
    if decision.policy_ids:
        span.set_attribute("agentops.policy.name", decision.policy_ids[0])
    if decision.decision_id:
        span.set_attribute("agentops.policy.decision_id", decision.decision_id)
    if decision.policy_version is not None:
        span.set_attribute("agentops.policy.version", decision.policy_version)
