"""Slack alerts through an incoming webhook.

Config: {"webhook_url": "https://hooks.slack.com/services/T…/B…/…"}.

Only https://hooks.slack.com/… is accepted, unless ALERTS_ALLOW_PRIVATE_URLS is true:
then any http(s) URL is, so that a Slack-compatible receiver inside the network
(Mattermost, a relay, a test server on loopback) can be used.

Slack answers errors with a short token as the body. Tokens meaning the hook or its
channel is gone (`no_service`, `invalid_token`, `channel_is_archived`, …) are
permanent whatever the status code; 400/401/403/404/410 are permanent; 429, 5xx
(`rollup_error`) and network failures are temporary.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pydantic
from django.core.exceptions import ValidationError

from budgets import urlsafety
from budgets.transports.base import (
    USER_AGENT,
    AlertMessage,
    ConfigSchema,
    Transport,
    TransportError,
    config_read,
    http_send,
    http_status_error,
)

if TYPE_CHECKING:
    from budgets.models import Channel

KIND = "slack"
SLACK_HOSTS = frozenset({"hooks.slack.com"})
PERMANENT_SLACK_ERRORS = frozenset(
    {
        "action_prohibited",
        "channel_is_archived",
        "channel_not_found",
        "invalid_token",
        "no_service",
        "no_service_id",
        "no_team",
        "posting_to_general_channel_denied",
        "team_disabled",
        "user_not_found",
    }
)
HEADER_MAX_CHARS = 150  # Slack refuses longer header blocks


class SlackConfig(ConfigSchema):
    webhook_url: str

    @pydantic.field_validator("webhook_url")
    @classmethod
    def _slack_url(cls, value: str) -> str:
        value = value.strip()
        try:
            parsed = urlsafety.url_parse(value)
        except urlsafety.UnsafeURL as exc:
            raise ValueError(str(exc)) from None
        if urlsafety.private_urls_allowed():
            return value
        if parsed.scheme != "https" or parsed.host.lower() not in SLACK_HOSTS:
            raise ValueError(
                "Enter a Slack incoming-webhook URL (https://hooks.slack.com/services/…)."
            )
        return value


def _check(config: SlackConfig) -> None:
    parsed = urlsafety.url_parse(config.webhook_url)
    if parsed.host.lower() in SLACK_HOSTS and parsed.scheme == "https":
        return  # Slack's own host: nothing to learn from resolving it at save time
    try:
        urlsafety.url_check(config.webhook_url)
    except (urlsafety.UnsafeURL, OSError) as exc:
        raise ValidationError({"webhook_url": [str(exc)]}) from None


def _escape(text: str) -> str:
    # The three characters Slack's mrkdwn requires escaped.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload_build(message: AlertMessage) -> dict:
    icon = {"critical": ":rotating_light:", "warning": ":warning:"}.get(
        message.severity, ":information_source:"
    )
    percent = f" ({message.percent}%)" if message.percent is not None else ""
    title = message.title
    if len(title) > HEADER_MAX_CHARS:
        title = title[: HEADER_MAX_CHARS - 1] + "…"
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"{_escape(message.message)}\n<{message.url}|Open the alert>",
            },
        },
        {
            "type": "section",
            "fields": [
                {
                    "type": "mrkdwn",
                    "text": f"*Value*\n{_escape(message.value_display)} of "
                    f"{_escape(message.limit_display)}{percent}",
                },
                {"type": "mrkdwn", "text": f"*Metric*\n{_escape(message.metric_label)}"},
                {"type": "mrkdwn", "text": f"*Period*\n{_escape(message.period_display)}"},
                {"type": "mrkdwn", "text": f"*Project*\n{_escape(message.project)}"},
            ],
        },
    ]
    if message.traces:
        links = "\n".join(f"<{link.url}|{link.trace_id[:16]}…>" for link in message.traces)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Traces*\n{links}"}})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"{message.severity} · envelope {_escape(message.envelope)} · "
                    "AgentOps Console",
                }
            ],
        }
    )
    # `text` is what notifications and screen readers show.
    return {"text": f"{icon} {_escape(message.title)}", "blocks": blocks}


def notify(channel: Channel, message: AlertMessage) -> None:
    config = config_read(channel, SlackConfig)
    body = json.dumps(payload_build(message)).encode()
    response = http_send(
        config.webhook_url,
        body=body,
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT},
    )
    if 200 <= response.status < 300:
        return
    token = response.text.strip()
    if token in PERMANENT_SLACK_ERRORS:
        raise TransportError(
            f"Slack refused the message: {token} (HTTP {response.status})",
            permanent=True,
            status_code=response.status,
        )
    raise http_status_error(response)


TRANSPORT = Transport(
    kind=KIND,
    schema=SlackConfig,
    notify=notify,
    check=_check,
    example={"webhook_url": "https://hooks.slack.com/services/T000/B000/XXXXXXXX"},
)
