"""`contracted_tool`: say on the span which tool contract a call is made under.

Inside an active, recording span (the tool span a framework's instrumentation opened, or
one the agent opened) the attributes go on that span. With none, the decorator opens the
tool span itself, `execute_tool {name}`, with the GenAI semantic-convention attributes the
console reads, so a call is never left unmarked.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import Any, TypeVar

from opentelemetry import trace

F = TypeVar("F", bound=Callable[..., Any])
KeyFunction = Callable[[tuple[Any, ...], dict[str, Any]], str]


def _arguments_json(func: Callable[..., Any], args: tuple, kwargs: dict) -> str:
    try:
        bound = inspect.signature(func).bind(*args, **kwargs)
        arguments: dict[str, Any] = dict(bound.arguments)
    except (TypeError, ValueError):
        arguments = {"args": list(args), **kwargs}
    return json.dumps(arguments, default=str)


def contracted_tool(
    name: str,
    version: str,
    *,
    idempotency_key: str | KeyFunction | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> Callable[[F], F]:
    """Mark each call of the decorated function (sync or async) as tool `name` under contract
    `version`. `idempotency_key` is a fixed string or a function of (args, kwargs)."""

    def mark(func: Callable[..., Any], args: tuple, kwargs: dict):
        attributes: dict[str, Any] = {
            "agentops.contract.name": name,
            "agentops.contract.version": version,
        }
        key = idempotency_key(args, kwargs) if callable(idempotency_key) else idempotency_key
        if key:
            attributes["agentops.idempotency_key"] = str(key)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(attributes)
            return None
        attributes |= {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.arguments": _arguments_json(func, args, kwargs),
        }
        tracer = trace.get_tracer("agentops_sdk", tracer_provider=tracer_provider)
        return tracer.start_as_current_span(
            f"execute_tool {name}", kind=trace.SpanKind.INTERNAL, attributes=attributes
        )

    def decorate(func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                own_span = mark(func, args, kwargs)
                if own_span is None:
                    return await func(*args, **kwargs)
                with own_span:
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            own_span = mark(func, args, kwargs)
            if own_span is None:
                return func(*args, **kwargs)
            with own_span:
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
