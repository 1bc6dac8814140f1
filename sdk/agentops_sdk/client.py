"""The console's policy and budget checks over HTTP (urllib: no dependency beyond the OTel API).

When the console cannot answer (timeout, refused connection, 5xx, an answer that is not the
expected JSON) the client answers for it: deny by default (`fail_closed=True`), allow
otherwise, with a reason starting "unavailable:". A 4xx is the caller's mistake (bad field,
bad key) and raises `RequestRefused`: failing closed on it would hide the bug forever.
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
        self, base_url: str, key: str, timeout: float = 2.0, fail_closed: bool = True
    ) -> None:
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise ValueError(f"base_url must be http:// or https://, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.fail_closed = fail_closed

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
        try:
            answer = self._post("/api/policy/check", body)
            decision = Decision(
                decision=str(answer["decision"]),
                policy_ids=[str(p) for p in answer.get("policy_ids") or []],
                reason=str(answer.get("reason", "")),
                decision_id=str(answer.get("decision_id") or ""),
            )
        except (Unavailable, KeyError, TypeError, AttributeError) as exc:
            decision = Decision(
                decision="deny" if self.fail_closed else "allow",
                reason=self._unavailable_reason(exc),
            )
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("agentops.policy.decision", decision.decision)
            if decision.policy_ids:
                span.set_attribute("agentops.policy.name", decision.policy_ids[0])
            if decision.decision_id:
                span.set_attribute("agentops.policy.decision_id", decision.decision_id)
        return decision

    def budget_check(
        self, agent: str = "", session: str = "", trace_id: str = "", estimated_cost: Any = None
    ) -> BudgetDecision:
        body: dict[str, Any] = {}
        for name, value in (("agent", agent), ("session", session), ("trace_id", trace_id)):
            if value:
                body[name] = value
        if estimated_cost is not None:
            body["estimated_cost"] = str(estimated_cost)
        try:
            answer = self._post("/api/budgets/check", body)
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

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        # The scheme is checked in __init__: only http and https reach urllib.
        request = urllib.request.Request(  # noqa: S310
            self.base_url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {self.key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
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
