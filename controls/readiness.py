"""Production readiness: for each agent of a project over a window, the seven controls and
the four anti-patterns as a checklist, each item with its evidence (numerator, denominator,
percentage) and a link.

Every figure is read through the selector that owns its fact, never computed a second time:

* tool calls under a contract: the contract checks (`controls.selectors.contract_coverage`);
* side-effecting calls and their keys: `controls.idempotency.side_effect_calls`;
* calls no policy decision preceded: `controls.decisions.ungated_side_effects`;
* decisions with an outcome: `DecisionRecord`, with a person's action or an `Outcome` of its
  run (`decision_outcome_counts`);
* complete runs: the run's root received (its status is not *incomplete*) and a storyline to
  tell (at least one model or tool call, the steps the storyline is built from);
* escalation: a `ReviewRule` for the agent or for any agent, and the resolved review items
  resolved by their `sla_due_at`;
* a budget envelope covering the agent: `budgets` is not importable from `controls`, so the
  budgets fact comes through `readiness_budget_provider`, registered by `console` (the app
  that composes the others) in `ConsoleConfig.ready`.

The agent of a tool call is the one its contract check names (the span's agent, else its
run's), else its run's; the agent of a model call is the span's, else its run's.

A percentage item is met when every counted call or run passes; a window with nothing to
count meets the call items (nothing ran ungoverned) but not "decisions recorded" nor
"complete traces" (no evidence). An anti-pattern item is met when the anti-pattern is absent.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from django.db.models import Count, Q
from django.urls import reverse

from controls.decisions import ungated_side_effects
from controls.idempotency import side_effect_calls
from controls.models import ContractCheck, DecisionRecord, ReviewItem, ReviewRule
from controls.selectors import contract_coverage
from rollouts.selectors import kpi_declared_names, version_order
from traces.models import Outcome, Project, Step, Trace, TraceStatus
from traces.spanstore import span_store

CONTROL, ANTI_PATTERN = "control", "anti_pattern"
# Item keys, in the order shown; PromotionCriteria.require_readiness names some of them.
ITEMS = {
    "contracts": "Tool calls under a contract",
    "idempotency": "Side-effecting calls with an idempotency key",
    "policy_gate": "Side-effecting calls preceded by a policy decision",
    "decision_outcomes": "Decisions recorded with outcomes",
    "complete_traces": "Complete traces (root and storyline)",
    "escalation": "Escalation configured and its SLA met",
    "budget": "A budget envelope covers the agent",
    "no_rollback": "Anti-pattern: no rollback",
    "unversioned_prompts": "Anti-pattern: unversioned prompts",
    "policy_in_reasoning": "Anti-pattern: policy mixed into reasoning",
    "only_model_quality": "Anti-pattern: only model quality measured",
}
ANTI_PATTERNS = ("no_rollback", "unversioned_prompts", "policy_in_reasoning", "only_model_quality")
MAX_DAYS = 90
CHUNK = 500
ALL_RUNS = 10**9  # list every ungated run: the per-agent split needs them all


@dataclass(frozen=True)
class ReadinessItem:
    key: str
    met: bool
    evidence: str
    numerator: int | None = None
    denominator: int | None = None
    url: str = ""

    @property
    def label(self) -> str:
        return ITEMS[self.key]

    @property
    def kind(self) -> str:
        return ANTI_PATTERN if self.key in ANTI_PATTERNS else CONTROL

    @property
    def percent(self) -> float | None:
        if not self.denominator or self.numerator is None:
            return None
        return round(100.0 * self.numerator / self.denominator, 1)

    def as_dict(self) -> dict:
        return {**asdict(self), "label": self.label, "kind": self.kind, "percent": self.percent}


# ------------------------------------------------------------------ the budgets extension

BudgetProvider = Callable[..., dict[str, list[str]]]
_budget_providers: list[BudgetProvider] = []


def readiness_budget_provider(provider: BudgetProvider) -> BudgetProvider:
    """Register `provider(project_id=..., agents=[...])` → {agent: [names of the enabled
    envelopes covering it]}. Registered by `console` (which may import `budgets`);
    idempotent."""
    if provider not in _budget_providers:
        _budget_providers.append(provider)
    return provider


def _budgets(project_id: int, agents: list[str]) -> dict[str, list[str]] | None:
    if not _budget_providers:
        return None
    out: dict[str, list[str]] = defaultdict(list)
    for provider in _budget_providers:
        for agent, names in provider(project_id=project_id, agents=agents).items():
            out[agent].extend(names)
    return out


# ------------------------------------------------------------------ windows and links


def readiness_window(*, days: int, today: date) -> tuple[datetime, datetime]:
    """`days` UTC days ending with `today`, as [since, until): the Agents page's window."""
    until = datetime.combine(today + timedelta(days=1), time(), tzinfo=UTC)
    return until - timedelta(days=days), until


