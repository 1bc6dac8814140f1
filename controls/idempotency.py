"""Idempotency and retries: reads over the spans an agent already sends.

A call is side-effecting when the latest active contract of its tool says `side_effects`;
a tool with no active contract is not treated as side-effecting (it is listed among the
uncontracted tools of the contract checks instead). The tool of a span is the contract it
names (`agentops.contract.name`), else its tool name, as in the contract checks.

The idempotency key of a side-effecting call is its `agentops.idempotency_key`, else
`derived_key`: the SHA-256 of the trace id, the tool name and the canonical JSON of the
arguments, so a derived key never matches across runs.

Every selector takes a project and a window (spans started in [since, until)) and returns
plain rows carrying the trace ids and span ids to link to.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from django.conf import settings

from controls.checks import CONTRACT_NAME, IDEMPOTENCY_KEY
from controls.models import ToolContract
from traces.models import Span, SpanStatus, Step, Trace
from traces.spanstore import span_store
from traces.spanstore.query import ARRIVAL

RETRY_ATTEMPT = "agentops.retry.attempt"
_FIELDS = (
    "trace_id",
    "span_id",
    "name",
    "step",
    "status",
    "tool_name",
    "tool_arguments",
    "attributes",
    "agent",
    "started_at",
    "cost_usd",
)


def canonical_arguments(text: str) -> str:
    """The arguments as JSON with sorted keys and no whitespace; text that is not JSON
    is kept as it is, so two identical texts still compare equal."""
    try:
        doc = json.loads(text)
    except ValueError:
        return text
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def derived_key(*, trace_id: str, tool: str, arguments: str) -> str:
    """sha256("<trace id>\\n<tool>\\n<canonical arguments>"), hex."""
    text = f"{trace_id}\n{tool}\n{canonical_arguments(arguments)}"
    return hashlib.sha256(text.encode()).hexdigest()


def retry_attempt(span: Span) -> int | None:
    """The span's `agentops.retry.attempt` (0 for the first try), None when absent or not
    a whole number."""
    value = (span.attributes or {}).get(RETRY_ATTEMPT)
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def side_effecting_tools(*, project_id: int) -> set[str]:
    """Tool names whose latest active contract declares side effects."""
    latest: dict[str, bool] = {}
    rows = (
        ToolContract.objects.filter(project_id=project_id, status=ToolContract.Status.ACTIVE)
        .order_by("-created_at", "-id")
        .values_list("name", "side_effects")
    )
    for name, side_effects in rows:
        latest.setdefault(name, side_effects)
    return {name for name, side_effects in latest.items() if side_effects}


@dataclass(frozen=True)
class Call:
    trace_id: str
    span_id: str
    tool: str
    arguments: str
    key: str
    explicit_key: bool
    succeeded: bool
    started_at: datetime

    def link(self) -> dict:
        return {"trace_id": self.trace_id, "span_id": self.span_id, "started_at": self.started_at}


def _tool(span: Span) -> str:
    return str((span.attributes or {}).get(CONTRACT_NAME) or span.tool_name)


def _call(span: Span) -> Call:
    explicit = str((span.attributes or {}).get(IDEMPOTENCY_KEY) or "")
    tool = _tool(span)
    arguments = canonical_arguments(span.tool_arguments)
    return Call(
        trace_id=span.trace_id,
        span_id=span.span_id,
        tool=tool,
        arguments=arguments,
        key=explicit
        or derived_key(trace_id=span.trace_id, tool=tool, arguments=span.tool_arguments),
        explicit_key=bool(explicit),
        succeeded=span.status != SpanStatus.ERROR,
        started_at=span.started_at,
    )


def _spans(
    project_id: int,
    since: datetime,
    until: datetime,
    *,
    equals: dict | None = None,
    any_of: list[dict] | None = None,
) -> list[Span]:
    """The window's spans that match, oldest first (ties in the order they were stored),
    read through the span store, as unsaved Span objects."""
    rows = span_store().select_spans(
        project_id,
        columns=_FIELDS,
        started=(since, until),
        equals=equals,
        any_of=any_of,
        order=("started_at", ARRIVAL),
    )
    return [Span(**row) for row in rows]


def side_effect_calls(*, project_id: int, since: datetime, until: datetime) -> list[Call]:
    """The side-effecting tool calls started in the window, oldest first."""
    tools = side_effecting_tools(project_id=project_id)
    if not tools:
        return []
    named = [{"equals": {"tool_name": sorted(tools)}}, {"has_key": CONTRACT_NAME}]
    spans = _spans(project_id, since, until, equals={"step": Step.TOOL}, any_of=named)
    return [_call(s) for s in spans if _tool(s) in tools]


def duplicate_side_effects(
    *, project_id: int, since: datetime, until: datetime, window_hours: int | None = None
) -> list[dict]:
    """Keys executed successfully more than once, each execution within `window_hours`
    (default `IDEMPOTENCY_WINDOW_HOURS`) of the previous one, within a run or across runs.

    Earlier executions up to `window_hours` before `since` are read too, so a duplicate of
    a call made just before the window is found; a row is listed when one of its executions
    started inside the window. Failed executions are not side effects and never count."""
    hours = settings.IDEMPOTENCY_WINDOW_HOURS if window_hours is None else window_hours
    window = timedelta(hours=hours)
    calls = side_effect_calls(project_id=project_id, since=since - window, until=until)
    by_key: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        if call.succeeded:
            by_key[call.key].append(call)
    rows = []
    for key, executions in by_key.items():
        duplicated: list[Call] = []
        for earlier, later in pairwise(executions):
            if later.started_at - earlier.started_at <= window:
                if not duplicated or duplicated[-1] is not earlier:
                    duplicated.append(earlier)
                duplicated.append(later)
        if not any(c.started_at >= since for c in duplicated):
            continue
        rows.append(
            {
                "key": key,
                "key_source": "explicit" if duplicated[0].explicit_key else "derived",
                "tool": duplicated[0].tool,
                "executions": len(duplicated),
                "runs": list(dict.fromkeys(c.trace_id for c in duplicated)),
                "spans": [c.link() for c in duplicated],
                "last_at": duplicated[-1].started_at,
            }
        )
    rows.sort(key=lambda r: (-r["executions"], r["tool"], r["key"]))
    return rows


def unkeyed_retries(*, project_id: int, since: datetime, until: datetime) -> list[dict]:
    """Side-effecting calls made two or more times in one run with the same tool and
    arguments and no `agentops.idempotency_key`, failed attempts included."""
    groups: dict[tuple[str, str, str], list[Call]] = defaultdict(list)
    for call in side_effect_calls(project_id=project_id, since=since, until=until):
        if not call.explicit_key:
            groups[(call.trace_id, call.tool, call.arguments)].append(call)
    rows = [
        {
            "trace_id": trace_id,
            "tool": tool,
            "arguments": arguments,
            "attempts": len(calls),
            "succeeded": sum(c.succeeded for c in calls),
            "spans": [c.link() for c in calls],
        }
        for (trace_id, tool, arguments), calls in groups.items()
        if len(calls) >= 2
    ]
    rows.sort(key=lambda r: (-r["attempts"], r["tool"], r["trace_id"]))
    return rows


def retry_storms(
    *, project_id: int, since: datetime, until: datetime, attempts: int | None = None
) -> list[dict]:
    """Calls attempted more than `attempts` times (default `RETRY_STORM_ATTEMPTS`) in one run.

    A tool call is the same call when its tool and canonical arguments are; any other span
    carrying `agentops.retry.attempt` is the same call as the others of its run with the
    same step and name. The attempts of a call are its spans, or the highest attempt number
    plus one when that is more (earlier attempts may not have been sent)."""
    limit = settings.RETRY_STORM_ATTEMPTS if attempts is None else attempts
    spans = _spans(
        project_id,
        since,
        until,
        any_of=[{"equals": {"step": Step.TOOL}}, {"has_key": RETRY_ATTEMPT}],
    )
    groups: dict[tuple[str, str, str, str], list[Span]] = defaultdict(list)
    for span in spans:
        if span.step == Step.TOOL:
            call = (span.trace_id, Step.TOOL, _tool(span), canonical_arguments(span.tool_arguments))
        elif retry_attempt(span) is not None:
            call = (span.trace_id, span.step, span.name, "")
        else:
            continue
        groups[call].append(span)
    rows = []
    for (trace_id, step, name, arguments), members in groups.items():
        numbers = [n for n in map(retry_attempt, members) if n is not None]
        count = max(len(members), max(numbers, default=-1) + 1)
        if count <= limit:
            continue
        rows.append(
            {
                "trace_id": trace_id,
                "step": step,
                "call": name,
                "arguments": arguments,
                "attempts": count,
                "failed": sum(s.status == SpanStatus.ERROR for s in members),
                "spans": [
                    {"trace_id": s.trace_id, "span_id": s.span_id, "started_at": s.started_at}
                    for s in members
                ],
            }
        )
    rows.sort(key=lambda r: (-r["attempts"], r["call"], r["trace_id"]))
    return rows


def retried_model_cost(*, project_id: int, since: datetime, until: datetime) -> list[dict]:
    """Model calls with `agentops.retry.attempt` ≥ 1 (retries, not first tries): their
    count and summed cost per agent, costliest first. A span that names no agent takes
    its run's."""
    spans = [
        s
        for s in _spans(
            project_id,
            since,
            until,
            equals={"step": Step.LLM},
            any_of=[{"has_key": RETRY_ATTEMPT}],
        )
        if (retry_attempt(s) or 0) >= 1
    ]
    unnamed = {s.trace_id for s in spans if not s.agent}
    run_agents = dict(
        Trace.objects.filter(project_id=project_id, trace_id__in=unnamed).values_list(
            "trace_id", "agent"
        )
        if unnamed
        else []
    )
    per_agent: dict[str, dict] = {}
    for span in spans:
        agent = span.agent or run_agents.get(span.trace_id, "")
        row = per_agent.setdefault(
            agent, {"agent": agent, "retried_calls": 0, "cost_usd": Decimal(0), "runs": []}
        )
        row["retried_calls"] += 1
        row["cost_usd"] += span.cost_usd or Decimal(0)
        if span.trace_id not in row["runs"]:
            row["runs"].append(span.trace_id)
    return sorted(per_agent.values(), key=lambda r: (-r["cost_usd"], r["agent"]))
