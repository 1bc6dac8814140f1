"""Approvals at runtime (control 6): an agent asks a person before a risky action and waits.

**Request.** `approval_request` stores an `Approval` bound to what is asked: the SHA-256 of
the canonical JSON of its arguments (`arguments_hash`), and a deadline `timeout_s` away
(`MIN_TIMEOUT_S` .. `MAX_TIMEOUT_S`). Its review item enters the queue through
`controls.review.review_item_open` in the same transaction.

**Decision.** `approval_decide` is a compare-and-set: only a pending request whose deadline
has not passed changes, once. Expiry is a decision too: `approvals_expire` (every minute
from the beat) marks pending requests past their deadline `expired`, and a read of a pending
request past its deadline (`approval_current`) expires it first, so an answer is never
"pending" after the deadline and never silently "approved". Each decision resolves the
request's review item in the same transaction.

**Binding.** A tool span (a span with a tool name) carrying `agentops.approval.id` is
checked against that approval (`approval_verdicts`): the approval must be one of the
project's, approved, for the same tool (when the span names one), and the canonical hash of
the span's arguments must equal the approval's, and the call must not have finished before
the approval was given (beyond `CLOCK_SKEW`: the span's times are the agent's clock). The
span may start earlier: the SDK asks from inside the tool's span, which then waits for the
answer. Otherwise the call is a violation, badged on
the timeline and listed on the Controls page. One exception: a span that itself records a
refusal (`agentops.approval.status` other than "approved", as the SDK does on the span it
asked from) is the gate that stopped the call, not a call made without approval.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from controls.checks import CONTRACT_NAME
from controls.idempotency import canonical_arguments
from controls.models import Approval, ReviewItem
from controls.review import review_item_open
from traces.models import Project
from traces.spanstore import span_store

APPROVAL_ID = "agentops.approval.id"
APPROVAL_STATUS = "agentops.approval.status"
MIN_TIMEOUT_S = 1
MAX_TIMEOUT_S = 24 * 3600
Status = Approval.Status
DECISIONS = (Status.APPROVED, Status.DENIED)


def arguments_hash(arguments: Any) -> str:
    """sha256 (hex) of the canonical JSON of the arguments: a JSON value, or the arguments'
    JSON text as a model emitted it (the same rule as a tool span's recorded arguments)."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return hashlib.sha256(canonical_arguments(text).encode()).hexdigest()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def arguments_parse(text: str) -> Any:
    """Arguments sent as JSON text, parsed strictly (no NaN or Infinity, which no database
    stores as JSON); text that is not JSON is kept as the string it is. RecursionError
    when it nests past the interpreter's limit."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError:
        return text


# ------------------------------------------------------------------ services


def approval_request(
    *,
    project: Project,
    agent: str,
    tool: str,
    arguments: Any,
    timeout_s: float = 300,
    trace_id: str = "",
    span_id: str = "",
    agent_version: str = "",
    risk: str = "",
    confidence: Decimal | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> Approval:
    """Store a pending approval request and put it in the review queue. Raises ValueError
    when `timeout_s` is outside MIN_TIMEOUT_S .. MAX_TIMEOUT_S."""
    if not MIN_TIMEOUT_S <= timeout_s <= MAX_TIMEOUT_S:
        raise ValueError(f"timeout_s must be {MIN_TIMEOUT_S} to {MAX_TIMEOUT_S} seconds")
    now = now or timezone.now()
    stored = arguments_parse(arguments) if isinstance(arguments, str) else arguments
    with transaction.atomic():
        approval = Approval.objects.create(
            public_id=uuid.uuid4(),
            project=project,
            trace_id=trace_id[:32],
            span_id=span_id[:16],
            agent=agent[:200],
            agent_version=agent_version[:100],
            tool=tool[:200],
            arguments=stored,
            arguments_hash=arguments_hash(arguments),
            risk=risk[:16],
            confidence=confidence,
            reason=reason[:500],
            created_at=now,
            expires_at=now + timedelta(seconds=timeout_s),
        )
        review_item_open(
            project=project,
            source=ReviewItem.Source.APPROVAL,
            approval=approval,
            created_at=now,
            trace_id=approval.trace_id,
            span_id=approval.span_id,
            agent=approval.agent,
            agent_version=approval.agent_version,
            tool=approval.tool,
            risk=approval.risk,
            confidence=confidence,
            reason=approval.reason,
        )
    return approval


def approval_decide(
    approval: Approval,
    decision: str,
    by: Any,
    note: str = "",
    *,
    now: datetime | None = None,
) -> bool:
    """Approve or deny a request: `decision` is "approved" or "denied", `by` the person
    (a user, or their user name), `note` free text. The queue pages call this.

    A compare-and-set: True when this call decided the request; False when it was already
    decided, or expired (a request past its deadline is marked expired here, never
    approved). Either way `approval` is refreshed with what the database holds, so
    `approval.status` says what stands. The request's review item is resolved (status,
    resolution, resolved_by, resolved_at, note) in the same transaction. Claiming the item
    first is the queue's business, not this function's. Raises ValueError on another
    decision."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
    now = now or timezone.now()
    name = by.get_username() if hasattr(by, "get_username") else str(by or "")
    name = name[:150]
    with transaction.atomic():
        won = (
            Approval.objects.filter(
                pk=approval.pk, status=Status.PENDING, expires_at__gt=now
            ).update(status=decision, decided_by=name, decided_at=now, note=note)
            == 1
        )
        if won:
            ReviewItem.objects.filter(
                approval_id=approval.pk, status=ReviewItem.Status.OPEN
            ).update(
                status=ReviewItem.Status.RESOLVED,
                resolution=decision,
                resolved_by=name,
                resolved_at=now,
                note=note,
            )
    if not won:
        _expire(ids=[approval.pk], now=now)
    approval.refresh_from_db()
    return won


