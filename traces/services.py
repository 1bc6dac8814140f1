"""Writes that are not span ingestion: projects, members and ingest keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction

from traces.models import IngestKey, Membership, Project

KEY_PREFIX = "ak_"
# A key is used on every ingest request; writing last_used_at each time would turn
# every batch into an extra UPDATE, so it is refreshed at most once a minute.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    key: IngestKey
    secret: str  # shown once, never stored


def ingest_key_create(*, project: Project, name: str = "default", created_by=None) -> NewKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = IngestKey.objects.create(
        project=project,
        name=name,
        prefix=secret[:10],
        key_hash=key_hash(secret),
        created_by=created_by,
    )
    return NewKey(key=key, secret=secret)


def ingest_key_revoke(*, key: IngestKey) -> None:
    IngestKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
        revoked_at=datetime.now(UTC)
    )


@dataclass(frozen=True)
class KeyMatch:
    key_id: int
    project_id: int


def ingest_key_authenticate(*, secret: str) -> KeyMatch | None:
    """The active key for a secret, or None. Records when the key was last used."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 100:
        return None
    row = (
        IngestKey.objects.filter(key_hash=key_hash(secret), revoked_at__isnull=True)
        .values_list("id", "project_id", "last_used_at")
        .first()
    )
    if row is None:
        return None
    key_id, project_id, last_used = row
    now = datetime.now(UTC)
    if last_used is None or now - last_used > LAST_USED_RESOLUTION:
        IngestKey.objects.filter(pk=key_id).update(last_used_at=now)
    return KeyMatch(key_id=key_id, project_id=project_id)


@transaction.atomic
def project_create(*, slug: str, name: str = "", admins=()) -> Project:
    project = Project.objects.create(slug=slug, name=name or slug)
    for user in admins:
        Membership.objects.create(project=project, user=user, role=Membership.Role.ADMIN)
    return project


def membership_set(*, project: Project, user, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    return membership
