"""Decision memory: the decisions agents took (`agentops.decision.*` on a span), kept as
`DecisionRecord`s, searchable, and joined to what a person did.

**Extraction** runs off the ingest path: a Celery task every minute over the spans started
in the trailing `WINDOW` (`controls.tasks.record_decisions`) and `manage.py
record_decisions [--since]` for a sweep. A span is a decision when it carries
`agentops.decision.action`. The spans read are those with no record yet (an anti-join on
the record's unique key, project + trace + span), and the insert ignores conflicts, so a
span is recorded once however often and however concurrently the extraction runs.

**The person's action** (shadow phase: the agent recommends, a person acts) arrives
through `POST /api/decisions/action` (`decision_action_record`): by trace id, and span id
when the run took several decisions. A run whose decision was not extracted yet is
extracted first, so the action never waits for the beat. An action that arrives before its
decision span is kept (`PendingDecisionAction`) and joined by the beat's next run.

**Search** is full-text over context and action: on PostgreSQL a stored generated column
`search_vector` (`to_tsvector('english', …)`) with a GIN index, on SQLite the FTS5 table
`controls_decisionrecord_fts` kept in sync by triggers (migration 0006). Words only: a
query is cut into words, so no input is a syntax error on either database.

**Agreement** of recommendation and action: the share of decisions with a person's action
whose action is the agent's (trimmed, case-insensitive), per agent and version, with the
Wilson 95 % interval of `rollouts.stats`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    F,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower, Trim
from django.utils import timezone

from controls.models import DecisionRecord, PendingDecisionAction
from rollouts.stats import RateStats, wilson_interval
from traces.models import Outcome, Project, Span, Trace
from traces.paging import COUNT_CAP
from traces.spanstore import projects_scope, span_page, span_store
from traces.spanstore.query import ARRIVAL

PREFIX = "agentops.decision."
ACTION = "agentops.decision.action"
CONTEXT = "agentops.decision.context"
OPTIONS = "agentops.decision.options"
CONFIDENCE = "agentops.decision.confidence"
CONFIDENCE_FALLBACK = "agentops.confidence"
POLICIES = "agentops.decision.policies"
PHASE = "agentops.autonomy.phase"
WINDOW = timedelta(hours=6)
CHUNK = 1000
MAX_TERMS = 32
ACTION_MAX = DecisionRecord._meta.get_field("action").max_length

# PostgreSQL: the stored tsvector of context and action, GIN-indexed (migration 0006).
# It names the table: a query using it must not put it in a subquery (aliased there).
PG_DOCUMENT = '"controls_decisionrecord"."search_vector"'
FTS_TABLE = "controls_decisionrecord_fts"
_WORD = re.compile(r"\w+", re.UNICODE)


# ------------------------------------------------------------------ extraction


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _list(value: Any) -> list[str]:
    """A string array, a JSON array in a string, or one string."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return [value]
        value = parsed
    if isinstance(value, list | tuple):
        return [v if isinstance(v, str) else json.dumps(v, default=str) for v in value]
    return [_text(value)]


