"""Contract checks: every tool span is checked once against the project's contract registry.

Runs off the ingest path (a Celery task every 30 s, or `manage.py check_contracts`). The
spans to check are read through the span store (`select_spans`, either store) without
the spans that already have a check (project, trace_id, span_id, start: the span's key):
an anti-join on the relational store, bounded by the earliest candidate's start so that
PostgreSQL reads only those days of the partitioned checks, a look-up of the candidates
on ClickHouse; not by a watermark on the
arrival order, because a slow ingest transaction can commit a lower id after a higher
one, and a watermark would skip it for good. Checks are inserted
with ON CONFLICT DO NOTHING, so a re-run or two workers racing on the same spans count
each span once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from controls.models import ContractCheck, ToolContract
from controls.services import json_pointer
from traces.models import Span, Step, Trace
from traces.spanstore import projects_scope, span_page, span_store
from traces.spanstore.query import ARRIVAL

CONTRACT_NAME = "agentops.contract.name"
CONTRACT_VERSION = "agentops.contract.version"
IDEMPOTENCY_KEY = "agentops.idempotency_key"

CHUNK = 500
Outcome = ContractCheck.Outcome


@dataclass
class Verdict:
    outcome: str
    contract: ToolContract | None = None
    pointer: str = ""
    message: str = ""


class _Registry:
    """The contracts and compiled validators one run needs, read once per tool name.

    Kept for one run only: a contract version may be updated in place
    (`contracts apply`), so a longer-lived cache could validate against stale schemas."""

    def __init__(self) -> None:
        self._by_name: dict[tuple[int, str], list[ToolContract]] = {}
        self._validators: dict[int, tuple[Draft202012Validator, Draft202012Validator]] = {}

    def versions(self, project_id: int, name: str) -> list[ToolContract]:
        key = (project_id, name)
        if key not in self._by_name:
            self._by_name[key] = list(
                ToolContract.objects.filter(project_id=project_id, name=name).order_by(
                    "-created_at", "-id"
                )
            )
        return self._by_name[key]

    def validators(self, contract: ToolContract) -> tuple[Draft202012Validator, ...]:
        if contract.pk not in self._validators:
            self._validators[contract.pk] = (
                Draft202012Validator(contract.arguments_schema),
                Draft202012Validator(contract.result_schema),
            )
        return self._validators[contract.pk]


def _first_error(validator: Draft202012Validator, doc: Any) -> tuple[str, str] | None:
    error = best_match(validator.iter_errors(doc))
    if error is None:
        return None
    return json_pointer(error.absolute_path), error.message


def _document(text: str) -> tuple[Any, str | None]:
    """The JSON value of a recorded argument or result text, or the parse error."""
    try:
        return json.loads(text), None
    except ValueError as exc:
        return None, f"Not valid JSON: {exc}"


def span_verdict(span: Span, registry: _Registry) -> Verdict:
    """The outcome of one tool span. Arguments or a result the span did not record are not
    checked (nothing to validate); everything recorded is."""
    attrs = span.attributes or {}
    name = str(attrs.get(CONTRACT_NAME) or span.tool_name)
    version = attrs.get(CONTRACT_VERSION)
    versions = registry.versions(span.project_id, name)
    if not versions:
        return Verdict(Outcome.NO_CONTRACT, message=f"No contract registered for {name!r}.")
    if version not in (None, ""):
        contract = next((c for c in versions if c.version == str(version)), None)
        if contract is None:
            return Verdict(
                Outcome.UNKNOWN_VERSION,
                message=f"{name} has no registered version {version!r}.",
            )
    else:
        contract = next((c for c in versions if c.status == ToolContract.Status.ACTIVE), None)
        if contract is None:
            return Verdict(Outcome.NO_CONTRACT, message=f"{name} has no active version.")

    args_validator, result_validator = registry.validators(contract)
    for outcome, text, validator in (
        (Outcome.ARGUMENTS_INVALID, span.tool_arguments, args_validator),
        (Outcome.RESULT_INVALID, span.tool_result, result_validator),
    ):
        if not text:
            continue
        doc, parse_error = _document(text)
        if parse_error:
            return Verdict(outcome, contract, "", parse_error)
        if error := _first_error(validator, doc):
            return Verdict(outcome, contract, *error)
    if contract.requires_idempotency_key and not attrs.get(IDEMPOTENCY_KEY):
        return Verdict(
            Outcome.IDEMPOTENCY_KEY_MISSING,
            contract,
            message=f"{name} {contract.version} requires {IDEMPOTENCY_KEY} on the span.",
        )
    return Verdict(Outcome.OK, contract)


def verdict_name(span: Span) -> str:
    return str((span.attributes or {}).get(CONTRACT_NAME) or "")


_COLUMNS = (
    "project_id",
    "trace_id",
    "span_id",
    "tool_name",
    "tool_arguments",
    "tool_result",
    "attributes",
    "agent",
    "agent_version",
    "started_at",
)


def _pending(
    *, project_id: int | None, since: datetime | None, after: Any, chunk: int
) -> tuple[list[Span], Any]:
    """The next `chunk` tool spans without a check, in the order they were stored, and
    the cursor past them. Through the span store: on the relational store one query (the
    anti-join on the check's key, paged by id, as before the seam)."""
    store = span_store()
    rows = store.select_spans(
        projects_scope(project_id, store),
        columns=_COLUMNS,
        equals={"step": Step.TOOL},
        received=(since, None),
        absent_from=ContractCheck.objects.all(),
        order=ARRIVAL,
        after=after,
        limit=chunk,
    )
    return span_page(rows, after)


def _trace_agents(spans: list[Span]) -> dict[tuple[int, str], tuple[str, str]]:
    """The run's agent for tool spans that do not name one themselves."""
    wanted = {(s.project_id, s.trace_id) for s in spans if not s.agent}
    if not wanted:
        return {}
    rows = Trace.objects.filter(
        project_id__in={p for p, _ in wanted}, trace_id__in={t for _, t in wanted}
    ).values_list("project_id", "trace_id", "agent", "agent_version")
    return {(p, t): (a, v) for p, t, a, v in rows if (p, t) in wanted}


def contract_checks_run(
    *, project_id: int | None = None, since: datetime | None = None, chunk: int = CHUNK
) -> int:
    """Check every tool span that has no check yet; returns how many spans were examined.

    `since` limits the scan to spans received from then on (None: all of them)."""
    registry = _Registry()
    examined = 0
    after = None
    while True:
        spans, after = _pending(project_id=project_id, since=since, after=after, chunk=chunk)
        if not spans:
            return examined
        agents = _trace_agents(spans)
        rows = []
        for span in spans:
            verdict = span_verdict(span, registry)
            agent, agent_version = span.agent, span.agent_version
            if not agent:
                agent, agent_version = agents.get((span.project_id, span.trace_id), ("", ""))
            detail = {}
            if verdict.message:
                detail = {"pointer": verdict.pointer, "message": verdict.message}
            rows.append(
                ContractCheck(
                    project_id=span.project_id,
                    trace_id=span.trace_id,
                    span_id=span.span_id,
                    tool_name=span.tool_name or verdict_name(span),
                    contract=verdict.contract,
                    contract_version=verdict.contract.version if verdict.contract else "",
                    agent=agent,
                    agent_version=agent_version,
                    outcome=verdict.outcome,
                    detail=detail,
                    span_started_at=span.started_at,
                )
            )
        ContractCheck.objects.bulk_create(rows, ignore_conflicts=True)
        examined += len(spans)
