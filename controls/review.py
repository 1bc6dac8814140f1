"""The review queue: things waiting for a person (approval requests, runs that crossed a
review rule), each with its SLA.

`review_item_open` is the one way an item enters the queue; `review_sla_minutes` the one
rule for how long it may wait.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from controls.checks import CONTRACT_NAME, _Registry, span_verdict
from controls.decisions import DECISION, POLICY_NAME, percentile
from controls.models import Approval, ReviewItem, ReviewRule, ReviewSla, ToolContract
from rollouts.selectors import declared_phase
from traces.models import Project, Span, Step, Trace
from traces.services import trace_mark_intervened
from traces.spanstore import span_page, span_store
from traces.spanstore.query import ARRIVAL


def review_sla_minutes(*, project_id: int, risk: str) -> int | None:
    """The minutes an item of `risk` may wait: the project's SLA for that risk, else its
    catch-all ("" risk), else None (no SLA)."""
    rows = dict(
        ReviewSla.objects.filter(project_id=project_id, risk__in=[risk, ""]).values_list(
            "risk", "minutes"
        )
    )
    return rows.get(risk, rows.get(""))


def review_item_open(
    *,
    project: Project,
    source: str,
    created_at: datetime,
    approval: Approval | None = None,
    trace_id: str = "",
    span_id: str = "",
    agent: str = "",
    agent_version: str = "",
    phase: str = "",
    tool: str = "",
    risk: str = "",
    confidence: Decimal | None = None,
    reason: str = "",
) -> ReviewItem | None:
    """Put an item in the queue, with its SLA deadline. A run's step flagged again for
    the same reason is not queued twice: None when it already is."""
    minutes = review_sla_minutes(project_id=project.pk, risk=risk)
    item = ReviewItem(
        project=project,
        source=source,
        approval=approval,
        trace_id=trace_id,
        span_id=span_id,
        agent=agent[:200],
        agent_version=agent_version[:100],
        phase=phase[:16],
        tool=tool[:200],
        risk=risk[:16],
        confidence=confidence,
        reason=reason[:500],
        created_at=created_at,
        sla_due_at=created_at + timedelta(minutes=minutes) if minutes is not None else None,
    )
    try:
        with transaction.atomic():
            item.save()
    except IntegrityError:
        if approval is not None:
            raise
        return None
    return item


# ------------------------------------------------------------------ claim and resolve

Resolution = ReviewItem.Resolution
# A person's answer to an approval request; "override" is for flagged runs only.
APPROVAL_DECISIONS = {
    Resolution.APPROVED: Approval.Status.APPROVED,
    Resolution.DENIED: Approval.Status.DENIED,
}


class ReviewConflict(Exception):
    """The item is not in the state the action needs (claimed by someone else, already
    resolved): the page says so instead of acting."""


def review_item_claim(*, item_id: int, user, now: datetime | None = None) -> bool:
    """Claim an open, unclaimed item for `user`. A compare-and-set: of two reviewers
    claiming at once, the UPDATE of one matches the row and the other's matches none."""
    now = now or timezone.now()
    return (
        ReviewItem.objects.filter(
            pk=item_id, status=ReviewItem.Status.OPEN, claimed_by__isnull=True
        ).update(claimed_by=user, claimed_at=now)
        == 1
    )


def review_item_release(*, item_id: int, user) -> bool:
    """Give back an item `user` holds; False when they do not hold it."""
    return (
        ReviewItem.objects.filter(
            pk=item_id, status=ReviewItem.Status.OPEN, claimed_by=user
        ).update(claimed_by=None, claimed_at=None)
        == 1
    )