def _expire(*, ids: Iterable[int], now: datetime) -> int:
    """Mark the pending ones of `ids` past their deadline expired (at their deadline) and
    close their review items. A compare-and-set: a request decided meanwhile stays so."""
    with transaction.atomic():
        expired = Approval.objects.filter(
            pk__in=list(ids), status=Status.PENDING, expires_at__lte=now
        )
        claimed = list(expired.values_list("pk", flat=True))
        if not claimed:
            return 0
        n = Approval.objects.filter(pk__in=claimed, status=Status.PENDING).update(
            status=Status.EXPIRED, decided_at=F("expires_at")
        )
        ReviewItem.objects.filter(
            approval_id__in=claimed,
            approval__status=Status.EXPIRED,
            status=ReviewItem.Status.OPEN,
        ).update(status=ReviewItem.Status.EXPIRED, resolved_at=now)
    return n


def approvals_expire(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Expire every pending request past its deadline, all projects; the number expired."""
    now = now or timezone.now()
    total = 0
    while True:
        ids = list(
            Approval.objects.filter(status=Status.PENDING, expires_at__lte=now)
            .order_by("expires_at")
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            return total
        total += _expire(ids=ids, now=now)


# ------------------------------------------------------------------ selectors


def approval_get(*, project_id: int, public_id: str | uuid.UUID) -> Approval:
    """The project's approval with this id; Approval.DoesNotExist for another project's
    or a malformed id."""
    try:
        public_id = uuid.UUID(str(public_id))
    except ValueError:
        raise Approval.DoesNotExist from None
    return Approval.objects.get(project_id=project_id, public_id=public_id)


def approval_current(approval: Approval, *, now: datetime | None = None) -> Approval:
    """The approval as it stands now: a pending one past its deadline is expired first."""
    now = now or timezone.now()
    if approval.status == Status.PENDING and approval.expires_at <= now:
        _expire(ids=[approval.pk], now=now)
        approval.refresh_from_db()
    return approval


class _Waiters:
    """How many long-polls this process holds: each one holds a web thread (WEB_THREADS per
    process), so past `APPROVAL_MAX_WAITERS` a poll answers at once instead of waiting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def enter(self) -> bool:
        with self._lock:
            if self.count >= settings.APPROVAL_MAX_WAITERS:
                return False
            self.count += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.count -= 1


waiters = _Waiters()


def approval_wait(
    approval: Approval,
    *,
    wait_s: float,
    poll_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Approval, bool]:
    """Wait up to `wait_s` seconds for a pending request to be decided or to expire, reading
    its row every `poll_s` (APPROVAL_POLL_SECONDS): one primary-key read each time, no lock.
    Returns (the approval as it stands, whether the wait was admitted); not admitted when
    the process already holds APPROVAL_MAX_WAITERS waits, and then answered at once."""
    approval = approval_current(approval)
    if approval.status != Status.PENDING or wait_s <= 0:
        return approval, True
    if not waiters.enter():
        return approval, False
    poll_s = poll_s or settings.APPROVAL_POLL_SECONDS
    try:
        deadline = clock() + wait_s
        while approval.status == Status.PENDING:
            left = deadline - clock()
            if left <= 0:
                break
            until_expiry = (approval.expires_at - timezone.now()).total_seconds()
            sleep(max(0.0, min(poll_s, left, until_expiry)))
            approval.refresh_from_db()
            approval = approval_current(approval)
    finally:
        waiters.leave()
    return approval, True


# ------------------------------------------------------------------ binding


@dataclass(frozen=True)
class Verdict:
    """What a tool span's `agentops.approval.id` says about its call."""

    outcome: str  # one of OUTCOMES
    message: str
    approval_status: str = ""

    @property
    def violation(self) -> bool:
        return self.outcome in VIOLATIONS


OK = "ok"
REFUSED = "refused"  # the span records that the gate said no: it stopped the call
UNKNOWN = "unknown_approval"
NOT_APPROVED = "not_approved"
OTHER_TOOL = "other_tool"
OTHER_ARGUMENTS = "other_arguments"
BEFORE_DECISION = "before_decision"
VIOLATIONS = (UNKNOWN, NOT_APPROVED, OTHER_TOOL, OTHER_ARGUMENTS, BEFORE_DECISION)
# Span times come from the agent's clock, decisions from the console's: this much skew is
# forgiven before a call that ended ahead of its approval counts as not having waited.
CLOCK_SKEW = timedelta(seconds=2)
OUTCOME_LABELS = {
    OK: "approved",
    REFUSED: "refused",
    UNKNOWN: "unknown approval",
    NOT_APPROVED: "not approved",
    OTHER_TOOL: "other tool",
    OTHER_ARGUMENTS: "other arguments",
    BEFORE_DECISION: "before the approval",
}
_SPAN_FIELDS = ("trace_id", "span_id", "name", "tool_name", "tool_arguments", "agent")


def approval_spans_read(
    *,
    project_id: int,
    started: tuple[datetime | None, datetime | None],
    trace_ids: list[str] | None = None,
    span_ids: list[str] | None = None,
) -> list[dict]:
    """`approval_spans` of the spans started in [since, until) (of these traces and
    spans, when given), read through the span store (either store; on the relational
    one the same single query, which the partial index span_approval_idx answers)."""
    return span_store().select_spans(
        project_id,
        columns=(*_SPAN_FIELDS, "started_at", "ended_at"),
        trace_ids=trace_ids,
        span_ids=span_ids,
        started=started,
        any_of=[{"has_key": APPROVAL_ID}],
        nonempty=["tool_name"],
        keys={
            "approval_ref": APPROVAL_ID,
            "recorded_status": APPROVAL_STATUS,
            "contract_name": CONTRACT_NAME,
        },
        order=[],
    )


def _verdict(span: dict, approval: Approval | None) -> Verdict:
    ref = span["approval_ref"]
    if approval is None:
        return Verdict(UNKNOWN, f"No approval {ref} in this project.")
    status = approval.status
    if status != Status.APPROVED:
        recorded = span.get("recorded_status") or ""
        if recorded and recorded != Status.APPROVED:
            return Verdict(REFUSED, f"The approval was {recorded}; the call was refused.", status)
        return Verdict(NOT_APPROVED, f"Ran with an approval that is {status}.", status)
    if approval.tool and approval.tool not in (span["tool_name"], span.get("contract_name")):
        return Verdict(
            OTHER_TOOL,
            f"Approved for {approval.tool}, ran {span['tool_name']}.",
            status,
        )
    if arguments_hash(span["tool_arguments"] or "") != approval.arguments_hash:
        if not span["tool_arguments"]:
            message = "The call recorded no arguments to check against the approved ones."
        else:
            message = "Ran with other arguments than the approved ones."
        return Verdict(OTHER_ARGUMENTS, message, status)
    ended = span.get("ended_at")
    if ended is not None and approval.decided_at and ended < approval.decided_at - CLOCK_SKEW:
        ended, decided = timezone.localtime(ended), timezone.localtime(approval.decided_at)
        return Verdict(
            BEFORE_DECISION,
            f"Finished at {ended:%H:%M:%S %Z}, before the approval was given at "
            f"{decided:%H:%M:%S %Z}: it did not wait for it.",
            status,
        )
    by = f" by {approval.decided_by}" if approval.decided_by else ""
    return Verdict(OK, f"Approved{by}, with these arguments.", status)


def approval_verdicts(*, project_id: int, spans: list[dict]) -> list[tuple[dict, Verdict]]:
    """Each span (rows from `approval_spans`) with its verdict; the approvals in one query."""
    ids = set()
    for span in spans:
        try:
            ids.add(uuid.UUID(str(span["approval_ref"])))
        except ValueError:
            continue
    approvals = {
        str(a.public_id): a
        for a in Approval.objects.filter(project_id=project_id, public_id__in=ids)
    }
    out = []
    for span in spans:
        try:
            key = str(uuid.UUID(str(span["approval_ref"])))
        except ValueError:
            key = ""
        out.append((span, _verdict(span, approvals.get(key))))
    return out


def approval_violations(*, project_id: int, since: datetime, until: datetime) -> list[dict]:
    """Tool calls started in [since, until) that ran outside their approval, latest first:
    trace and span ids, agent, tool, the approval id, outcome and message."""
    spans = approval_spans_read(project_id=project_id, started=(since, until))
    rows = []
    for span, verdict in approval_verdicts(project_id=project_id, spans=spans):
        if not verdict.violation:
            continue
        rows.append(
            {
                "trace_id": span["trace_id"],
                "span_id": span["span_id"],
                "started_at": span["started_at"],
                "agent": span["agent"],
                "tool": span["tool_name"],
                "approval_id": span["approval_ref"],
                "approval_status": verdict.approval_status,
                "outcome": verdict.outcome,
                "label": OUTCOME_LABELS[verdict.outcome],
                "message": verdict.message,
            }
        )
    rows.sort(key=lambda r: (r["started_at"], r["span_id"]), reverse=True)
    return rows


def approval_counts(*, project_id: int, since: datetime, until: datetime) -> dict[str, int]:
    """Approval requests made in [since, until), per status (every status present)."""
    rows = dict(
        Approval.objects.filter(project_id=project_id, created_at__gte=since, created_at__lt=until)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by("status")
    )
    return {str(s): rows.get(s, 0) for s in Status.values}


def approval_report(*, project_id: int, since: datetime, until: datetime) -> dict:
    """What the Controls page and `GET /api/controls/approvals/` show: requests per status
    and the calls that ran outside their approval."""
    window = {"project_id": project_id, "since": since, "until": until}
    return {"requests": approval_counts(**window), "violations": approval_violations(**window)}
