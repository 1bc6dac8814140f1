"""Personal API tokens: created (the secret shown once), authenticated, revoked.

A token acts as its user on every API endpoint. Only its SHA-256 is stored: tokens are
256 random bits, so a slow password hash would buy nothing and cost every request.
Tokens of the earlier plain-text table were converted to hashes by a migration and keep
working: they are 40 hex characters without the prefix below.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from traces.models import PersonalToken
from traces.services import LAST_USED_RESOLUTION, key_hash

TOKEN_PREFIX = "at_"  # noqa: S105  (marks our tokens, not a secret)
MAX_TOKEN_LENGTH = 100


@dataclass(frozen=True)
class NewToken:
    token: PersonalToken
    secret: str  # shown once, never stored


def personal_token_create(*, user, name: str = "default") -> NewToken:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = PersonalToken.objects.create(
        user=user, name=name, prefix=secret[:10], key_hash=key_hash(secret)
    )
    return NewToken(token=token, secret=secret)


def personal_token_revoke(*, token: PersonalToken) -> bool:
    """Revoke a token; False when it already was."""
    return bool(
        PersonalToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=datetime.now(UTC)
        )
    )


def personal_token_authenticate(*, secret: str) -> PersonalToken | None:
    """The active token for a secret (with its user), or None. Records when it was used."""
    if not secret or len(secret) > MAX_TOKEN_LENGTH:
        return None
    token = (
        PersonalToken.objects.select_related("user")
        .filter(key_hash=key_hash(secret), revoked_at__isnull=True)
        .first()
    )
    if token is None:
        return None
    now = datetime.now(UTC)
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        PersonalToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
