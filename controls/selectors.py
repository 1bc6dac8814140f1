"""Reads of the tool contract registry, scoped by project."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Max, Q, QuerySet

from controls.models import ContractCheck, ToolContract
from traces.models import Project
from traces.selectors import project_list_for_user


def contract_list_for_user(*, user, project_slug: str = "") -> QuerySet[ToolContract]:
    """Contracts of the projects the user (or project key) can see."""
    qs = ToolContract.objects.filter(project__in=project_list_for_user(user=user))
    if project_slug:
        qs = qs.filter(project__slug=project_slug)
    return qs.select_related("project")


def contract_latest(*, project: Project, name: str) -> ToolContract | None:
    """The most recently registered version of a tool's contract."""
    return (
        ToolContract.objects.filter(project=project, name=name)
        .order_by("-created_at", "-id")
        .first()
    )


# ------------------------------------------------------------------ contract checks

VIOLATION_BY = {
    "tool": "tool_name",
    "tool_version": "contract_version",
    "agent": "agent",
    "agent_version": "agent_version",
}
# Not a violation of a contract: the tool has none (listed as uncontracted instead).
NOT_VIOLATIONS = (ContractCheck.Outcome.OK, ContractCheck.Outcome.NO_CONTRACT)
OFFENDING_RUNS = 10


def _checks(project_id: int, since: datetime, until: datetime) -> QuerySet[ContractCheck]:
    return ContractCheck.objects.filter(
        project_id=project_id, span_started_at__gte=since, span_started_at__lt=until
    )


def _offending_runs(qs: QuerySet[ContractCheck], limit: int) -> list[str]:
    """Distinct trace ids, latest offence first."""
    rows = qs.values("trace_id").annotate(last=Max("span_started_at")).order_by("-last", "trace_id")
    return [r["trace_id"] for r in rows[:limit]]


def contract_violation_rates(
    project_id: int,
    since: datetime,
    until: datetime,
    by: tuple[str, ...] = ("tool", "tool_version", "agent", "agent_version"),
    *,
    runs: int = OFFENDING_RUNS,
) -> list[dict]:
    """Checked tool calls, violations and their rate per group, most violations first.

    Calls of uncontracted tools are not counted here (see `uncontracted_tools`). Each row
    has `runs`: the trace ids of its offending runs, latest first."""
    unknown = [b for b in by if b not in VIOLATION_BY]
    if unknown or not by:
        raise ValueError(f"by must be some of {', '.join(VIOLATION_BY)}")
    fields = [VIOLATION_BY[b] for b in by]
    qs = _checks(project_id, since, until).exclude(outcome=ContractCheck.Outcome.NO_CONTRACT)
    violation = ~Q(outcome=ContractCheck.Outcome.OK)
    rows = (
        qs.values(*fields)
        .annotate(checked=Count("id"), violations=Count("id", filter=violation))
        .order_by("-violations", *fields)
    )
    out = []
    for row in rows:
        key = {b: row[VIOLATION_BY[b]] for b in by}
        offences = qs.filter(violation, **{VIOLATION_BY[b]: v for b, v in key.items()})
        outcomes = dict(offences.values_list("outcome").annotate(n=Count("id")).order_by("outcome"))
        out.append(
            {
                **key,
                "checked": row["checked"],
                "violations": row["violations"],
                "rate": row["violations"] / row["checked"],
                "outcomes": outcomes,
                "runs": _offending_runs(offences, runs) if row["violations"] else [],
            }
        )
    return out


def uncontracted_tools(
    project_id: int, since: datetime, until: datetime, *, runs: int = OFFENDING_RUNS
) -> list[dict]:
    """Tools called with no contract to check them against, most called first."""
    qs = _checks(project_id, since, until).filter(outcome=ContractCheck.Outcome.NO_CONTRACT)
    rows = (
        qs.values("tool_name")
        .annotate(calls=Count("id"), last_seen=Max("span_started_at"))
        .order_by("-calls", "tool_name")
    )
    return [
        {**row, "runs": _offending_runs(qs.filter(tool_name=row["tool_name"]), runs)}
        for row in rows
    ]


def contract_coverage(
    *, project_id: int, since: datetime, until: datetime
) -> dict[str, tuple[int, int]]:
    """{agent: (tool calls checked, of which under a contract)}: every outcome but
    `no_contract` is a call under a contract, violations included."""
    under = ~Q(outcome=ContractCheck.Outcome.NO_CONTRACT)
    rows = (
        _checks(project_id, since, until)
        .values("agent")
        .annotate(calls=Count("id"), contracted=Count("id", filter=under))
        .order_by("agent")
    )
    return {r["agent"]: (r["calls"], r["contracted"]) for r in rows}
