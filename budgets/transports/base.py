"""The contract every alert channel kind implements.

A transport is one module under `budgets/transports/` exposing

    notify(channel: Channel, message: AlertMessage) -> None

which delivers one message or raises `TransportError`. `permanent=True` means that
sending again cannot succeed until someone changes the channel (a 404 webhook, a
revoked Slack hook, a refused recipient): the caller disables the channel. Anything
else is temporary and retried with backoff. A transport never retries by itself and
never touches Delivery rows: `budgets.notify` claims, logs and retries.

Each module also declares a `TRANSPORT` (kind, pydantic schema of `Channel.config`,
optional write-time checks) that `budgets.transports` registers. The schema is applied
on write (admin, API) *and* when the config is read for sending, so a row edited
behind the console's back fails as a permanent error instead of sending nonsense.
"""

from __future__ import annotations

import http.client
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic
from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from budgets import urlsafety
from budgets.formatting import format_value

if TYPE_CHECKING:
    from budgets.models import Alert, Channel

logger = logging.getLogger(__name__)

USER_AGENT = "AgentOps-Console/0.1 (+alerts)"
# HTTP answers that will not change by sending again; other failures are retried.
PERMANENT_HTTP_STATUSES = frozenset({400, 401, 403, 404, 410})
MAX_TRACE_LINKS = 10


class TransportError(Exception):
    """A failed delivery. `permanent` errors disable the channel; others are retried."""

    def __init__(self, message: str, *, permanent: bool = False, status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status_code = status_code

    def __str__(self) -> str:
        return self.message


# ------------------------------------------------------------------ the message


@dataclass(frozen=True)
class TraceLink:
    trace_id: str
    url: str


@dataclass(frozen=True)
class AlertMessage:
    """What every transport renders: built once per alert, independent of the channel."""

    alert_id: int | None  # None for a test message
    kind: str  # Alert.Kind value, or "test"
    status: str
    title: str
    text: str
    severity: str  # "info" | "warning" | "critical"
    message: str  # the evaluator's one-line message, as stored on the alert
    project: str
    project_slug: str
    envelope: str
    envelope_id: int | None
    metric: str
    metric_label: str
    value: Decimal
    limit: Decimal
    threshold: int
    period: str  # BudgetEnvelope.Period value
    period_start: datetime
    period_end: datetime
    timezone: str
    created_at: datetime
    url: str
    traces: tuple[TraceLink, ...] = field(default_factory=tuple)
    test: bool = False
    # Every threshold this one message stands for (crossed together), lowest first.
    thresholds: tuple[int, ...] = ()

    @property
    def percent(self) -> Decimal | None:
        if not self.limit:
            return None
        return (self.value / self.limit * 100).quantize(Decimal("0.1"))

    @property
    def value_display(self) -> str:
        return format_value(self.metric, self.value)

    @property
    def limit_display(self) -> str:
        return format_value(self.metric, self.limit)

    @property
    def period_display(self) -> str:
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")
        start = timezone.localtime(self.period_start, zone)
        end = timezone.localtime(self.period_end, zone)
        return f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} ({zone.key})"

    @classmethod
    def from_alert(cls, alert: Alert) -> AlertMessage:
        envelope = alert.envelope
        project = alert.project
        kind_title = {
            "threshold": f"{alert.threshold}% of the {_period_adjective(envelope.period)} limit "
            "reached",
            "forecast": f"forecast to exceed the {_period_adjective(envelope.period)} limit",
            "run_cap": "a run went over its cap",
        }.get(alert.kind, alert.get_kind_display())
        if alert.kind == "forecast":
            severity = "warning"
        elif alert.kind == "run_cap" or alert.threshold >= 100:
            severity = "critical"
        else:
            severity = "warning"
        thresholds: tuple[int, ...] = ()
        if alert.kind == "threshold":
            covered = alert.covers.values_list("threshold", flat=True) if alert.pk else []
            thresholds = tuple(sorted({alert.threshold, *covered}))
        message = cls(
            alert_id=alert.pk,
            kind=alert.kind,
            status=alert.status,
            title=_one_line(f"{envelope.name}: {kind_title}"),
            text="",
            severity=severity,
            message=alert.message,
            project=project.name,
            project_slug=project.slug,
            envelope=envelope.name,
            envelope_id=envelope.pk,
            metric=envelope.metric,
            metric_label=envelope.get_metric_display(),
            value=Decimal(alert.value),
            limit=Decimal(alert.limit),
            threshold=alert.threshold,
            period=envelope.period,
            period_start=alert.period_start,
            period_end=alert.period_end,
            timezone=envelope.timezone or "UTC",
            created_at=alert.created_at,
            url=public_url(f"/alerts/{alert.pk}/"),
            traces=tuple(
                TraceLink(trace_id=str(tid), url=_trace_url(project.slug, str(tid)))
                for tid in (alert.trace_ids or [])[:MAX_TRACE_LINKS]
            ),
            thresholds=thresholds,
        )
        return _with_text(message)

    @classmethod
    def sample(cls, channel: Channel) -> AlertMessage:
        """A test message for `channel`, shaped like a real alert, marked `test`."""
        now = timezone.now()
        project = channel.project
        message = cls(
            alert_id=None,
            kind="test",
            status="firing",
            title="Test alert from AgentOps Console",
            text="",
            severity="info",
            message=f"This is a test of the channel “{channel.name}”. No budget is affected.",
            project=project.name,
            project_slug=project.slug,
            envelope="Test envelope",
            envelope_id=None,
            metric="cost_usd",
            metric_label="Cost (USD)",
            value=Decimal("80"),
            limit=Decimal("100"),
            threshold=80,
            period="month",
            period_start=now.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
            period_end=now,
            timezone="UTC",
            created_at=now,
            url=public_url("/admin/budgets/channel/"),
            test=True,
        )
        return _with_text(message)