def _url(name: str, project: Project, **params) -> str:
    return f"{reverse(name)}?" + urlencode({"project": project.slug, **params})


def _hours(since: datetime, until: datetime) -> str:
    # The Controls page's windows, the smallest that covers this one.
    hours = (until - since).total_seconds() / 3600
    return str(next((h for h in (24, 168, 720) if hours <= h), 720))


# ------------------------------------------------------------------ facts per agent


def _run_agents(project_id: int, trace_ids: Iterable[str]) -> dict[str, str]:
    ids = sorted(set(trace_ids))
    out: dict[str, str] = {}
    for i in range(0, len(ids), CHUNK):
        out.update(
            Trace.objects.filter(project_id=project_id, trace_id__in=ids[i : i + CHUNK])
            .values_list("trace_id", "agent")
            .iterator()
        )
    return out


def _tool_call_agents(
    project_id: int, since: datetime, until: datetime, calls: list[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """(trace_id, span_id) → agent: its contract check's, else its run's."""
    checked = {
        (t, s): a
        for t, s, a in ContractCheck.objects.filter(
            project_id=project_id, span_started_at__gte=since, span_started_at__lt=until
        ).values_list("trace_id", "span_id", "agent")
    }
    missing = [t for t, s in calls if not checked.get((t, s))]
    runs = _run_agents(project_id, missing) if missing else {}
    return {(t, s): checked.get((t, s)) or runs.get(t, "") for t, s in calls}


def decision_outcome_counts(
    *, project_id: int, since: datetime, until: datetime
) -> dict[str, tuple[int, int]]:
    """{agent: (decisions recorded, of which with an outcome)}: a person's action
    (`human_action`) or an `Outcome` of the decision's run."""
    rows = list(
        DecisionRecord.objects.filter(
            project_id=project_id, decided_at__gte=since, decided_at__lt=until
        ).values_list("agent", "trace_id", "human_action")
    )
    traces = sorted({t for _a, t, _h in rows})
    with_outcome: set[str] = set()
    for i in range(0, len(traces), CHUNK):
        with_outcome.update(
            Outcome.objects.filter(project_id=project_id, trace_id__in=traces[i : i + CHUNK])
            .values_list("trace_id", flat=True)
            .distinct()
        )
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for agent, trace_id, human in rows:
        out[agent][0] += 1
        out[agent][1] += bool(human) or trace_id in with_outcome
    return {a: (n, k) for a, (n, k) in out.items()}


def _complete_runs(project_id: int, since: datetime, until: datetime) -> dict[str, tuple[int, int]]:
    told = Q(llm_call_count__gt=0) | Q(tool_call_count__gt=0)
    rows = (
        Trace.objects.filter(project_id=project_id, started_at__gte=since, started_at__lt=until)
        .values("agent")
        .annotate(
            runs=Count("id"),
            complete=Count("id", filter=~Q(status=TraceStatus.INCOMPLETE) & told),
        )
        .order_by("agent")
    )
    return {r["agent"]: (r["runs"], r["complete"]) for r in rows}


def _model_calls(project_id: int, since: datetime, until: datetime) -> dict[str, tuple[int, int]]:
    """{agent: (model calls, of which naming a prompt version)}."""
    store = span_store()
    llm = {"project_id": project_id, "started": (since, until), "counted": "prompt_version"}
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    named = store.count_spans(**llm, group="agent", equals={"step": Step.LLM}, nonempty=["agent"])
    for agent, (n, v) in named.items():
        out[agent][0] += n
        out[agent][1] += v
    unnamed = [
        {"trace_id": trace_id, "n": n, "v": v}
        for trace_id, (n, v) in store.count_spans(
            **llm, group="trace_id", equals={"step": Step.LLM, "agent": ""}
        ).items()
    ]
    runs = _run_agents(project_id, (r["trace_id"] for r in unnamed))
    for r in unnamed:
        agent = runs.get(r["trace_id"], "")
        out[agent][0] += r["n"]
        out[agent][1] += r["v"]
    return {a: (n, v) for a, (n, v) in out.items()}


def _kpis_received(project_id: int, since: datetime, until: datetime) -> Counter:
    """Runs per agent in the window with at least one KPI value."""
    traces = Trace.objects.filter(
        project_id=project_id, started_at__gte=since, started_at__lt=until
    ).values("trace_id")
    with_kpi = (
        Outcome.objects.filter(project_id=project_id, kind=Outcome.Kind.KPI, trace_id__in=traces)
        .values_list("trace_id", flat=True)
        .distinct()
    )
    agents = Trace.objects.filter(project_id=project_id, trace_id__in=with_kpi).values_list(
        "agent", flat=True
    )
    return Counter(agents)


def _agents_in(project_id: int, since: datetime, until: datetime) -> list[str]:
    return sorted(
        Trace.objects.filter(project_id=project_id, started_at__gte=since, started_at__lt=until)
        .exclude(agent="")
        .values_list("agent", flat=True)
        .distinct()
    )


def _share(n: int, d: int, what: str) -> str:
    return f"{n:,} of {d:,} {what} ({100.0 * n / d:.1f} %)"


# ------------------------------------------------------------------ the checklist


def agent_readiness(
    *, project: Project, since: datetime, until: datetime, agents: list[str] | None = None
) -> dict[str, list[ReadinessItem]]:
    """{agent: [ReadinessItem, … in `ITEMS` order]} for `agents` (default: those with runs
    in [since, until)). Reads each fact once for the whole project, then splits by agent."""
    pid = project.pk
    if agents is None:
        agents = _agents_in(pid, since, until)
    if not agents:
        return {}
    coverage = contract_coverage(project_id=pid, since=since, until=until)
    calls = side_effect_calls(project_id=pid, since=since, until=until)
    ungated = ungated_side_effects(project_id=pid, since=since, until=until, runs=ALL_RUNS)
    ungated_keys = [(r["trace_id"], c["span_id"]) for r in ungated["runs"] for c in r["calls"]]
    who = _tool_call_agents(
        pid, since, until, [(c.trace_id, c.span_id) for c in calls] + ungated_keys
    )
    side: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # calls, keyed
    for c in calls:
        row = side[who[(c.trace_id, c.span_id)]]
        row[0] += 1
        row[1] += c.explicit_key
    ungated_by = Counter(who[k] for k in ungated_keys)
    decisions = decision_outcome_counts(project_id=pid, since=since, until=until)
    runs = _complete_runs(pid, since, until)
    rules = set(ReviewRule.objects.filter(project_id=pid).values_list("agent", flat=True))
    sla: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # resolved with an SLA, in time
    for agent, resolved_at, due in ReviewItem.objects.filter(
        project_id=pid,
        status=ReviewItem.Status.RESOLVED,
        resolved_at__gte=since,
        resolved_at__lt=until,
        sla_due_at__isnull=False,
    ).values_list("agent", "resolved_at", "sla_due_at"):
        sla[agent][0] += 1
        sla[agent][1] += resolved_at <= due
    budgets = _budgets(pid, agents)
    versions = version_order(project_id=pid)
    models = _model_calls(pid, since, until)
    kpis = kpi_declared_names(project_id=pid)
    kpi_runs = _kpis_received(pid, since, until)

    hours = _hours(since, until)
    controls_url = _url("controls", project, hours=hours)
    out = {}
    for agent in agents:
        traces_url = _url("trace-list", project, agent=agent)
        items = []
        n, k = coverage.get(agent, (0, 0))
        items.append(
            ReadinessItem(
                "contracts",
                k == n,
                _share(k, n, "tool calls checked against a contract")
                if n
                else "no tool calls in the window",
                k,
                n,
                controls_url + "#contracts",
            )
        )
        n, k = side.get(agent, (0, 0))
        items.append(
            ReadinessItem(
                "idempotency",
                k == n,
                _share(k, n, "side-effecting calls carry agentops.idempotency_key")
                if n
                else "no side-effecting calls in the window",
                k,
                n,
                controls_url + "#findings",
            )
        )
        bad = min(ungated_by.get(agent, 0), n)
        items.append(
            ReadinessItem(
                "policy_gate",
                bad == 0,
                _share(n - bad, n, "side-effecting calls had a policy decision before them")
                if n
                else "no side-effecting calls in the window",
                n - bad,
                n,
                controls_url + "#decisions",
            )
        )
        n, k = decisions.get(agent, (0, 0))
        items.append(
            ReadinessItem(
                "decision_outcomes",
                bool(n) and k == n,
                _share(k, n, "recorded decisions joined to an outcome")
                if n
                else "no decision recorded (agentops.decision.*) in the window",
                k,
                n,
                controls_url,
            )
        )
        n, k = runs.get(agent, (0, 0))
        items.append(
            ReadinessItem(
                "complete_traces",
                bool(n) and k == n,
                _share(k, n, "runs with their root and a storyline") if n else "no runs",
                k,
                n,
                traces_url,
            )
        )
        configured = agent in rules or "" in rules
        n, k = sla.get(agent, (0, 0))
        if not configured:
            evidence = "no review rule for this agent or for any agent"
        elif n:
            evidence = _share(k, n, "resolved review items met their SLA")
        else:
            evidence = "review rule set; no review item with an SLA resolved in the window"
        items.append(
            ReadinessItem(
                "escalation",
                configured and k == n,
                evidence,
                k if configured else None,
                n if configured else None,
                controls_url,
            )
        )
        if budgets is None:
            items.append(ReadinessItem("budget", False, "budgets are not installed"))
        else:
            names = budgets.get(agent, [])
            items.append(
                ReadinessItem(
                    "budget",
                    bool(names),
                    ("covered by " + ", ".join(sorted(names))) if names else "no enabled envelope",
                    len(names),
                    None,
                    _url("budget-list", project),
                )
            )
        seen = versions.get(agent, [])
        items.append(
            ReadinessItem(
                "no_rollback",
                len(seen) >= 2,
                f"versions seen: {', '.join(seen)}; can return to {seen[-2]}"
                if len(seen) >= 2
                else (
                    f"only version {seen[0]} seen: nothing to return to"
                    if seen
                    else "no agent version reported: nothing to return to"
                ),
                len(seen),
                None,
                _url("agent-compare", project, agent=agent),
            )
        )
        n, v = models.get(agent, (0, 0))
        items.append(
            ReadinessItem(
                "unversioned_prompts",
                v == n,
                _share(n - v, n, "model calls name no prompt version")
                if n
                else "no model calls in the window",
                n - v,
                n,
                traces_url,
            )
        )
        bad = ungated_by.get(agent, 0)
        items.append(
            ReadinessItem(
                "policy_in_reasoning",
                bad == 0,
                f"{bad:,} side-effecting call{'s' if bad != 1 else ''} ran with no policy step"
                if bad
                else "every side-effecting call had a policy step",
                bad,
                None,
                controls_url + "#decisions",
            )
        )
        received = kpi_runs.get(agent, 0)
        items.append(
            ReadinessItem(
                "only_model_quality",
                bool(kpis) or bool(received),
                (f"KPIs declared: {', '.join(kpis)}" if kpis else "no KPI declared")
                + f"; {received:,} run{'s' if received != 1 else ''} with a KPI value",
                received,
                None,
                _url("kpis", project, agent=agent),
            )
        )
        out[agent] = items
    return out


def readiness_unmet(items: Iterable[ReadinessItem], keys: Iterable[str]) -> list[ReadinessItem]:
    """The items among `keys` that are not met (a key with no item counts as not met)."""
    by_key = {i.key: i for i in items}
    found = [by_key.get(k) or ReadinessItem(k, False, "not evaluated") for k in keys if k in ITEMS]
    return [i for i in found if not i.met]
