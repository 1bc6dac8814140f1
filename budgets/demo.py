"""Budget envelopes for the demo project of `manage.py up`, so the Budgets, Alerts and
Cost pages show something real on a fresh start.

The governed demo agents (controls.demo_agent) ask `POST /api/budgets/check` before each
model call, and every project-wide cost envelope covers them: the monthly limit is sized
so the demo traffic (about $0.50 of history, then a few dollars an hour) leaves them room
for the first hour rather than stopping every run after two minutes; the research
agent's per-run cap ("Runaway research run") is what stops their runaway loop.
"""

from __future__ import annotations

from decimal import Decimal

from budgets.models import BudgetEnvelope, Channel
from traces.models import Project

DEMO_ENVELOPES = (
    {
        "name": "Monthly LLM spend",
        "description": "The finance-approved ceiling for all demo agents this month.",
        "metric": BudgetEnvelope.Metric.COST,
        "limit": Decimal("5.00"),
        "period": BudgetEnvelope.Period.MONTH,
        "thresholds": [50, 80, 100],
    },
    {
        "name": "Support agent daily tokens",
        "description": "Keeps the support agent's context growth in check.",
        "agent": "support-agent",
        "metric": BudgetEnvelope.Metric.TOKENS,
        "limit": Decimal("300000"),
        "period": BudgetEnvelope.Period.DAY,
        "thresholds": [80, 100],
    },
    {
        "name": "Runaway research run",
        "description": "No single research run may cost more than 2 cents.",
        "agent": "research-agent",
        "metric": BudgetEnvelope.Metric.RUN_COST,
        "limit": Decimal("0.02"),
        "period": BudgetEnvelope.Period.DAY,
        "thresholds": [100],
        "forecast": False,
    },
    {
        "name": "Triage p95 latency (last hour)",
        "description": "Incident triage must answer fast.",
        "agent": "triage-agent",
        "metric": BudgetEnvelope.Metric.P95_LATENCY,
        "limit": Decimal("8"),
        "period": BudgetEnvelope.Period.ROLLING,
        "rolling_minutes": 60,
        "thresholds": [100],
        "forecast": False,
    },
)


def demo_budgets_ensure(*, project: Project) -> None:
    """Create the demo envelopes and an e-mail channel once (idempotent)."""
    channel, _ = Channel.objects.get_or_create(
        project=project,
        name="Demo team e-mail",
        defaults={"kind": Channel.Kind.EMAIL, "config": {"to": ["team@example.com"]}},
    )
    for spec in DEMO_ENVELOPES:
        envelope, created = BudgetEnvelope.objects.get_or_create(
            project=project, name=spec["name"], defaults=spec
        )
        if created:
            envelope.channels.add(channel)
