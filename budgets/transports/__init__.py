"""Alert channel kinds: one module each, registered here by `Channel.Kind` value.

    transport_get(kind).notify(channel, message)      # send (raises TransportError)
    validate_config(kind, config, previous=…)       # on every write: admin, REST API

To add a kind: write a module with `notify(channel, message)` and a `TRANSPORT`
(schema, optional write-time check and prepare), add it to `REGISTRY` and to
`Channel.Kind`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pydantic
from django.core.exceptions import ValidationError

from budgets.transports import email, slack, webhook
from budgets.transports.base import AlertMessage, Transport, TransportError, schema_errors

__all__ = [
    "REGISTRY",
    "AlertMessage",
    "Transport",
    "TransportError",
    "ValidatedConfig",
    "config_validate",
    "transport_get",
    "validate_config",
]

REGISTRY: dict[str, Transport] = {
    t.kind: t for t in (email.TRANSPORT, slack.TRANSPORT, webhook.TRANSPORT)
}


def transport_get(kind: str) -> Transport:
    try:
        return REGISTRY[kind]
    except KeyError:
        raise TransportError(f"Unknown channel kind {kind!r}", permanent=True) from None


@dataclass(frozen=True)
class ValidatedConfig:
    config: dict[str, Any]
    # Things the person saving must be told, e.g. a generated webhook secret.
    notices: list[str] = field(default_factory=list)


def config_validate(
    kind: str, config: Any, *, previous: dict[str, Any] | None = None
) -> ValidatedConfig:
    """Validate and normalise a channel's config for `kind`.

    `previous` is the config stored before this write (for an update of a channel of
    the same kind): values the write leaves out and that must survive, such as the
    webhook secret, are taken from it. Raises django ValidationError whose
    `message_dict` is keyed by config field ("to.1", "url", "secret", "headers"), by
    "config" when the value is not an object, or by "kind" for an unknown kind.
    Resolves webhook hosts: a URL reaching a private address is refused here unless
    ALERTS_ALLOW_PRIVATE_URLS is true.
    """
    transport = REGISTRY.get(kind)
    if transport is None:
        choices = ", ".join(sorted(REGISTRY))
        raise ValidationError({"kind": [f"Unknown channel kind “{kind}”; choose {choices}."]})
    if not isinstance(config, dict):
        raise ValidationError({"config": ["Settings must be a JSON object."]})
    notices: list[str] = []
    if transport.prepare is not None:
        config, notices = transport.prepare(config, previous)
    try:
        parsed = transport.schema.model_validate(config)
    except pydantic.ValidationError as exc:
        raise ValidationError(schema_errors(exc)) from None
    if transport.check is not None:
        transport.check(parsed)
    return ValidatedConfig(config=parsed.model_dump(mode="json"), notices=notices)


def validate_config(kind: str, config: Any, *, previous: dict[str, Any] | None = None) -> dict:
    """`config_validate(...).config`: the normalised config to store."""
    return config_validate(kind, config, previous=previous).config