def _confidence(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number < 0 or number > 1:
        return None
    return number.quantize(Decimal("0.001"))


def record_from_span(span: Span, trace_phase: str = "") -> DecisionRecord:
    """The decision a span reports (it carries `agentops.decision.action`)."""
    attrs = span.attributes or {}
    confidence = attrs.get(CONFIDENCE, attrs.get(CONFIDENCE_FALLBACK))
    return DecisionRecord(
        project_id=span.project_id,
        trace_id=span.trace_id,
        span_id=span.span_id,
        agent=span.agent,
        agent_version=span.agent_version,
        prompt_version=span.prompt_version,
        phase=(_text(attrs.get(PHASE)) or trace_phase)[:16],
        context=_text(attrs.get(CONTEXT)),
        options=_list(attrs.get(OPTIONS)),
        action=_text(attrs.get(ACTION)).strip()[:ACTION_MAX],
        confidence=_confidence(confidence),
        policies=_list(attrs.get(POLICIES)),
        decided_at=span.started_at,
    )


_SPAN_COLUMNS = (
    "project_id",
    "trace_id",
    "span_id",
    "agent",
    "agent_version",
    "prompt_version",
    "attributes",
    "started_at",
)


def decisions_record(
    *, since: datetime | None = None, project_id: int | None = None, trace_id: str = ""
) -> int:
    """Record the decision spans (started at or after `since`) that have no record yet.
    Returns how many records were created."""
    store = span_store()
    created = 0
    after = None
    while True:
        # Through the span store, a page at a time in the order spans were stored; the
        # spans with a record are left out (an anti-join on the relational store).
        rows = store.select_spans(
            projects_scope(project_id, store),
            columns=_SPAN_COLUMNS,
            trace_ids=[trace_id] if trace_id else None,
            started=(since, None),
            any_of=[{"has_key": ACTION}],
            absent_from=DecisionRecord.objects.all(),
            order=ARRIVAL,
            after=after,
            limit=CHUNK,
        )
        if not rows:
            return created
        spans, after = span_page(rows, after)
        created += _store(spans)


def _store(spans: list[Span]) -> int:
    phases = dict(
        Trace.objects.filter(
            project_id__in={s.project_id for s in spans},
            trace_id__in={s.trace_id for s in spans},
        ).values_list("trace_id", "phase")
    )
    rows = [record_from_span(s, phases.get(s.trace_id, "")) for s in spans]
    # The anti-join left out what was recorded; a concurrent run's rows are ignored here.
    DecisionRecord.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def decisions_record_recent() -> int:
    """The beat's run: the trailing WINDOW of span start times, a project at a time (each
    read uses the spans' project and start-time index)."""
    since = datetime.now(UTC) - WINDOW
    created = sum(
        decisions_record(since=since, project_id=pk)
        for pk in Project.objects.order_by("pk").values_list("pk", flat=True)
    )
    pending_actions_join()
    return created


# ------------------------------------------------------------------ the person's action


class DecisionPending(LookupError):
    """No decision on that run (and span) yet: the action was kept to be joined to it."""

    def __init__(self, pending: PendingDecisionAction) -> None:
        super().__init__(pending.trace_id)
        self.pending = pending


class TooManyPending(RuntimeError):
    pass


# A person's action can arrive before its decision span (the exporter batches, the action
# is posted at once): kept this long, at most this many per project, then dropped.
PENDING_KEEP = timedelta(days=7)
PENDING_MAX_PER_PROJECT = 10_000


def _decision_find(project_id: int, trace_id: str, span_id: str) -> DecisionRecord | None:
    qs = DecisionRecord.objects.filter(project_id=project_id, trace_id=trace_id)
    if span_id:
        qs = qs.filter(span_id=span_id)
    return qs.order_by("-decided_at", "-id").first()


def _action_apply(record: DecisionRecord, action: str, acted_at: datetime) -> DecisionRecord:
    record.human_action = action
    record.human_action_at = acted_at
    record.save(update_fields=["human_action", "human_action_at"])
    agreement_forget(record.project_id)
    return record


def decision_action_record(
    *,
    project_id: int,
    trace_id: str,
    span_id: str = "",
    action: str,
    acted_at: datetime | None = None,
) -> DecisionRecord:
    """Store what a person did about a decision (the trace's only or latest decision when
    no span is named). Posting again replaces it. When the decision has not arrived yet the
    action is kept (`DecisionPending` is raised) and joined when it does."""
    trace_id = trace_id.lower()
    span_id = span_id.lower()
    action = action.replace("\x00", "").strip()[:ACTION_MAX]
    acted_at = acted_at or timezone.now()
    record = _decision_find(project_id, trace_id, span_id)
    if record is None:
        decisions_record(project_id=project_id, trace_id=trace_id)
        record = _decision_find(project_id, trace_id, span_id)
    if record is not None:
        return _action_apply(record, action, acted_at)
    waiting = PendingDecisionAction.objects.filter(project_id=project_id)
    if not waiting.filter(trace_id=trace_id, span_id=span_id).exists() and (
        waiting.count() >= PENDING_MAX_PER_PROJECT
    ):
        raise TooManyPending(
            f"{PENDING_MAX_PER_PROJECT:,} actions already wait for their decisions"
        )
    pending, _ = PendingDecisionAction.objects.update_or_create(
        project_id=project_id,
        trace_id=trace_id,
        span_id=span_id,
        defaults={"action": action, "acted_at": acted_at},
    )
    raise DecisionPending(pending)


def pending_actions_join(*, now: datetime | None = None) -> int:
    """Join the kept actions whose decision has arrived, and drop those older than
    `PENDING_KEEP`. Returns how many were joined."""
    now = now or timezone.now()
    PendingDecisionAction.objects.filter(received_at__lt=now - PENDING_KEEP).delete()
    recorded = DecisionRecord.objects.filter(
        project_id=OuterRef("project_id"), trace_id=OuterRef("trace_id")
    )
    joined = 0
    for pending in PendingDecisionAction.objects.filter(Exists(recorded)).order_by("id")[:CHUNK]:
        record = _decision_find(pending.project_id, pending.trace_id, pending.span_id)
        if record is None:
            continue  # a named span the run does not have yet: kept until it arrives
        with transaction.atomic():
            _action_apply(record, pending.action, pending.acted_at)
            pending.delete()
        joined += 1
    return joined


# ------------------------------------------------------------------ search


def _terms(q: str) -> list[str]:
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(q or "")))
    return words[:MAX_TERMS]


