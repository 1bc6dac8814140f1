"""Writes that are not span ingestion: projects, members and ingest keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from traces.models import IngestKey, Membership, Project

KEY_PREFIX = "ak_"
# A key is used on every ingest request; writing last_used_at each time would turn
# every batch into an extra UPDATE, so it is refreshed at most once a minute.
LAST_USED_RESOLUTION = timedelta(minutes=1)  # longer than INGEST_KEY_CACHE_SECONDS


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
    cache.delete(_key_cache_name(key.key_hash))  # this process; others within the TTL


def _key_cache_name(digest: str) -> str:
    return f"ingest-key:{digest}"


@dataclass(frozen=True)
class KeyMatch:
    key_id: int
    project_id: int


def ingest_key_authenticate(*, secret: str) -> KeyMatch | None:
    """The active key for a secret, or None. Records when the key was last used."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 100:
        return None
    digest = key_hash(secret)
    # An active key is remembered for INGEST_KEY_CACHE_SECONDS in this process (the
    # look-up was a query on every request); a revoked one is refused within that time
    # everywhere, at once in the process that revoked it. Unknown keys are not cached.
    ttl = settings.INGEST_KEY_CACHE_SECONDS
    cached = cache.get(_key_cache_name(digest)) if ttl > 0 else None
    if cached is not None:
        return KeyMatch(key_id=cached[0], project_id=cached[1])
    row = (
        IngestKey.objects.filter(key_hash=digest, revoked_at__isnull=True)
        .values_list("id", "project_id", "last_used_at")
        .first()
    )
    if row is None:
        return None
    key_id, project_id, last_used = row
    now = datetime.now(UTC)
    if last_used is None or now - last_used > LAST_USED_RESOLUTION:
        IngestKey.objects.filter(pk=key_id).update(last_used_at=now)
    if ttl > 0:
        cache.set(_key_cache_name(digest), (key_id, project_id), ttl)
    return KeyMatch(key_id=key_id, project_id=project_id)


@transaction.atomic
def project_create(
    *, slug: str, name: str = "", admins=(), retention_days: int | None = None
) -> Project:
    project = Project.objects.create(slug=slug, name=name or slug, retention_days=retention_days)
    for user in admins:
        Membership.objects.create(project=project, user=user, role=Membership.Role.ADMIN)
    return project


def membership_set(*, project: Project, user, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    return membership


# ------------------------------------------------------------------ outcomes


@dataclass
class OutcomeResult:
    created: int = 0
    updated: int = 0
    unknown_trace_ids: list[str] | None = None


def outcomes_record(*, project_id: int, items: list[dict]) -> OutcomeResult:
    """Store KPI/eval values of runs (validated items: trace_id, kind, name, value,
    recorded_at). Posting the same (run, kind, name) again updates its value. Values for
    runs the project does not have are not stored and are reported back."""
    from traces.models import Outcome, Trace

    now = datetime.now(UTC)
    trace_ids = {item["trace_id"] for item in items}
    known = set(
        Trace.objects.filter(project_id=project_id, trace_id__in=trace_ids).values_list(
            "trace_id", flat=True
        )
    )
    result = OutcomeResult(unknown_trace_ids=sorted(trace_ids - known))
    wanted: dict[tuple[str, str, str], dict] = {}
    for item in items:
        if item["trace_id"] in known:
            wanted[(item["trace_id"], item["kind"], item["name"])] = item  # last one wins
    if not wanted:
        return result
    with transaction.atomic():
        existing = {
            (o.trace_id, o.kind, o.name): o
            for o in Outcome.objects.select_for_update().filter(
                project_id=project_id,
                trace_id__in={k[0] for k in wanted},
                name__in={k[2] for k in wanted},
            )
        }
        to_update, to_create = [], []
        for key, item in wanted.items():
            outcome = existing.get(key)
            if outcome is None:
                to_create.append(
                    Outcome(
                        project_id=project_id,
                        trace_id=key[0],
                        kind=key[1],
                        name=key[2],
                        value=item["value"],
                        source=Outcome.Source.API,
                        recorded_at=item["recorded_at"] or now,
                        received_at=now,
                    )
                )
            else:
                outcome.value = item["value"]
                outcome.source = Outcome.Source.API
                outcome.recorded_at = item["recorded_at"] or now
                outcome.received_at = now
                to_update.append(outcome)
        # A concurrent post of the same outcome may insert first: skip, then update it.
        Outcome.objects.bulk_create(to_create, ignore_conflicts=True)
        Outcome.objects.bulk_update(to_update, ["value", "source", "recorded_at", "received_at"])
    result.created, result.updated = len(to_create), len(to_update)
    return result


# ------------------------------------------------------------------ interventions


def trace_mark_intervened(*, project_id: int, trace_ids: list[str], now=None) -> int:
    """Count the runs as ones a person changed or took over (a review decision, say);
    returns how many were not already. `last_received_at` moves too, so that the run
    rollups recompute their day (they find changed days by it)."""
    from traces.models import Trace

    now = now or datetime.now(UTC)
    return Trace.objects.filter(
        project_id=project_id, trace_id__in=trace_ids, intervened=False
    ).update(intervened=True, last_received_at=now)