def review_item_resolve(
    *, item: ReviewItem, user, resolution: str, note: str = "", now: datetime | None = None
) -> ReviewItem:
    """Approve, deny or override an item the user holds, with a note; its run counts as
    intervened. An approval request is decided through `approval_decide` (which resolves
    its item too), so the waiting agent gets the answer. Raises ValueError for a
    resolution the item cannot take and ReviewConflict when the user does not hold it."""
    now = now or timezone.now()
    if resolution not in Resolution.values:
        raise ValueError(f"Unknown resolution {resolution!r}.")
    if item.approval_id is not None and resolution not in APPROVAL_DECISIONS:
        raise ValueError("An approval request is approved or denied.")
    mine = ReviewItem.objects.filter(pk=item.pk, status=ReviewItem.Status.OPEN, claimed_by=user)
    by = user.get_username()
    note = note.strip()[:5000]
    if item.approval_id is not None:
        from controls.approvals import approval_decide  # it imports this module

        with transaction.atomic():
            # The claim is re-checked under the row lock, then the approval decided.
            held = mine.select_for_update().exists()
            won = held and approval_decide(
                approval=item.approval,
                decision=str(APPROVAL_DECISIONS[resolution]),
                by=by,
                note=note,
                now=now,
            )
        # Raised outside the transaction: an approval found expired stays expired.
        if not won:
            item.refresh_from_db()
            if held and item.approval.status == Approval.Status.EXPIRED:
                raise ReviewConflict("The request expired before the decision.")
            raise ReviewConflict("You do not hold this item, or it is resolved.")
        item.refresh_from_db()
    else:
        resolved = mine.update(
            status=ReviewItem.Status.RESOLVED,
            resolution=resolution,
            resolved_by=by,
            resolved_at=now,
            note=note,
        )
        if resolved != 1:
            raise ReviewConflict("You do not hold this item, or it is resolved.")
        item.refresh_from_db()
    if item.trace_id:
        trace_mark_intervened(project_id=item.project_id, trace_ids=[item.trace_id], now=now)
    return item


def review_interventions_sync(*, since: datetime, now: datetime | None = None) -> int:
    """Mark intervened the runs of items resolved from `since` on whose trace arrived
    after the decision (an agent waiting on an approval exports its spans later)."""
    rows = (
        ReviewItem.objects.filter(resolved_at__gte=since)
        .exclude(trace_id="")
        .values_list("project_id", "trace_id")
    )
    by_project: dict[int, set[str]] = defaultdict(set)
    for project_id, trace_id in rows:
        by_project[project_id].add(trace_id)
    return sum(
        trace_mark_intervened(project_id=p, trace_ids=sorted(ids), now=now)
        for p, ids in by_project.items()
    )


# ------------------------------------------------------------------ auto-flagging

CONFIDENCE = "agentops.confidence"
RISK = "agentops.risk"
APPROVAL_ID = "agentops.approval.id"
Source = ReviewItem.Source
FLAG_CHUNK = 500


def _rule_for(rules: list[ReviewRule], agent: str, phase: str) -> ReviewRule | None:
    """The most specific rule: (agent, phase), (agent, any), (any, phase), (any, any)."""
    by_scope = {(r.agent, r.phase): r for r in rules}
    for scope in ((agent, phase), (agent, ""), ("", phase), ("", "")):
        if scope in by_scope:
            return by_scope[scope]
    return None


def _confidence(value) -> Decimal | None:
    if type(value) not in (int, float, str) or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value))
    except ArithmeticError:
        return None
    if not d.is_finite() or not 0 <= d <= 1:
        return None
    return d.quantize(Decimal("0.001"))


def span_review_reason(
    *, span: Span, rule: ReviewRule, risk: str
) -> tuple[str, str, Decimal | None] | None:
    """(source, reason, confidence) when `rule` sends the span to review, else None. One
    item per span: an escalation, then a policy escalate, then risk, then confidence."""
    attrs = span.attributes or {}
    confidence = _confidence(attrs.get(CONFIDENCE))
    if rule.on_escalation and span.step == Step.ESCALATION:
        return Source.ESCALATION, f"Escalation step “{span.name}”", confidence
    if rule.on_policy_escalate and attrs.get(DECISION) == "escalate":
        policy = str(attrs.get(POLICY_NAME) or "a policy")
        return Source.POLICY_ESCALATE, f"{policy} decided escalate", confidence
    if risk and risk in (rule.risks or []):
        return Source.HIGH_RISK, f"Risk {risk}", confidence
    if (
        rule.min_confidence is not None
        and confidence is not None
        and confidence < rule.min_confidence
    ):
        return (
            Source.LOW_CONFIDENCE,
            f"Confidence {confidence} below {rule.min_confidence}",
            confidence,
        )
    return None


_CANDIDATE_COLUMNS = (
    "project_id",
    "trace_id",
    "span_id",
    "name",
    "step",
    "tool_name",
    "tool_arguments",
    "tool_result",
    "attributes",
    "agent",
    "agent_version",
    "received_at",
)