def _with_text(message: AlertMessage) -> AlertMessage:
    percent = f" ({message.percent}%)" if message.percent is not None else ""
    lines = [
        message.message,
        "",
        f"Value: {message.value_display} of {message.limit_display}{percent}",
    ]
    if len(message.thresholds) > 1:
        lines.append(f"Thresholds crossed: {', '.join(f'{t} %' for t in message.thresholds)}")
    lines += [
        f"Metric: {message.metric_label}",
        f"Period: {message.period_display}",
        f"Envelope: {message.envelope}",
        f"Project: {message.project}",
    ]
    return replace(message, text="\n".join(lines))


def public_url(path: str) -> str:
    return settings.PUBLIC_URL.rstrip("/") + path


def _trace_url(project_slug: str, trace_id: str) -> str:
    try:
        path = reverse("trace-timeline", kwargs={"slug": project_slug, "trace_id": trace_id})
    except NoReverseMatch:
        path = f"/p/{project_slug}/traces/{trace_id}/"
    return public_url(path)


def _period_adjective(period: str) -> str:
    return {
        "hour": "hourly",
        "day": "daily",
        "week": "weekly",
        "month": "monthly",
        "rolling": "rolling-window",
    }.get(period, period)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------ the registry entry

Schema = TypeVar("Schema", bound=pydantic.BaseModel)


@dataclass(frozen=True)
class Transport:
    kind: str
    schema: type[pydantic.BaseModel]
    notify: Callable[[Channel, AlertMessage], None]
    # Called on write with the parsed config; raise django ValidationError({field: msg}).
    check: Callable[[Any], None] | None = None
    # Called on write before parsing: fill generated values (the webhook secret). Returns
    # the completed dict and notices for the person saving ("a secret was generated").
    prepare: Callable[[dict[str, Any], dict[str, Any] | None], tuple[dict, list[str]]] | None = None
    example: dict[str, Any] = field(default_factory=dict)


class ConfigSchema(pydantic.BaseModel):
    """Base of the channel config schemas: strict about unknown keys and types."""

    # No whitespace stripping here: a secret is used byte for byte.
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


_MESSAGES = {
    "too_short": "Must have at least {min_length} item(s).",
    "too_long": "Must have at most {max_length} item(s).",
    "string_too_short": "Must be at least {min_length} characters long.",
    "string_too_long": "Must be at most {max_length} characters long.",
    "list_type": "Must be a list.",
    "string_type": "Must be a string.",
    "dict_type": "Must be an object.",
}


def schema_errors(exc: pydantic.ValidationError) -> dict[str, list[str]]:
    """Pydantic errors as {"field": [messages]}, the shape of a Django ValidationError."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        loc: Sequence[Any] = error.get("loc") or ()
        key = ".".join(str(part) for part in loc) or "config"
        kind = error.get("type", "")
        ctx = error.get("ctx") or {}
        if kind in _MESSAGES and all(
            f"{{{key}}}" not in _MESSAGES[kind] or key in ctx
            for key in ("min_length", "max_length")
        ):
            text = _MESSAGES[kind].format(**ctx)
        elif kind == "missing":
            text = "This setting is required."
        elif kind == "extra_forbidden":
            text = "Unknown setting."
        elif kind == "value_error":
            ctx_error = ctx.get("error")
            text = str(ctx_error) if ctx_error else error["msg"]
        else:
            text = error["msg"]
            if not text.endswith("."):
                text += "."
        errors.setdefault(key, []).append(text)
    return errors


def config_read(channel: Channel, schema: type[Schema]) -> Schema:
    """The channel's config parsed for sending; a broken config is a permanent error."""
    try:
        return schema.model_validate(channel.config)
    except pydantic.ValidationError as exc:
        details = "; ".join(
            f"{key}: {' '.join(messages)}" for key, messages in schema_errors(exc).items()
        )
        raise TransportError(f"Invalid channel settings: {details}", permanent=True) from None


# ------------------------------------------------------------------ HTTP for transports


def http_send(url: str, *, body: bytes, headers: dict[str, str]) -> urlsafety.HttpResponse:
    """POST through `urlsafety.http_post`, turning network failures into TransportErrors.

    The response is returned whatever its status: each transport decides what an error
    answer means (Slack's bodies, a webhook's status codes).
    """
    timeout = settings.ALERT_HTTP_TIMEOUT
    try:
        return urlsafety.http_post(url, body=body, headers=headers, timeout=timeout)
    except urlsafety.UnsafeURL as exc:
        # The check passed when the channel was saved: the name now resolves elsewhere.
        raise TransportError(str(exc), permanent=True) from None
    except TimeoutError:
        raise TransportError(f"Timed out after {timeout} s") from None
    except ssl.SSLError as exc:
        raise TransportError(f"TLS error: {exc}") from None
    except OSError as exc:
        raise TransportError(f"Connection failed: {exc}") from None
    except http.client.HTTPException as exc:
        raise TransportError(f"Bad HTTP response: {exc!r}") from None


def http_status_error(response: urlsafety.HttpResponse, *, detail: str = "") -> TransportError:
    """The TransportError for a non-2xx answer, permanent for 400/401/403/404/410."""
    message = f"HTTP {response.status} {response.reason}".strip()
    snippet = detail or _one_line(response.text)[:300]
    if 300 <= response.status < 400:
        location = response.headers.get("location", "")
        message += f" (redirects are not followed{': ' + location if location else ''})"
    elif snippet:
        message += f": {snippet}"
    return TransportError(
        message,
        permanent=response.status in PERMANENT_HTTP_STATUSES,
        status_code=response.status,
    )
