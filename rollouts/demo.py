"""The KPIs, rollout phases and promotion criteria the demo traffic (traces.demo) speaks of."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rollouts.models import AgentPhase, Kpi, PromotionCriteria
from traces.demo import AGENTS
from traces.models import Phase

NEXT_PHASE = {Phase.SHADOW: Phase.BOUNDED, Phase.BOUNDED: Phase.EXPANDED}


def demo_declarations_ensure(*, project) -> None:
    """The KPIs and rollout phases the demo traffic speaks of (idempotent)."""
    Kpi.objects.get_or_create(
        project=project,
        name="resolved",
        defaults={
            "label": "Resolved without a person",
            "kind": Kpi.Kind.RATE,
            "higher_is_better": True,
            "baseline": Kpi.Baseline.PREVIOUS_VERSION,
            "description": "The customer's request was closed by the agent alone.",
        },
    )
    Kpi.objects.get_or_create(
        project=project,
        name="handle_time_min",
        defaults={
            "label": "Handle time",
            "unit": "min",
            "kind": Kpi.Kind.MEAN,
            "higher_is_better": False,
            "baseline": Kpi.Baseline.CONTROL,
            "description": "Minutes from request to answer, against human-handled requests.",
        },
    )
    start = datetime.now(UTC) - timedelta(days=30)
    for agent in AGENTS:
        AgentPhase.objects.get_or_create(
            project=project,
            agent=agent.name,
            since=start.replace(hour=0, minute=0, second=0, microsecond=0),
            defaults={"phase": agent.phase, "note": "demo rollout"},
        )
        next_phase = NEXT_PHASE.get(agent.phase)
        if next_phase:
            PromotionCriteria.objects.get_or_create(
                project=project,
                agent=agent.name,
                from_phase=agent.phase,
                defaults={"to_phase": next_phase, "min_runs": 50, "window_days": 7},
            )
