"""Generic webhook: a signed JSON POST to any http(s) URL (see docs/alerts.md).

Config: {"url": "https://…", "secret": "≥ 16 characters", "headers": {"Name": "value"}}.
A secret is generated when none is given on create, and kept when an update leaves
it out.

Signature: HMAC-SHA256 with the secret over "<timestamp>.<raw body>", sent as
`X-AgentOps-Signature: t=<timestamp>,v1=<hex digest>` beside `X-AgentOps-Timestamp`.
The timestamp is signed so that a captured request cannot be replayed later.

400/401/403/404/410 answers are permanent; redirects (not followed), 408, 429, other
4xx, 5xx and network failures are temporary.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pydantic
from django.core.exceptions import ValidationError

from budgets import urlsafety
from budgets.transports.base import (
    USER_AGENT,
    AlertMessage,
    ConfigSchema,
    Transport,
    config_read,
    http_send,
    http_status_error,
)

if TYPE_CHECKING:
    from budgets.models import Channel

KIND = "webhook"
PAYLOAD_VERSION = 1
SIGNATURE_HEADER = "X-AgentOps-Signature"
TIMESTAMP_HEADER = "X-AgentOps-Timestamp"
MIN_SECRET_CHARS = 16
MAX_HEADERS = 20
# Set by the console itself; a configured header must not replace them.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "transfer-encoding", "connection", "user-agent"}
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 field name


class WebhookConfig(ConfigSchema):
    url: str
    secret: str = pydantic.Field(min_length=MIN_SECRET_CHARS, max_length=256)
    headers: dict[str, str] = pydantic.Field(default_factory=dict, max_length=MAX_HEADERS)

    @pydantic.field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        try:
            urlsafety.url_parse(value)
        except urlsafety.UnsafeURL as exc:
            raise ValueError(str(exc)) from None
        return value

    @pydantic.field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            if not _TOKEN.match(name):
                raise ValueError(f"“{name}” is not a valid header name.")
            lowered = name.lower()
            if lowered in RESERVED_HEADERS or lowered.startswith("x-agentops-"):
                raise ValueError(f"The header “{name}” is set by the console.")
            if any(c in header_value for c in "\r\n\0") or len(header_value) > 4096:
                raise ValueError(f"The value of “{name}” must be one line of at most 4096 chars.")
            try:
                header_value.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError(f"The value of “{name}” must be ASCII or Latin-1.") from None
        return value


def _prepare(data: dict[str, Any], previous: dict[str, Any] | None) -> tuple[dict, list[str]]:
    if data.get("secret") not in (None, ""):
        return data, []
    old = (previous or {}).get("secret")
    if isinstance(old, str) and len(old) >= MIN_SECRET_CHARS:
        return {**data, "secret": old}, []
    secret = secrets.token_urlsafe(32)
    return {**data, "secret": secret}, [
        f"No signing secret was given, so one was generated: {secret} — receivers use it "
        f"to verify the {SIGNATURE_HEADER} header."
    ]


def _check(config: WebhookConfig) -> None:
    try:
        urlsafety.url_check(config.url)
    except (urlsafety.UnsafeURL, OSError) as exc:
        raise ValidationError({"url": [str(exc)]}) from None


# ------------------------------------------------------------------ body and signature


def _decimal(value: Decimal) -> str:
    # normalize() alone would write 100 as "1E+2".
    return format(value.normalize(), "f")


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_name(message: AlertMessage) -> str:
    """The event a receiver routes on: "test", "review_sla" (a review item past its SLA),
    else "budget_alert"."""
    if message.test:
        return "test"
    return "review_sla" if message.kind == "review_sla" else "budget_alert"


def payload_build(message: AlertMessage, *, sent_at: datetime) -> dict:
    percent = message.percent
    return {
        "version": PAYLOAD_VERSION,
        "event": event_name(message),
        "sent_at": _iso(sent_at),
        "alert": {
            "id": message.alert_id,
            "kind": message.kind,
            "status": message.status,
            "severity": message.severity,
            "title": message.title,
            "message": message.message,
            "text": message.text,
            "threshold_percent": message.threshold,
            "thresholds_crossed": list(message.thresholds),
            "value": _decimal(message.value),
            "limit": _decimal(message.limit),
            "percent_of_limit": _decimal(percent) if percent is not None else None,
            "value_display": message.value_display,
            "limit_display": message.limit_display,
            "created_at": _iso(message.created_at),
            "url": message.url,
        },
        "envelope": {
            "id": message.envelope_id,
            "name": message.envelope,
            "metric": message.metric,
            "metric_label": message.metric_label,
            "period": message.period,
            "timezone": message.timezone,
        },
        "period": {"start": _iso(message.period_start), "end": _iso(message.period_end)},
        "project": {"slug": message.project_slug, "name": message.project},
        "traces": [{"trace_id": link.trace_id, "url": link.url} for link in message.traces],
    }


def body_encode(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def signature_compute(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of b"<timestamp>." + body with the channel's secret."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def request_build(
    config: WebhookConfig, message: AlertMessage, *, now: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """The exact body bytes and headers of one webhook request."""
    now = time.time() if now is None else now
    timestamp = int(now)
    body = body_encode(payload_build(message, sent_at=datetime.fromtimestamp(now, tz=UTC)))
    signature = signature_compute(config.secret, timestamp, body)
    headers = {
        **config.headers,
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "X-AgentOps-Event": event_name(message),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: f"t={timestamp},v1={signature}",
    }
    if message.alert_id is not None:
        headers["X-AgentOps-Alert-Id"] = str(message.alert_id)
    return body, headers


def notify(channel: Channel, message: AlertMessage) -> None:
    config = config_read(channel, WebhookConfig)
    body, headers = request_build(config, message)
    response = http_send(config.url, body=body, headers=headers)
    if not 200 <= response.status < 300:
        raise http_status_error(response)


TRANSPORT = Transport(
    kind=KIND,
    schema=WebhookConfig,
    notify=notify,
    check=_check,
    prepare=_prepare,
    example={"url": "https://example.com/agentops-alerts", "headers": {}},
)
