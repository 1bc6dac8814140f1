"""Record a decision an agent took on its span, for the console's decision memory.

`record_decision(context, options, action, confidence=None, policies=None)` sets the
`agentops.decision.*` attributes (docs/semconv-mapping.md) on the current span, or, when no
span is recording, on a child span named `decision` that it opens and ends at once. The
console keeps one decision record per span; a person's action in the shadow phase is sent
later with `POST /api/decisions/action` and the run's trace id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from opentelemetry import trace

CONTEXT = "agentops.decision.context"
OPTIONS = "agentops.decision.options"
ACTION = "agentops.decision.action"
CONFIDENCE = "agentops.decision.confidence"
POLICIES = "agentops.decision.policies"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def decision_attributes(
    context: Any,
    options: Iterable[Any],
    action: str,
    confidence: float | None = None,
    policies: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The attributes of one decision. `context` is text, or anything JSON can say."""
    if confidence is not None and not 0.0 <= float(confidence) <= 1.0:
        raise ValueError("confidence is between 0 and 1")
    attributes: dict[str, Any] = {
        CONTEXT: _text(context),
        OPTIONS: [_text(o) for o in options],
        ACTION: str(action),
    }
    if confidence is not None:
        attributes[CONFIDENCE] = float(confidence)
    if policies:
        attributes[POLICIES] = [str(p) for p in policies]
    return attributes


def record_decision(
    context: Any,
    options: Iterable[Any],
    action: str,
    confidence: float | None = None,
    policies: Iterable[str] | None = None,
    *,
    child_span: bool = False,
    tracer_provider: Any = None,
) -> trace.Span:
    """Say on the span what the agent knew, which options it weighed and what it chose.
    With `child_span=True` (or no recording span) the decision gets a span of its own,
    from `tracer_provider` (default: the global one)."""
    attributes = decision_attributes(context, options, action, confidence, policies)
    current = trace.get_current_span()
    if current.is_recording() and not child_span:
        current.set_attributes(attributes)
        return current
    tracer = trace.get_tracer("agentops_sdk", tracer_provider=tracer_provider)
    with tracer.start_as_current_span("decision", attributes=attributes) as span:
        return span
