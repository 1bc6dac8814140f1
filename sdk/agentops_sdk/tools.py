"""`contracted_tool`: say on the span which tool contract a call is made under, and optionally
check the call against the registry before the tool runs.

When the current span is a tool span (one a framework's instrumentation opened for this
call: `gen_ai.operation.name` "execute_tool", an OpenInference or Traceloop TOOL span, or
a span named "execute_tool …") the attributes go on that span. Otherwise (no span, or the
agent's run span) the decorator opens the tool span itself, `execute_tool {name}`, as a
child of the current one, with the GenAI semantic-convention attributes the console reads
(the arguments as JSON and, when the tool returns something, its result), so a call is
never left unmarked and a run span is never mistaken for a tool call.

With `validate=<Client>` the arguments are checked against the contract's schema (see
`agentops_sdk.contracts`) before the tool runs. A violation raises `ContractViolation`
(JSON pointer and message) and is recorded on the span: `agentops.contract.validation`
(the outcome: "ok", "arguments_invalid", "unknown_version", "no_contract",
"idempotency_key_missing" or "unavailable"), `agentops.contract.violation.pointer` and
`agentops.contract.violation.message`, the exception as an event, status error.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from agentops_sdk import contracts
from agentops_sdk.contracts import ContractUnavailable, ContractViolation

if TYPE_CHECKING:
    from agentops_sdk.client import Client

F = TypeVar("F", bound=Callable[..., Any])
KeyFunction = Callable[[tuple[Any, ...], dict[str, Any]], str]

VALIDATION = "agentops.contract.validation"
VIOLATION_POINTER = "agentops.contract.violation.pointer"
VIOLATION_MESSAGE = "agentops.contract.violation.message"
ON_UNAVAILABLE = ("refuse", "run")


def is_tool_span(span: Any) -> bool:
    """Whether a recording span is the tool span of a call (readable on the OTel SDK's
    spans; a span whose attributes cannot be read is not taken for one)."""
    attrs = getattr(span, "attributes", None) or {}
    try:
        if attrs.get("gen_ai.operation.name") == "execute_tool":
            return True
        if str(attrs.get("openinference.span.kind", "")).upper() == "TOOL":
            return True
        if str(attrs.get("traceloop.span.kind", "")).lower() == "tool":
            return True
    except AttributeError:
        return False
    name = getattr(span, "name", "")
    return isinstance(name, str) and name.startswith("execute_tool")


def _call_arguments(signature: inspect.Signature | None, args: tuple, kwargs: dict) -> dict:
    """The call's arguments by parameter name (**kwargs spread out, self and cls left out);
    defaults are not filled in: what the caller passed is what is recorded."""
    if signature is None:
        return {"args": list(args), **kwargs} if args else dict(kwargs)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return {"args": list(args), **kwargs} if args else dict(kwargs)
    params = list(signature.parameters.values())
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        param = signature.parameters[name]
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif param is params[0] and name in ("self", "cls"):
            continue
        else:
            out[name] = value
    return out


def contracted_tool(
    name: str,
    version: str,
    *,
    idempotency_key: str | KeyFunction | None = None,
    validate: Client | None = None,
    on_unavailable: str | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> Callable[[F], F]:
    """Mark each call of the decorated function (sync or async) as tool `name` under contract
    `version`. `idempotency_key` is a fixed string or a function of (args, kwargs).

    `validate=client` checks each call's arguments against the registry's schema before the
    tool runs (needs `agentops-sdk[validate]`). `on_unavailable` says what a call does when
    the registry cannot be reached and no schema was fetched before: "refuse" (raise
    ContractUnavailable; the default when the client fails closed) or "run" (run
    unvalidated; the default when it fails open)."""
    if on_unavailable is not None and on_unavailable not in ON_UNAVAILABLE:
        raise ValueError(f"on_unavailable must be one of {ON_UNAVAILABLE}, not {on_unavailable!r}")
    if validate is not None:
        if not (hasattr(validate, "_request") and hasattr(validate, "contract_ttl")):
            raise TypeError("validate= takes an agentops_sdk.Client")
        contracts.require_jsonschema()  # fail at decoration, not at the first call
        if on_unavailable is None:
            on_unavailable = "refuse" if validate.fail_closed else "run"
    elif on_unavailable is not None:
        raise ValueError("on_unavailable= applies only with validate=<Client>")

    def check(span: Any, arguments: dict, key: str, own: bool) -> None:
        """Validate the call (when asked) and record the verdict; raises to stop it."""
        if validate is None:
            return
        verdict = contracts.check_call(
            validate, name=name, version=version, arguments=arguments, idempotency_key=key
        )
        span.set_attribute(VALIDATION, verdict.outcome)
        if verdict.outcome == contracts.OK:
            return
        if verdict.outcome == contracts.UNAVAILABLE:
            if on_unavailable == "run":
                return
            error: Exception = ContractUnavailable(
                f"{name} {version}: not run, the contract registry cannot be reached "
                f"({verdict.message}) and no schema was fetched before"
            )
        else:
            span.set_attribute(VIOLATION_POINTER, verdict.pointer)
            span.set_attribute(VIOLATION_MESSAGE, verdict.message)
            error = ContractViolation(
                tool=name,
                version=version,
                outcome=verdict.outcome,
                pointer=verdict.pointer,
                message=verdict.message,
            )
        if not own:
            # The span the decorator opened records the exception as it leaves the span.
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)))
        raise error

    def decorate(func: F) -> F:
        try:
            signature: inspect.Signature | None = inspect.signature(func)
        except (TypeError, ValueError):
            signature = None

        def start(args: tuple, kwargs: dict):
            """(span to use, its context manager when the decorator opens it, arguments, key)."""
            arguments = _call_arguments(signature, args, kwargs)
            key = idempotency_key(args, kwargs) if callable(idempotency_key) else idempotency_key
            key = str(key) if key else ""
            attributes: dict[str, Any] = {
                "agentops.contract.name": name,
                "agentops.contract.version": version,
            }
            if key:
                attributes["agentops.idempotency_key"] = key
            current = trace.get_current_span()
            if current.is_recording() and is_tool_span(current):
                current.set_attributes(attributes)
                return current, None, arguments, key
            tracer = trace.get_tracer("agentops_sdk", tracer_provider=tracer_provider)
            span = tracer.start_span(
                f"execute_tool {name}",
                kind=trace.SpanKind.INTERNAL,
                attributes={
                    **attributes,
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": name,
                    "gen_ai.tool.call.arguments": json.dumps(arguments, default=str),
                },
            )
            if not span.is_recording() and current.is_recording():
                # Traced with a provider that is not the global one and no tracer_provider=:
                # the current span is the only place left to mark.
                current.set_attributes(attributes)
                return current, None, arguments, key
            return None, trace.use_span(span, end_on_exit=True), arguments, key

        def finish(span: Any, result: Any) -> Any:
            if result is not None:
                span.set_attribute("gen_ai.tool.call.result", json.dumps(result, default=str))
            return result

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                current, manager, arguments, key = start(args, kwargs)
                if manager is None:
                    check(current, arguments, key, own=False)
                    return await func(*args, **kwargs)
                with manager as span:
                    check(span, arguments, key, own=True)
                    return finish(span, await func(*args, **kwargs))

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            current, manager, arguments, key = start(args, kwargs)
            if manager is None:
                check(current, arguments, key, own=False)
                return func(*args, **kwargs)
            with manager as span:
                check(span, arguments, key, own=True)
                return finish(span, func(*args, **kwargs))

        return wrapper  # type: ignore[return-value]

    return decorate
