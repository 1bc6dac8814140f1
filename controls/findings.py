"""Idempotency and retry findings: what the detectors of `controls.idempotency` saw, stored.

The detectors are the selectors of `controls.idempotency`; this module only runs them
over a window and keeps their rows, so a finding is never decided twice in two ways.
Detection runs off the ingest path: a Celery task every minute over the trailing
`FINDINGS_WINDOW_MINUTES` of span start times (`controls.tasks.detect_findings`), and
`manage.py detect_findings [--since]` for a sweep.

Each row the selectors return is one finding, identified by a fingerprint of what makes it
the same problem on the next run:

- duplicate side effect: the idempotency key (a derived key already names its run);
- unkeyed retry: run, tool and canonical arguments;
- retry storm: run, step, call and canonical arguments;
- retried model calls: agent and 15-minute bucket (as the span rollups). The selector
  sums a window, so it is run once per whole bucket the window touches and each bucket is
  kept as it was last computed (always complete).

Storing is an upsert that never counts twice: new fingerprints are inserted with ON
CONFLICT DO NOTHING, then every row seen is locked (SELECT … FOR UPDATE, in id order) and
what was seen is merged into it: spans and runs are the union of those stored and seen,
the count the larger of the stored count, the seen count and the number of spans (a
storm that grows updates its row; a window that has slid past a finding's first spans
does not shrink it). The details (`succeeded`, `failed`, `key_source`, arguments) are
those of the larger observation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controls.idempotency import (
    duplicate_side_effects,
    retried_model_cost,
    retry_storms,
    unkeyed_retries,
)
from controls.models import Finding
from traces.models import Project, Trace
from traces.spanstore import projects_scope, span_store

Kind = Finding.Kind
BUCKET = timedelta(minutes=15)
CHUNK = 500
# The sweep runs the detectors a day at a time (memory grows with the spans of a window).
SWEEP_STEP = timedelta(days=1)
_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width, so stored times sort as text too
_MERGED = ("agent", "trace_ids", "spans", "count", "cost_usd", "first_at", "last_at", "detail")


@dataclass
class Observation:
    """One selector row, in the shape of a Finding."""

    kind: str
    fingerprint: str
    count: int
    first_at: datetime
    last_at: datetime
    tool: str = ""
    key: str = ""
    agent: str = ""
    trace_ids: list[str] = field(default_factory=list)
    spans: list[dict] = field(default_factory=list)
    cost_usd: Decimal | None = None
    detail: dict = field(default_factory=dict)


def fingerprint(kind: str, *parts: str) -> str:
    """sha256 of the JSON array of the kind and the parts (unambiguous, whatever they hold)."""
    return hashlib.sha256(json.dumps([kind, *parts]).encode()).hexdigest()


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime(_TIME)


def _span_order(span: dict) -> tuple[str, str]:
    return span["started_at"], span["span_id"]


def _links(spans: list[dict]) -> list[dict]:
    links = [
        {"trace_id": s["trace_id"], "span_id": s["span_id"], "started_at": _time(s["started_at"])}
        for s in spans
    ]
    return sorted(links, key=_span_order)


def _event(kind: str, parts: tuple[str, ...], row: dict, count: int, **fields) -> Observation:
    times = [s["started_at"] for s in row["spans"]]
    return Observation(
        kind=kind,
        fingerprint=fingerprint(kind, *parts),
        count=count,
        first_at=min(times),
        last_at=max(times),
        trace_ids=list(dict.fromkeys(s["trace_id"] for s in row["spans"])),
        spans=_links(row["spans"]),
        **fields,
    )


def _buckets(since: datetime, until: datetime) -> Iterable[datetime]:
    """The starts of the 15-minute buckets that [since, until) touches."""
    start = since.astimezone(UTC)
    bucket = start.replace(minute=start.minute - start.minute % 15, second=0, microsecond=0)
    while bucket < until:
        yield bucket
        bucket += BUCKET


def findings_observe(*, project_id: int, since: datetime, until: datetime) -> list[Observation]:
    """What the four detectors of `controls.idempotency` report for spans started in
    [since, until); retried model calls over each whole 15-minute bucket it touches."""
    window = {"project_id": project_id, "since": since, "until": until}
    seen = [
        _event(
            Kind.DUPLICATE_SIDE_EFFECT,
            (r["key"],),
            r,
            r["executions"],
            tool=r["tool"],
            key=r["key"],
            detail={"key_source": r["key_source"]},
        )
        for r in duplicate_side_effects(**window)
    ]
    seen += [
        _event(
            Kind.UNKEYED_RETRY,
            (r["trace_id"], r["tool"], r["arguments"]),
            r,
            r["attempts"],
            tool=r["tool"],
            detail={"arguments": r["arguments"], "succeeded": r["succeeded"]},
        )
        for r in unkeyed_retries(**window)
    ]
    seen += [
        _event(
            Kind.RETRY_STORM,
            (r["trace_id"], r["step"], r["call"], r["arguments"]),
            r,
            r["attempts"],
            tool=r["call"],
            detail={"step": r["step"], "arguments": r["arguments"], "failed": r["failed"]},
        )
        for r in retry_storms(**window)
    ]
    for bucket in _buckets(since, until):
        for r in retried_model_cost(project_id=project_id, since=bucket, until=bucket + BUCKET):
            seen.append(
                Observation(
                    kind=Kind.RETRIED_MODEL_COST,
                    fingerprint=fingerprint(Kind.RETRIED_MODEL_COST, r["agent"], _time(bucket)),
                    count=r["retried_calls"],
                    first_at=bucket,
                    last_at=bucket + BUCKET - timedelta(microseconds=1),
                    agent=r["agent"],
                    trace_ids=list(r["runs"]),
                    cost_usd=r["cost_usd"],
                )
            )
    _name_agents(project_id, seen)
    return seen


def _name_agents(project_id: int, seen: list[Observation]) -> None:
    """An event's agent is its first run's (the selectors do not say)."""
    wanted = {o.trace_ids[0] for o in seen if not o.agent and o.trace_ids}
    if not wanted:
        return
    agents = dict(
        Trace.objects.filter(project_id=project_id, trace_id__in=wanted).values_list(
            "trace_id", "agent"
        )
    )
    for o in seen:
        if not o.agent and o.trace_ids:
            o.agent = agents.get(o.trace_ids[0], "")


def _merge(row: Finding, seen: Observation) -> bool:
    """Fold what was seen into the stored row; True when the row changed."""
    before = [getattr(row, name) for name in _MERGED]
    if seen.kind == Kind.RETRIED_MODEL_COST:
        # Computed over its whole bucket every time: the latest figure is the figure.
        row.count, row.cost_usd, row.trace_ids = seen.count, seen.cost_usd, seen.trace_ids
        row.agent = seen.agent
    else:
        spans = {(s["trace_id"], s["span_id"]): s for s in [*row.spans, *seen.spans]}
        row.spans = sorted(spans.values(), key=_span_order)
        row.trace_ids = list(dict.fromkeys([*row.trace_ids, *seen.trace_ids]))
        if seen.count >= row.count:
            row.detail = seen.detail
        row.count = max(row.count, seen.count, len(row.spans))
        row.first_at = min(row.first_at, seen.first_at)
        row.last_at = max(row.last_at, seen.last_at)
        row.agent = row.agent or seen.agent
    return [getattr(row, name) for name in _MERGED] != before


def _new(project_id: int, seen: Observation, now: datetime) -> Finding:
    return Finding(
        project_id=project_id,
        kind=seen.kind,
        fingerprint=seen.fingerprint,
        tool=seen.tool[:200],
        agent=seen.agent[:200],
        key=seen.key,
        trace_ids=seen.trace_ids,
        spans=seen.spans,
        count=seen.count,
        cost_usd=seen.cost_usd,
        first_at=seen.first_at,
        last_at=seen.last_at,
        detected_at=now,
        updated_at=now,
        detail=seen.detail,
    )


def findings_store(*, project_id: int, seen: list[Observation]) -> dict[str, int]:
    """Upsert what was seen; returns how many findings were `created` and `updated`."""
    now = timezone.now()
    created = updated = 0
    # One order for every worker: concurrent inserts and row locks then never deadlock.
    unique = {(o.kind, o.fingerprint): o for o in seen}
    ordered = [unique[k] for k in sorted(unique)]
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        Finding.objects.bulk_create(
            [_new(project_id, o, now) for o in chunk], ignore_conflicts=True
        )
        with transaction.atomic():
            rows = {
                (r.kind, r.fingerprint): r
                for r in Finding.objects.select_for_update()
                .filter(project_id=project_id, fingerprint__in=[o.fingerprint for o in chunk])
                .order_by("id")
            }
            changed = []
            for o in chunk:
                row = rows[(o.kind, o.fingerprint)]
                if row.detected_at == now:
                    created += 1
                elif _merge(row, o):
                    row.updated_at = now
                    changed.append(row)
            Finding.objects.bulk_update(changed, [*_MERGED, "updated_at"])
            updated += len(changed)
    return {"created": created, "updated": updated}


def findings_detect(
    *, since: datetime, until: datetime | None = None, project_id: int | None = None
) -> dict[str, int]:
    """Run the detectors over spans started in [since, until) (until: now) for one project
    or all of them, and store what they find. Returns the counts of `findings_store`."""
    until = until or timezone.now()
    if project_id is None:
        project_ids = list(Project.objects.order_by("pk").values_list("pk", flat=True))
    else:
        project_ids = [project_id]
    totals = {"created": 0, "updated": 0}
    for pk in project_ids:
        seen = findings_observe(project_id=pk, since=since, until=until)
        for name, n in findings_store(project_id=pk, seen=seen).items():
            totals[name] += n
    return totals


def findings_sweep(
    *, since: datetime | None = None, until: datetime | None = None, project_id: int | None = None
) -> dict[str, int]:
    """`findings_detect` from `since` (None: the earliest span) to `until` a day at a time.
    Each day is read together with the `FINDINGS_WINDOW_MINUTES` before it, as the periodic
    detection would have read it, so a run that crosses midnight is seen whole."""
    until = until or timezone.now()
    store = span_store()
    scope = projects_scope(project_id, store)
    if since is None:
        first = store.select_spans(scope, columns=["started_at"], order=["started_at"], limit=1)
        if not first:
            return {"created": 0, "updated": 0}
        since = first[0]["started_at"]
    overlap = timedelta(minutes=settings.FINDINGS_WINDOW_MINUTES)
    totals = {"created": 0, "updated": 0}
    start = since
    while start < until:
        end = min(start + SWEEP_STEP, until)
        window = {"since": start - (overlap if start > since else timedelta(0)), "until": end}
        start = end
        # Every finding has a call in its window: a day without spans has none.
        if not store.select_spans(
            scope, columns=["started_at"], started=(window["since"], end), order=[], limit=1
        ):
            continue
        for name, n in findings_detect(**window, project_id=project_id).items():
            totals[name] += n
    return totals


# ------------------------------------------------------------------ reads


def _parse(value: str) -> datetime:
    return datetime.strptime(value, _TIME).replace(tzinfo=UTC)


def _span_links(finding: Finding) -> list[dict]:
    return [{**s, "started_at": _parse(s["started_at"])} for s in finding.spans]


def findings_in_window(*, project_id: int, since: datetime, until: datetime) -> dict[str, list]:
    """The stored findings of a project whose calls overlap [since, until), by kind, in the
    shape of the `controls.idempotency` selectors' rows (plus `agent`, `runs`, `first_at`,
    `last_at` and `detected_at`). Retried model calls are summed per agent over the
    15-minute buckets the window touches."""
    qs = Finding.objects.filter(project_id=project_id, first_at__lt=until, last_at__gte=since)
    result: dict[str, list] = {
        "duplicate_side_effects": [],
        "unkeyed_retries": [],
        "retry_storms": [],
        "retried_model_cost": [],
    }
    costs: dict[str, dict] = {}
    for f in qs.order_by("first_at", "id"):
        common = {
            "agent": f.agent,
            "runs": f.trace_ids,
            "first_at": f.first_at,
            "last_at": f.last_at,
            "detected_at": f.detected_at,
        }
        d = f.detail
        if f.kind == Kind.DUPLICATE_SIDE_EFFECT:
            result["duplicate_side_effects"].append(
                {
                    "key": f.key,
                    "key_source": d.get("key_source", ""),
                    "tool": f.tool,
                    "executions": f.count,
                    "spans": _span_links(f),
                    **common,
                }
            )
        elif f.kind == Kind.UNKEYED_RETRY:
            result["unkeyed_retries"].append(
                {
                    "trace_id": f.trace_ids[0] if f.trace_ids else "",
                    "tool": f.tool,
                    "arguments": d.get("arguments", ""),
                    "attempts": f.count,
                    "succeeded": d.get("succeeded", 0),
                    "spans": _span_links(f),
                    **common,
                }
            )
        elif f.kind == Kind.RETRY_STORM:
            result["retry_storms"].append(
                {
                    "trace_id": f.trace_ids[0] if f.trace_ids else "",
                    "step": d.get("step", ""),
                    "call": f.tool,
                    "arguments": d.get("arguments", ""),
                    "attempts": f.count,
                    "failed": d.get("failed", 0),
                    "spans": _span_links(f),
                    **common,
                }
            )
        elif f.kind == Kind.RETRIED_MODEL_COST:
            row = costs.setdefault(
                f.agent,
                {
                    "agent": f.agent,
                    "retried_calls": 0,
                    "cost_usd": Decimal(0),
                    "runs": [],
                    "first_at": f.first_at,
                    "last_at": f.last_at,
                },
            )
            row["retried_calls"] += f.count
            row["cost_usd"] += f.cost_usd or Decimal(0)
            row["runs"] = list(dict.fromkeys([*row["runs"], *f.trace_ids]))
            row["last_at"] = max(row["last_at"], f.last_at)
    result["duplicate_side_effects"].sort(key=lambda r: (-r["executions"], r["tool"], r["key"]))
    result["unkeyed_retries"].sort(key=lambda r: (-r["attempts"], r["tool"], r["trace_id"]))
    result["retry_storms"].sort(key=lambda r: (-r["attempts"], r["call"], r["trace_id"]))
    result["retried_model_cost"] = sorted(
        costs.values(), key=lambda r: (-r["cost_usd"], r["agent"])
    )
    return result
