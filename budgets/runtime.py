"""The runtime budget check: may an agent spend this now?

Answered from what the evaluation last stored on each envelope (state, value, period),
never from the rollups: the check sits before every model call, so it costs at most two
indexed queries (the covering envelopes, then the run's summary when a per-run cost cap
covers the request).

Which envelopes cover a request: the enabled ones of the key's project that are
project-wide or narrowed to the request's agent, and, for session-scoped envelopes, the
request's session. An envelope narrowed to a model, a service or a user id does not
cover it: the request does not say which model, service or user it is for.

What blocks: cost envelopes (an exceeded one, or one whose stored value plus the
estimated cost passes its limit) and per-run cost caps (the run's current cost plus the
estimated cost passes the cap). Tokens, latency, error rate and run duration are
reported with their state but never refuse a spend: they are not what the caller is
asking to spend.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q

from budgets.models import BudgetEnvelope, State
from budgets.periods import CALENDAR_PERIODS
from traces.models import Trace

Metric = BudgetEnvelope.Metric

OK = "ok"
BUDGET_EXHAUSTED = "budget_exhausted"
RUN_CAP_EXCEEDED = "run_cap_exceeded"

_FIELDS = (
    "name",
    "metric",
    "limit",
    "period",
    "state",
    "last_value",
    "last_period_end",
)


@dataclass(frozen=True)
class EnvelopeAnswer:
    name: str
    metric: str
    remaining: Decimal
    state: str


@dataclass(frozen=True)
class BudgetCheck:
    allow: bool
    reason: str
    envelopes: list[EnvelopeAnswer]


def budget_check(
    *,
    project_id: int,
    now: datetime,
    agent: str = "",
    session: str = "",
    trace_id: str = "",
    estimated_cost: Decimal = Decimal(0),
) -> BudgetCheck:
    """Whether spending `estimated_cost` now stays within every cost envelope and per-run
    cost cap covering (project, agent, session, run); each covering envelope with what is
    left of it. A run cap refusal is named before an exhausted budget: it is the one the
    agent can act on (end this run)."""
    session_scope = Q(attribute="")
    if session:
        session_scope |= Q(attribute=BudgetEnvelope.Attribute.SESSION, attribute_value=session)
    rows = list(
        BudgetEnvelope.objects.filter(
            (Q(agent="") | Q(agent=agent)) if agent else Q(agent=""),
            session_scope,
            project_id=project_id,
            enabled=True,
            model="",
            service_name="",
        )
        .order_by("name")
        .values_list(*_FIELDS)
    )
    run_cost = Decimal(0)
    if trace_id and any(row[1] == Metric.RUN_COST for row in rows):
        found = (
            Trace.objects.filter(project_id=project_id, trace_id=trace_id)
            .values_list("cost_usd", flat=True)
            .first()
        )
        run_cost = found or Decimal(0)

    exhausted = run_capped = False
    answers = []
    for name, metric, limit, period, state, value, period_end in rows:
        if metric == Metric.RUN_COST:
            # The stored value is the period's worst run, not this one: judge this run.
            remaining = limit - run_cost
            state = State.EXCEEDED if run_cost >= limit else State.OK
            run_capped |= run_cost + estimated_cost > limit
        else:
            if period in CALENDAR_PERIODS and period_end is not None and period_end <= now:
                # A new period began since the last evaluation: nothing is spent in it yet.
                value, state = Decimal(0), State.OK
            remaining = limit - (value or Decimal(0))
            if metric == Metric.COST:
                exhausted |= state == State.EXCEEDED or estimated_cost > remaining
        answers.append(EnvelopeAnswer(name, metric, max(remaining, Decimal(0)), state))

    reason = RUN_CAP_EXCEEDED if run_capped else BUDGET_EXHAUSTED if exhausted else OK
    return BudgetCheck(allow=reason == OK, reason=reason, envelopes=answers)