def decision_search(qs: QuerySet, q: str, *, any_term: bool = False) -> QuerySet:
    """`qs` narrowed to the decisions whose context or action has the words of `q` (all
    of them, or any with `any_term`), annotated with `score` (higher is closer)."""
    terms = _terms(q)
    if not terms:
        return qs.none().annotate(score=Value(0.0, output_field=FloatField()))
    text = " ".join(terms)
    # The SQL below is built from constants only; the words are always bound parameters.
    if connection.vendor == "postgresql":
        tsquery = "plainto_tsquery('english', %s)"
        if any_term:
            tsquery = "replace(plainto_tsquery('english', %s)::text, '&', '|')::tsquery"
        return qs.filter(
            RawSQL(f"{PG_DOCUMENT} @@ {tsquery}", [text], output_field=BooleanField())  # noqa: S611
        ).annotate(
            score=RawSQL(f"ts_rank({PG_DOCUMENT}, {tsquery})", [text], output_field=FloatField())  # noqa: S611
        )
    match = (" OR " if any_term else " ").join(f'"{t}"' for t in terms)
    table = DecisionRecord._meta.db_table
    return qs.filter(
        pk__in=RawSQL(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s", [match])  # noqa: S611
    ).annotate(
        score=RawSQL(  # noqa: S611
            f"(SELECT -bm25({FTS_TABLE}) FROM {FTS_TABLE} "
            f'WHERE {FTS_TABLE} MATCH %s AND rowid = "{table}"."id")',
            [match],
            output_field=FloatField(),
        )
    )


OUTCOMES = {
    "agreed": "the person did what the agent recommended",
    "overridden": "the person did something else",
    "pending": "no action from a person yet",
}


def _agrees() -> Q:
    return Q(agree_action=F("agree_human"))


def _with_agreement(qs: QuerySet) -> QuerySet:
    return qs.annotate(agree_action=Lower(Trim("action")), agree_human=Lower(Trim("human_action")))


@dataclass
class DecisionFilters:
    q: str = ""
    agent: str = ""
    version: str = ""
    action: str = ""
    outcome: str = ""

    @classmethod
    def from_query(cls, params) -> DecisionFilters:
        """Unknown outcomes are a ValueError (a 400 for the API, ignored by the page)."""
        values = {
            k: str(params.get(k) or "").replace("\x00", "").strip()[:500]
            for k in ("q", "agent", "version", "action")
        }
        outcome = (params.get("outcome") or "").strip()
        if outcome and outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
        return cls(outcome=outcome, **values)


# A search ranks its newest matches, as many as a list counts (one more, so the count can
# say "10,000+").
RANK_CANDIDATES = COUNT_CAP + 1


def decision_list(*, project_id: int, filters: DecisionFilters) -> QuerySet:
    """A project's decisions, filtered; with a query, its `RANK_CANDIDATES` newest matches,
    most relevant first; else newest first."""
    qs = DecisionRecord.objects.filter(project_id=project_id)
    if filters.agent:
        qs = qs.filter(agent=filters.agent)
    if filters.version:
        qs = qs.filter(agent_version=filters.version)
    if filters.action:
        qs = qs.filter(action=filters.action)
    if filters.outcome == "pending":
        qs = qs.filter(human_action="")
    elif filters.outcome:
        qs = _with_agreement(qs.exclude(human_action=""))
        qs = qs.filter(_agrees()) if filters.outcome == "agreed" else qs.exclude(_agrees())
    if filters.q:
        # Rank the newest matches only: a word in most rows would otherwise rank them all.
        # Two queries: the search's SQL names the table, so it cannot sit in a subquery.
        newest = list(
            decision_search(qs, filters.q)
            .order_by("-decided_at", "-id")
            .values_list("pk", flat=True)[:RANK_CANDIDATES]
        )
        return decision_search(DecisionRecord.objects.filter(pk__in=newest), filters.q).order_by(
            "-score", "-decided_at", "-id"
        )
    return qs.order_by("-decided_at", "-id")


def decision_get(*, project_ids, pk: int) -> DecisionRecord | None:
    return DecisionRecord.objects.filter(project_id__in=project_ids, pk=pk).first()


# "Similar" ranks the agent's latest decisions before this one, not all of them: a
# context shares some word with most others, so an unbounded search ranks the whole table.
SIMILAR_CANDIDATES = 5_000


def similar_decisions(record: DecisionRecord, *, limit: int = 5) -> list[DecisionRecord]:
    """Of the same agent's `SIMILAR_CANDIDATES` latest decisions before this one, those
    whose context shares the most words with this one's (full-text rank over any of its
    words)."""
    earlier = DecisionRecord.objects.filter(
        project_id=record.project_id, agent=record.agent, decided_at__lte=record.decided_at
    ).exclude(pk=record.pk)
    recent = earlier.order_by("-decided_at", "-id").values("id")[:SIMILAR_CANDIDATES]
    qs = DecisionRecord.objects.filter(pk__in=recent)
    return list(
        decision_search(qs, record.context or record.action, any_term=True).order_by(
            "-score", "-decided_at", "-id"
        )[:limit]
    )


def decision_outcome(record: DecisionRecord) -> str:
    if not record.human_action:
        return "pending"
    same = record.human_action.strip().casefold() == record.action.strip().casefold()
    return "agreed" if same else "overridden"


def run_outcomes(records: list[DecisionRecord]) -> dict[str, list[Outcome]]:
    """The KPI and eval outcomes of the runs of these decisions, by trace id."""
    by_trace: dict[str, list[Outcome]] = {}
    if not records:
        return by_trace
    rows = Outcome.objects.filter(
        project_id=records[0].project_id, trace_id__in={r.trace_id for r in records}
    ).order_by("kind", "name")
    for row in rows:
        by_trace.setdefault(row.trace_id, []).append(row)
    return by_trace


# ------------------------------------------------------------------ agreement


def _acted(project_id: int, agent: str = "", phase: str = "", version: str = "") -> QuerySet:
    qs = DecisionRecord.objects.filter(project_id=project_id).exclude(human_action="")
    if agent:
        qs = qs.filter(agent=agent)
    if phase:
        qs = qs.filter(phase=phase)
    if version:
        qs = qs.filter(agent_version=version)
    return _with_agreement(qs)


def _agreement_counts() -> dict[str, Any]:
    return {
        "n": Count("id"),
        "agreed": Sum(
            Case(When(_agrees(), then=Value(1)), default=Value(0)),
            output_field=IntegerField(),
        ),
    }


def agreement_in_window(
    *, project_id: int, agent: str, phase: str, version: str, start_day: date, end_day: date
) -> tuple[int, int]:
    """(decisions with a person's action, how many agreed) of the agent's decisions taken
    in `phase` (and `version`, when given) on the UTC days `start_day`..`end_day`. The
    shadow agreement of the promotion criteria (`rollouts.extensions`)."""
    start = datetime.combine(start_day, time.min, tzinfo=UTC)
    end = datetime.combine(end_day + timedelta(days=1), time.min, tzinfo=UTC)
    row = (
        _acted(project_id, agent, phase, version)
        .filter(decided_at__gte=start, decided_at__lt=end)
        .aggregate(**_agreement_counts())
    )
    return row["n"] or 0, row["agreed"] or 0


# The agreement per version aggregates every acted-on decision: the pages read it at most
# this often per process.
AGREEMENT_CACHE_SECONDS = 60


def agreement_by_version(
    *, project_id: int, agent: str = "", phase: str = ""
) -> list[dict[str, Any]]:
    """Per agent and version: decisions with a person's action, how many agreed, the rate
    and its Wilson 95 % interval. Cached for `AGREEMENT_CACHE_SECONDS`; a new action
    clears the project's entries in this process."""
    key = _agreement_key(project_id, agent, phase)
    found = cache.get(key)
    if found is None:
        found = _agreement_by_version(project_id=project_id, agent=agent, phase=phase)
        cache.set(key, found, AGREEMENT_CACHE_SECONDS)
    return found


def _agreement_key(project_id: int, agent: str, phase: str) -> str:
    """Keyed by the project's generation, which a new action moves on."""
    generation = cache.get(f"decisions:agreement-gen:{project_id}", 0)
    digest = hashlib.sha256(f"{agent}\x00{phase}".encode()).hexdigest()[:24]
    return f"decisions:agreement:{project_id}:{generation}:{digest}"


def agreement_forget(project_id: int) -> None:
    key = f"decisions:agreement-gen:{project_id}"
    cache.set(key, cache.get(key, 0) + 1, None)


def _agreement_by_version(*, project_id: int, agent: str, phase: str) -> list[dict[str, Any]]:
    rows = (
        _acted(project_id, agent, phase)
        .values("agent", "agent_version")
        .annotate(**_agreement_counts())
        .order_by("agent", "agent_version")
    )
    result = []
    for row in rows:
        stats = RateStats(n=row["n"], successes=row["agreed"] or 0)
        low, high = wilson_interval(stats)
        result.append(
            {
                "agent": row["agent"],
                "agent_version": row["agent_version"],
                "n": stats.n,
                "agreed": stats.successes,
                "rate": stats.rate,
                "low": low,
                "high": high,
            }
        )
    return result
