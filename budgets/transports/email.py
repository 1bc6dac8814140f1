"""Email alerts through Django's mail settings (`EMAIL_URL`, `DEFAULT_FROM_EMAIL`).

Config: {"to": ["ops@example.com", …]} — 1 to 20 addresses.

SMTP replies in 5xx (recipient refused, authentication failed, message rejected) are
permanent; 4xx replies and connection failures are temporary.
"""

from __future__ import annotations

import smtplib
from typing import TYPE_CHECKING, Annotated

import pydantic
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email

from budgets.transports.base import (
    AlertMessage,
    ConfigSchema,
    Transport,
    TransportError,
    config_read,
    public_url,
)

if TYPE_CHECKING:
    from budgets.models import Channel

KIND = "email"
MAX_RECIPIENTS = 20


def _address(value: str) -> str:
    value = value.strip()
    try:
        validate_email(value)
    except ValidationError:
        raise ValueError(f"“{value}” is not a valid email address.") from None
    return value


class EmailConfig(ConfigSchema):
    to: Annotated[
        list[Annotated[str, pydantic.AfterValidator(_address)]],
        pydantic.Field(min_length=1, max_length=MAX_RECIPIENTS),
    ]

    @pydantic.field_validator("to")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


def message_render(channel: Channel, message: AlertMessage) -> tuple[str, str]:
    """Subject and plain-text body."""
    subject = f"[AgentOps] {message.title}"
    lines = [message.text, "", f"Open the alert: {message.url}"]
    if message.traces:
        lines += ["", "Traces that drove the usage:"]
        lines += [f"  {link.url}" for link in message.traces]
    lines += [
        "",
        "-- ",
        f"Sent by AgentOps Console to the channel “{channel.name}”.",
        f"Channel settings: {public_url(f'/admin/budgets/channel/{channel.pk}/change/')}",
    ]
    # Header injection is refused by Django; a title never needs a line break anyway.
    return " ".join(subject.split()), "\n".join(lines) + "\n"


def notify(channel: Channel, message: AlertMessage) -> None:
    config = config_read(channel, EmailConfig)
    subject, body = message_render(channel, message)
    headers = {"Auto-Submitted": "auto-generated", "X-AgentOps-Severity": message.severity}
    if message.alert_id is not None:
        headers["X-AgentOps-Alert-Id"] = str(message.alert_id)
    email = EmailMessage(
        subject=subject,
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(config.to),
        headers=headers,
    )
    try:
        email.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:
        # Raised only when *every* recipient was refused.
        codes = [code for code, _ in exc.recipients.values()]
        detail = "; ".join(
            f"{rcpt}: {code} {_text(reply)}" for rcpt, (code, reply) in exc.recipients.items()
        )
        raise TransportError(
            f"All recipients refused: {detail}",
            permanent=all(500 <= code < 600 for code in codes),
            status_code=max(codes) if codes else None,
        ) from None
    except smtplib.SMTPResponseException as exc:
        # Authentication, sender, data and connect refusals all carry an SMTP code.
        what = (
            "SMTP authentication failed"
            if isinstance(exc, smtplib.SMTPAuthenticationError)
            else "SMTP server refused the message"
        )
        raise TransportError(
            f"{what}: {exc.smtp_code} {_text(exc.smtp_error)}",
            permanent=500 <= exc.smtp_code < 600,
            status_code=exc.smtp_code,
        ) from None
    except smtplib.SMTPException as exc:
        raise TransportError(f"SMTP error: {exc}") from None
    except OSError as exc:
        raise TransportError(f"Could not reach the SMTP server: {exc}") from None


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", errors="replace")
    return " ".join(reply.split())


TRANSPORT = Transport(
    kind=KIND,
    schema=EmailConfig,
    notify=notify,
    example={"to": ["oncall@example.com"]},
)