def _candidates(
    *, project_id: int, since: datetime, risky_tools: set[str], after, limit: int
) -> tuple[list[Span], object]:
    """The next spans received from `since` on that can match a rule, in the order they
    were stored, and the cursor past them. An item of any source (an approval's too) for
    the same span excludes it: the anti-join that flags each span once (one query on the
    relational store)."""
    can_match = [
        {"equals": {"step": Step.ESCALATION}},
        {"has_key": CONFIDENCE},
        {"has_key": RISK},
        {"has_key": DECISION},
    ]
    if risky_tools:
        can_match.append({"equals": {"step": Step.TOOL, "tool_name": sorted(risky_tools)}})
        can_match.append({"equals": {"step": Step.TOOL}, "has_key": CONTRACT_NAME})
    rows = span_store().select_spans(
        project_id,
        columns=_CANDIDATE_COLUMNS,
        received=(since, None),
        any_of=can_match,
        lacks_keys=[APPROVAL_ID],
        absent_from=ReviewItem.objects.all(),
        order=ARRIVAL,
        after=after,
        limit=limit,
    )
    return span_page(rows, after)


def review_flags_scan(*, since: datetime, project_id: int | None = None) -> int:
    """Send to the queue the spans received from `since` on that cross their agent's
    review rule (per agent and phase); returns the items opened. Re-runs and concurrent
    runs open nothing twice (the anti-join, then the item's unique constraint)."""
    projects = ReviewRule.objects.values_list("project_id", flat=True).distinct()
    if project_id is not None:
        projects = projects.filter(project_id=project_id)
    opened = 0
    for pid in sorted(set(projects)):
        opened += _project_scan(project_id=pid, since=since)
    return opened


def _project_scan(*, project_id: int, since: datetime) -> int:
    project = Project.objects.get(pk=project_id)
    rules = list(ReviewRule.objects.filter(project_id=project_id))
    wanted_risks = {r for rule in rules for r in (rule.risks or [])}
    risky_tools = set(
        ToolContract.objects.filter(project_id=project_id, risk__in=wanted_risks).values_list(
            "name", flat=True
        )
    )
    registry = _Registry()
    opened = 0
    after = None
    runs: dict[str, tuple[str, str, str]] = {}
    declared: dict[str, str] = {}
    while True:
        spans, after = _candidates(
            project_id=project_id,
            since=since,
            risky_tools=risky_tools,
            after=after,
            limit=FLAG_CHUNK,
        )
        if not spans:
            return opened
        missing = {s.trace_id for s in spans} - runs.keys()
        for t in Trace.objects.filter(project_id=project_id, trace_id__in=missing).values(
            "trace_id", "agent", "agent_version", "phase"
        ):
            runs[t["trace_id"]] = (t["agent"], t["agent_version"], t["phase"])
        for span in spans:
            run_agent, run_version, phase = runs.get(span.trace_id, ("", "", ""))
            agent = span.agent or run_agent
            version = span.agent_version or run_version
            if not phase and agent:
                # The declared phase is read once per agent and scan (a minute apart).
                if agent not in declared:
                    declared[agent] = declared_phase(
                        project_id=project_id, agent=agent, at=span.received_at
                    )
                phase = declared[agent]
            rule = _rule_for(rules, agent, phase)
            if rule is None:
                continue
            risk = _span_risk(span, registry, wanted=bool(rule.risks))
            found = span_review_reason(span=span, rule=rule, risk=risk)
            if found is None:
                continue
            source, reason, confidence = found
            item = review_item_open(
                project=project,
                source=source,
                created_at=span.received_at,
                trace_id=span.trace_id,
                span_id=span.span_id,
                agent=agent,
                agent_version=version,
                phase=phase,
                tool=span.tool_name,
                risk=risk,
                confidence=confidence,
                reason=reason,
            )
            opened += item is not None


def _span_risk(span: Span, registry: _Registry, *, wanted: bool) -> str:
    """`agentops.risk` on the span, else (for a tool call) its contract's risk."""
    value = (span.attributes or {}).get(RISK)
    if isinstance(value, str) and value.strip().lower() in ToolContract.Risk.values:
        return value.strip().lower()
    if wanted and span.step == Step.TOOL:
        contract = span_verdict(span, registry).contract
        if contract is not None:
            return contract.risk
    return ""


# ------------------------------------------------------------------ SLA


def review_sla_due(*, now: datetime, limit: int = 200) -> list[int]:
    """Ids of open items past their SLA that have not raised their alert."""
    return list(
        ReviewItem.objects.filter(
            status=ReviewItem.Status.OPEN, sla_due_at__lte=now, sla_alerted_at__isnull=True
        )
        .order_by("sla_due_at")
        .values_list("pk", flat=True)[:limit]
    )


