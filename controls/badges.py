"""What the controls say about a span, as badges on the trace timeline
(`traces.annotations`; registered in `ControlsConfig.ready`)."""

from __future__ import annotations

from controls.approvals import OUTCOME_LABELS, approval_spans_read, approval_verdicts
from controls.models import ContractCheck
from traces.annotations import SpanBadge
from traces.models import Trace
from traces.selectors import SPAN_READ_MARGIN

Outcome = ContractCheck.Outcome
CONTRACT = "Tool contract"
_SHORT = {
    Outcome.UNKNOWN_VERSION: "unknown version",
    Outcome.ARGUMENTS_INVALID: "arguments invalid",
    Outcome.RESULT_INVALID: "result invalid",
    Outcome.IDEMPOTENCY_KEY_MISSING: "no idempotency key",
}


def contract_badge(check: dict) -> SpanBadge:
    """The badge of one contract check row (`tool_name`, `contract_version`, `outcome`,
    `detail`)."""
    outcome = check["outcome"]
    contract = f"{check['tool_name']} {check['contract_version']}".strip()
    detail = check["detail"] if isinstance(check["detail"], dict) else {}
    message = str(detail.get("message") or "")
    pointer = str(detail.get("pointer") or "")
    if outcome == Outcome.OK:
        return SpanBadge("contract ✓", "ok", f"Matches the contract {contract}.", CONTRACT)
    if outcome == Outcome.NO_CONTRACT:
        return SpanBadge(
            "no contract", "info", message or f"No contract for {check['tool_name']}.", CONTRACT
        )
    where = f" at {pointer}" if pointer else ""
    title = f"{Outcome(outcome).label}{where}: {message}" if message else Outcome(outcome).label
    return SpanBadge(f"contract ✗ {_SHORT.get(outcome, outcome)}", "danger", title, CONTRACT)


def contract_badges(*, trace: Trace, span_ids: list[str] | None = None) -> dict:
    """The contract check of each checked span of the trace, in one indexed query (the
    check's unique key starts with project, trace_id), bounded by the trace's start and
    end as its spans are, so that PostgreSQL reads those days' partitions only."""
    qs = ContractCheck.objects.filter(
        project_id=trace.project_id,
        trace_id=trace.trace_id,
        span_started_at__gte=trace.started_at - SPAN_READ_MARGIN,
        span_started_at__lte=trace.ended_at + SPAN_READ_MARGIN,
    )
    if span_ids is not None:
        qs = qs.filter(span_id__in=span_ids)
    rows = qs.values("span_id", "tool_name", "contract_version", "outcome", "detail")
    return {row["span_id"]: [contract_badge(row)] for row in rows}


APPROVAL = "Approval"
_APPROVAL_TONES = {"ok": "ok", "refused": "info"}


def approval_badges(*, trace: Trace, span_ids: list[str] | None = None) -> dict:
    """The verdict on each tool span of the trace that carries `agentops.approval.id`
    (`controls.approvals`): approved as asked, refused, or a violation. One read of the
    span store for the spans (on the relational one, the partial index
    span_approval_idx), one query for the approvals."""
    spans = approval_spans_read(
        project_id=trace.project_id,
        started=(trace.started_at - SPAN_READ_MARGIN, trace.ended_at + SPAN_READ_MARGIN),
        trace_ids=[trace.trace_id],
        span_ids=span_ids,
    )
    out: dict = {}
    for span, verdict in approval_verdicts(project_id=trace.project_id, spans=spans):
        tone = _APPROVAL_TONES.get(verdict.outcome, "danger")
        label = "approval ✓" if tone == "ok" else f"approval ✗ {OUTCOME_LABELS[verdict.outcome]}"
        out.setdefault(span["span_id"], []).append(
            SpanBadge(label, tone, verdict.message, APPROVAL)
        )
    return out
