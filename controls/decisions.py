"""Policy decisions seen together: those the traces report and those the check API made.

**Where a decision comes from.**

* The check API (`POST /api/policy/check`): one `PolicyDecision` row per answer, with its
  decision, the policies that matched, the policy version and the server time.
* A gate span (step `policy`) of any convention:

  - `agentops.policy.decision` (`allow`, `deny`, `escalate`), `agentops.policy.name`,
    `agentops.policy.version` and `agentops.policy.decision_id` (the SDK records the
    decision, the first matching policy and the decision id after a check);
  - an OpenInference `GUARDRAIL` span and a Langfuse `guardrail` observation. Neither
    convention has an attribute for the outcome (OpenInference's guardrail
    instrumentation sets only the input and the status; Langfuse leaves the outcome to
    free-form output and metadata), so such a span reads as **deny** when it failed
    (status error; Langfuse level ERROR) and as **not reported** otherwise, unless it
    also carries `agentops.policy.decision`. Its policy is its span name.

* A tool span carrying `agentops.policy.decision_id` (and no decision): only as the link
  to an API decision.

**Counted once.** A span whose `agentops.policy.decision_id` is the decision id of one of
the project's API decisions is that decision, not another: it is counted once, with the
API's decision, policies, version and server time, and its source is `api+trace`. Several
spans naming one decision id are one decision. A decision's time is when the API made it
(API decisions) or when its span started (traced decisions); a report over [since, until)
counts the decisions whose time is in it, so a span started in the window whose decision
the API made after `until` is counted in the later window, never in both. A decision id
of another project is not a link: that span is a traced decision of its own.

**Per policy and version.** A decision counts in the row of each policy that matched
(an API decision matching two policies counts in two rows; the totals count it once).
API decisions that matched no policy (no active version, or no permit) are grouped in
the explicit row `policy = None`. Latency is the API's server time for a decision the API
made, else the gate span's duration; p50 and p95 are nearest-rank percentiles.

**Ungated side effects.** A call of a side-effecting tool (`side_effecting_tools`: the tool
span's `agentops.contract.name`, else its tool name) started in the window is *gated* when

* a gate span of the same run (step `policy`, whatever its convention) started at or
  before the call started, whenever that was (before the window too); a tool span on which
  an agent recorded a decision is itself such a span (it is stored with step `policy` and
  keeps its tool name, so it is still a call), or
* the call's span carries `agentops.policy.decision_id`.

Any decision counts, whatever it decided and whichever tool it named: a traced gate does
not say which call it was for. A decision recorded on an enclosing span (an agent that
sets `agentops.policy.*` on its run's span makes that span a gate; the SDK opens a
`policy {tool}` child span instead) counts from that span's start.
The other calls are *ungated*, listed per run. An API decision whose id the agent did not
record on a span is in no run, so it gates nothing.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict, namedtuple
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controls.checks import CONTRACT_NAME
from controls.idempotency import side_effecting_tools
from controls.models import PolicyDecision
from traces.conventions.langfuse import TYPE as LANGFUSE_TYPE
from traces.conventions.openinference import KIND as OPENINFERENCE_KIND
from traces.models import SpanStatus, Step, Trace
from traces.spanstore import span_store
from traces.spanstore.query import ARRIVAL

DECISION = "agentops.policy.decision"
POLICY_NAME = "agentops.policy.name"
POLICY_VERSION = "agentops.policy.version"
DECISION_ID = "agentops.policy.decision_id"

DECISIONS = tuple(str(d) for d in PolicyDecision.Decision.values)  # allow, deny, escalate
NOT_REPORTED = "not_reported"
OUTCOMES = (*DECISIONS, NOT_REPORTED)
# Sources: the API alone, the API and a span that records its id, or a convention's span.
API, API_TRACE = "api", "api+trace"
AGENTOPS, OPENINFERENCE, LANGFUSE = "agentops", "openinference", "langfuse"
SOURCES = (API, API_TRACE, AGENTOPS, OPENINFERENCE, LANGFUSE)
SOURCE_LABELS = {
    API: "check API",
    API_TRACE: "check API, on a span",
    AGENTOPS: "agentops.policy.* span",
    OPENINFERENCE: "OpenInference guardrail",
    LANGFUSE: "Langfuse guardrail",
}
UNGATED_RUNS = 100
CHUNK = 500
POLICY = str(Step.POLICY.value)
TOOL = str(Step.TOOL.value)
ERROR = str(SpanStatus.ERROR.value)

# The columns of one span row, the attributes extracted in the database (never the whole
# JSON document).
_COLUMNS = ("trace_id", "span_id", "name", "step", "status", "started_at", "duration_ms")
_COLUMNS += ("tool_name", "agent")
_KEYS = {
    "a_decision": DECISION,
    "a_policy": POLICY_NAME,
    "a_version": POLICY_VERSION,
    "a_decision_id": DECISION_ID,
    "a_oi_kind": OPENINFERENCE_KIND,
    "a_lf_type": LANGFUSE_TYPE,
    "a_contract": CONTRACT_NAME,
}


@dataclass
class Decision:
    """One decision, counted once."""

    source: str
    decision: str  # allow, deny, escalate or not_reported
    policies: tuple[str, ...]  # () for an API decision that matched no policy
    version: str  # "" when unknown
    latency_ms: float
    decision_id: str = ""
    trace_id: str = ""
    span_id: str = ""


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least q of the values at or
    below it (p50 of 1, 2, 3, 4 is 2). None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _uuid(value: Any) -> uuid.UUID | None:
    text = _text(value)
    if not text or len(text) > 64:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _chunks(items: list, size: int = CHUNK):
    for i in range(0, len(items), size):
        yield items[i : i + size]


_Row = namedtuple("_Row", (*_COLUMNS, *_KEYS))


def _window_spans(*, project_id: int, since: datetime, until: datetime, tools: set[str]):
    """One read of the window: its gate spans, the tool spans carrying a decision id, and
    the spans of the side-effecting tools (named by tool or by contract)."""
    gates = [
        {"equals": {"step": POLICY}},
        {"equals": {"step": TOOL}, "has_key": DECISION_ID},
    ]
    if tools:
        gates.append({"equals": {"step": TOOL, "tool_name": sorted(tools)}})
        gates.append({"equals": {"step": TOOL}, "has_key": CONTRACT_NAME})
    rows = span_store().select_spans(
        project_id,
        columns=_COLUMNS,
        started=(since, until),
        any_of=gates,
        keys=_KEYS,
        order=("started_at", ARRIVAL),
    )
    return [_Row(**row) for row in rows]


def _api_decision(public_id, decision, policy_ids, policy_version, latency_us) -> Decision:
    return Decision(
        source=API,
        decision=decision,
        policies=tuple(str(p) for p in policy_ids or ()),
        version="" if policy_version is None else str(policy_version),
        latency_ms=latency_us / 1000,
        decision_id=str(public_id),
    )


def _traced(row, decision_id: uuid.UUID | None) -> Decision:
    """The decision a gate span reports (see the module docstring)."""
    stated = _text(row.a_decision).lower()
    if stated not in DECISIONS:
        stated = "deny" if row.status == ERROR else NOT_REPORTED
    if _text(row.a_oi_kind) == "GUARDRAIL":
        source = OPENINFERENCE
    elif _text(row.a_lf_type) == "guardrail":
        source = LANGFUSE
    else:
        source = AGENTOPS
    return Decision(
        source=source,
        decision=stated,
        policies=(_text(row.a_policy) or row.name,),
        version=_text(row.a_version),
        latency_ms=row.duration_ms,
        decision_id=str(decision_id or ""),
        trace_id=row.trace_id,
        span_id=row.span_id,
    )


def _decisions(*, project_id: int, since: datetime, until: datetime, spans) -> list[Decision]:
    api_rows = PolicyDecision.objects.filter(
        project_id=project_id, created_at__gte=since, created_at__lt=until
    ).values_list("public_id", "decision", "policy_ids", "policy_version", "latency_us")
    by_id = {row[0]: _api_decision(*row) for row in api_rows}
    ids = [_uuid(row.a_decision_id) for row in spans]
    elsewhere = sorted({i for i in ids if i is not None and i not in by_id})
    # The API made these outside the window: they are counted in their own window.
    outside: set[uuid.UUID] = set()
    for chunk in _chunks(elsewhere):
        outside.update(
            PolicyDecision.objects.filter(project_id=project_id, public_id__in=chunk).values_list(
                "public_id", flat=True
            )
        )
    traced: list[Decision] = []
    seen: set[uuid.UUID] = set()
    for row, decision_id in zip(spans, ids, strict=True):
        if decision_id is not None:
            if decision_id in outside or decision_id in seen:
                continue
            api = by_id.get(decision_id)
            if api is not None:
                if api.source == API:  # the first span that records it links it
                    api.source, api.trace_id, api.span_id = API_TRACE, row.trace_id, row.span_id
                continue
        if row.step != POLICY:  # a tool span naming an id the API never gave (here)
            continue
        if decision_id is not None:
            seen.add(decision_id)
        traced.append(_traced(row, decision_id))
    return [*by_id.values(), *traced]


def policy_decisions(*, project_id: int, since: datetime, until: datetime) -> list[Decision]:
    """Every decision of the window from both sources, each counted once: the API's
    (newest first), then those only the traces report (oldest first)."""
    spans = _window_spans(project_id=project_id, since=since, until=until, tools=set())
    return _decisions(project_id=project_id, since=since, until=until, spans=spans)


@dataclass
class _Tally:
    decisions: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    sources: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def add(self, d: Decision) -> None:
        self.decisions += 1
        self.outcomes[d.decision] += 1
        self.sources[d.source] = self.sources.get(d.source, 0) + 1
        self.latencies.append(d.latency_ms)

    def as_dict(self) -> dict:
        n = self.decisions
        return {
            "decisions": n,
            **self.outcomes,
            **{f"{o}_rate": (self.outcomes[o] / n if n else None) for o in OUTCOMES},
            "latency_p50_ms": percentile(self.latencies, 0.5),
            "latency_p95_ms": percentile(self.latencies, 0.95),
            "sources": {s: self.sources[s] for s in SOURCES if s in self.sources},
        }


def decision_rates(decisions: list[Decision]) -> tuple[dict, list[dict]]:
    """(totals, rows per policy and version). Rows: most decisions first; each has
    `policy` (None: matched no policy), `policy_version` ("" when unknown), the count of
    each outcome and its rate over the row's decisions, latency p50/p95 in ms and the
    decisions per source."""
    total = _Tally()
    groups: dict[tuple[str | None, str], _Tally] = defaultdict(_Tally)
    for d in decisions:
        total.add(d)
        for policy in d.policies or (None,):
            groups[(policy, d.version)].add(d)
    rows = [
        {"policy": policy, "policy_version": version, **tally.as_dict()}
        for (policy, version), tally in groups.items()
    ]
    rows.sort(
        key=lambda r: (-r["decisions"], r["policy"] is None, r["policy"] or "", r["policy_version"])
    )
    return total.as_dict(), rows


def _ungated(
    *, project_id: int, since: datetime, spans, tools: set[str], runs: int
) -> dict[str, Any]:
    first_gate: dict[str, datetime] = {}
    calls = []
    for row in spans:
        if row.step == POLICY and row.trace_id not in first_gate:
            first_gate[row.trace_id] = row.started_at  # the rows are in start order
        if row.step == TOOL or (row.step == POLICY and row.tool_name):
            tool = _text(row.a_contract) or row.tool_name
            if tool in tools:
                calls.append((row, tool))
    candidates = [
        (row, tool)
        for row, tool in calls
        if not _text(row.a_decision_id)
        and not (row.trace_id in first_gate and first_gate[row.trace_id] <= row.started_at)
    ]
    # A run's gate may have started before the window: one look back, for these runs only.
    earlier: set[str] = set()
    for chunk in _chunks(sorted({row.trace_id for row, _ in candidates})):
        earlier.update(
            row["trace_id"]
            for row in span_store().select_spans(
                project_id,
                columns=["trace_id"],
                trace_ids=chunk,
                equals={"step": POLICY},
                started=(None, since),
                order=[],
            )
        )
    ungated: dict[str, list] = defaultdict(list)
    for row, tool in candidates:
        if row.trace_id not in earlier:
            ungated[row.trace_id].append((row, tool))
    listed = sorted(ungated.items(), key=lambda kv: (kv[1][-1][0].started_at, kv[0]), reverse=True)
    listed = listed[:runs]
    unnamed = [t for t, cs in listed if not any(row.agent for row, _ in cs)]
    run_agents = dict(
        Trace.objects.filter(project_id=project_id, trace_id__in=unnamed).values_list(
            "trace_id", "agent"
        )
        if unnamed
        else []
    )
    return {
        "side_effect_calls": len(calls),
        "ungated_calls": sum(len(cs) for cs in ungated.values()),
        "ungated_runs": len(ungated),
        "runs": [
            {
                "trace_id": trace_id,
                "agent": next((row.agent for row, _ in cs if row.agent), "")
                or run_agents.get(trace_id, ""),
                "tools": list(dict.fromkeys(tool for _, tool in cs)),
                "calls": [
                    {"span_id": row.span_id, "tool": tool, "started_at": row.started_at}
                    for row, tool in cs
                ],
                "last_at": cs[-1][0].started_at,
            }
            for trace_id, cs in listed
        ],
    }


def ungated_side_effects(
    *, project_id: int, since: datetime, until: datetime, runs: int = UNGATED_RUNS
) -> dict[str, Any]:
    """Side-effecting tool calls started in the window with no decision before them (see
    the module docstring), per run, latest first (at most `runs` runs listed).

    {"side_effect_calls", "ungated_calls", "ungated_runs", "runs": [{"trace_id", "agent",
    "tools", "calls": [{"span_id", "tool", "started_at"}], "last_at"}]}"""
    tools = side_effecting_tools(project_id=project_id)
    spans = _window_spans(project_id=project_id, since=since, until=until, tools=tools)
    return _ungated(project_id=project_id, since=since, spans=spans, tools=tools, runs=runs)


def policy_decision_report(
    *, project_id: int, since: datetime, until: datetime, runs: int = UNGATED_RUNS
) -> dict[str, Any]:
    """What the Controls page and `/api/controls/decisions/` show: the totals, the rates per
    policy and version, and the ungated side effects. One read of the window's spans."""
    tools = side_effecting_tools(project_id=project_id)
    spans = _window_spans(project_id=project_id, since=since, until=until, tools=tools)
    totals, by_policy = decision_rates(
        _decisions(project_id=project_id, since=since, until=until, spans=spans)
    )
    return {
        "totals": totals,
        "by_policy": by_policy,
        "ungated": _ungated(
            project_id=project_id, since=since, spans=spans, tools=tools, runs=runs
        ),
    }