def review_sla_alert_claim(*, item_id: int, now: datetime) -> bool:
    """The compare-and-set that makes the SLA alert go out once: only the caller whose
    UPDATE sets `sla_alerted_at` sends."""
    return (
        ReviewItem.objects.filter(
            pk=item_id,
            status=ReviewItem.Status.OPEN,
            sla_due_at__lte=now,
            sla_alerted_at__isnull=True,
        ).update(sla_alerted_at=now)
        == 1
    )


def review_sla_alert_release(*, item_id: int, claimed_at: datetime) -> None:
    """Undo a claim whose alert reached no channel, so the next run tries again."""
    ReviewItem.objects.filter(pk=item_id, sla_alerted_at=claimed_at).update(sla_alerted_at=None)


# ------------------------------------------------------------------ reads


def sla_text(value: timedelta) -> str:
    """An SLA as set, in minutes: 10 min, 2 h 00 min."""
    minutes = int(value.total_seconds() // 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def review_waiting(item: ReviewItem, *, now: datetime) -> dict:
    """How long the item waited (until now, or until resolved) against its SLA."""
    end = item.resolved_at or now
    waited = max(end - item.created_at, timedelta(0))
    sla = (item.sla_due_at - item.created_at) if item.sla_due_at else None
    late = item.sla_due_at is not None and end > item.sla_due_at
    return {"waited": waited, "sla": sla, "late": late}


_SECONDS = "greatest(extract(epoch FROM resolved_at - created_at), 0)"


def review_time_to_decision(*, project_id: int, since: datetime, until: datetime) -> list[dict]:
    """Time to decision per agent and version, of the items resolved in [since, until):
    count, median and p95 (nearest rank) in seconds, and how many missed their SLA.
    PostgreSQL computes it (`percentile_disc` is the nearest rank); SQLite, the embedded
    default, in Python with the same rule (`controls.decisions.percentile`)."""
    if connection.vendor == "postgresql":
        return _time_to_decision_sql(project_id=project_id, since=since, until=until)
    rows = ReviewItem.objects.filter(
        project_id=project_id,
        status=ReviewItem.Status.RESOLVED,
        resolved_at__gte=since,
        resolved_at__lt=until,
    ).values_list("agent", "agent_version", "created_at", "resolved_at", "sla_due_at")
    by_key: dict[tuple[str, str], list[tuple[float, bool]]] = defaultdict(list)
    for agent, version, created, resolved, due in rows.iterator(chunk_size=2000):
        seconds = max((resolved - created).total_seconds(), 0.0)
        by_key[(agent, version)].append((seconds, due is not None and resolved > due))
    out = []
    for (agent, version), values in sorted(by_key.items()):
        seconds = [s for s, _ in values]
        out.append(
            {
                "agent": agent,
                "agent_version": version,
                "decisions": len(values),
                "median_s": percentile(seconds, 0.5),
                "p95_s": percentile(seconds, 0.95),
                "late": sum(1 for _, late in values if late),
            }
        )
    return out


_TIME_TO_DECISION_SQL = f"""
SELECT agent, agent_version, count(*),
       percentile_disc(0.5) WITHIN GROUP (ORDER BY {_SECONDS}),
       percentile_disc(0.95) WITHIN GROUP (ORDER BY {_SECONDS}),
       count(*) FILTER (WHERE sla_due_at IS NOT NULL AND resolved_at > sla_due_at)
FROM controls_reviewitem
WHERE project_id = %s AND status = %s AND resolved_at >= %s AND resolved_at < %s
GROUP BY agent, agent_version
ORDER BY agent, agent_version
"""


def _time_to_decision_sql(*, project_id: int, since: datetime, until: datetime) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(
            _TIME_TO_DECISION_SQL, [project_id, ReviewItem.Status.RESOLVED.value, since, until]
        )
        return [
            {
                "agent": agent,
                "agent_version": version,
                "decisions": n,
                "median_s": float(median),
                "p95_s": float(p95),
                "late": late,
            }
            for agent, version, n, median, p95, late in cursor.fetchall()
        ]


def review_open_summary(*, project_id: int, now: datetime, limit: int = 5) -> dict:
    """The queue at a glance: how many items wait, how many past their SLA, and the
    `limit` oldest with their waiting time. Two queries."""
    open_items = ReviewItem.objects.filter(project_id=project_id, status=ReviewItem.Status.OPEN)
    counts = open_items.aggregate(open=Count("id"), late=Count("id", filter=Q(sla_due_at__lt=now)))
    oldest = list(open_items.select_related("claimed_by").order_by("created_at", "id")[:limit])
    return {
        "open": counts["open"] or 0,
        "late": counts["late"] or 0,
        "oldest": [{"item": item, **review_waiting(item, now=now)} for item in oldest],
    }
