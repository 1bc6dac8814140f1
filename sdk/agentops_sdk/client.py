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
import math
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace

# Throttling and a slow request body are the console being busy, not the caller's mistake.
UNAVAILABLE_4XX = {408, 429}
MAX_APPROVAL_TIMEOUT_S = 24 * 3600
MAX_APPROVAL_WAIT_S = 30  # the console's cap on one long-poll
APPROVAL_GRACE_S = 2


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


@dataclass(frozen=True)
class Approval:
    """A person's answer to `Client.request_approval`. Only "approved" lets the action
    run: "denied", "expired", "pending" (no answer within the timeout) and "unavailable"
    (the console could not be asked or did not answer) all mean no."""

    id: str  # the console's approval id ("" when it was never stored)
    status: str
    decided_by: str = ""
    note: str = ""
    reason: str = ""  # why there is no decision, for "pending" and "unavailable"

    @property
    def approved(self) -> bool:
        return self.status == "approved"


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

    def request_approval(
        self,
        agent: str,
        tool: str,
        arguments: dict[str, Any],
        *,
        risk: str = "",
        confidence: Any = None,
        reason: str = "",
        timeout_s: int = 300,
        agent_version: str = "",
    ) -> Approval:
        """Ask a person whether `agent` may call `tool` with `arguments`, and wait for the
        answer: approved, denied, or expired after `timeout_s` seconds (1 to 86400). Blocks
        up to the timeout, long-polling the console (at most 30 s per request). Fails
        closed: anything but an approval, including a console that cannot be reached, is
        `approved == False`. A 4xx (a bad field or key) raises RequestRefused.

        The approval is bound to these arguments: the tool span of the call must carry
        `agentops.approval.id` and the same arguments (as JSON), or the console flags it.
        The id and the status are recorded on the current span (`agentops.approval.id`,
        `agentops.approval.status`): call this inside the tool's span (a function
        decorated with `contracted_tool`) and the binding is made for you."""
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int):
            raise TypeError("timeout_s must be a whole number of seconds")
        if not 1 <= timeout_s <= MAX_APPROVAL_TIMEOUT_S:
            raise ValueError(f"timeout_s must be 1 to {MAX_APPROVAL_TIMEOUT_S} seconds")
        # The form the tool span records its arguments in (`contracted_tool`), so the hashes
        # of the two agree for values JSON has no type for (dates, decimals).
        arguments = json.loads(json.dumps(arguments, default=str))
        body: dict[str, Any] = {
            "agent": agent,
            "tool": tool,
            "arguments": arguments,
            "timeout_s": timeout_s,
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            body["trace_id"] = trace.format_trace_id(context.trace_id)
            body["span_id"] = trace.format_span_id(context.span_id)
        for name, value in (("agent_version", agent_version), ("risk", risk), ("reason", reason)):
            if value:
                body[name] = value
        if confidence is not None:
            body["confidence"] = str(confidence)
        approval = self._approval_answer(body, timeout_s)
        span = trace.get_current_span()
        if span.is_recording():
            if approval.id:
                span.set_attribute("agentops.approval.id", approval.id)
            span.set_attribute("agentops.approval.status", approval.status)
        return approval

    def _approval_answer(self, body: dict[str, Any], timeout_s: int) -> Approval:
        try:
            created = self._request("POST", "/api/approvals/", body)
            approval_id = str(created["id"])
        except (Unavailable, KeyError, TypeError) as exc:
            return Approval(id="", status="unavailable", reason=self._unavailable_reason(exc))
        # The console's deadline starts when it stored the request: wait a little past it,
        # so the last answer is its "expired", not a guess.
        deadline = time.monotonic() + timeout_s + APPROVAL_GRACE_S
        last = Approval(id=approval_id, status="pending", reason="no decision yet")
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return Approval(
                    id=approval_id,
                    status=last.status,
                    reason=f"no decision within {timeout_s} s; failing closed",
                )
            wait = max(0, min(MAX_APPROVAL_WAIT_S, math.ceil(left)))
            started = time.monotonic()
            try:
                answer = self._request(
                    "GET", f"/api/approvals/{approval_id}/?wait={wait}", timeout=wait + self.timeout
                )
                status = str(answer["status"])
                last = Approval(
                    id=approval_id,
                    status=status,
                    decided_by=str(answer.get("decided_by") or ""),
                    note=str(answer.get("note") or ""),
                )
            except (Unavailable, KeyError, TypeError, AttributeError) as exc:
                status = "pending"
                last = Approval(id=approval_id, status="pending", reason=str(exc))
            if status != "pending":
                return last
            if time.monotonic() - started < min(wait, 1):
                # Answered without waiting (the console holds as many waits as it takes, or
                # could not be reached): poll again in a moment, not in a tight loop.
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    def _unavailable_reason(self, exc: Exception) -> str:
        outcome = "failing closed" if self.fail_closed else "failing open (fail_closed=False)"
        detail = str(exc) if isinstance(exc, Unavailable) else f"unexpected answer ({exc!r})"
        return f"unavailable: {detail}; {outcome}"

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
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
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=timeout or self.timeout
            ) as response:
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
