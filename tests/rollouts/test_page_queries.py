"""Each page's query count is a constant: the same for one agent and one KPI as for many
agents, versions, KPIs and promotion criteria."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from rollouts.models import Kpi, PromotionCriteria, RunRollup
from tests.rollouts.test_pages import rollup

pytestmark = pytest.mark.django_db

# Session, user and the user's projects, then each page's own reads (see rollouts.pages);
# the agent's page also reads its declared phase history and the viewer's role.
# The agents and agent-compare pages: 15 of them read the production readiness checklist.
# The overview: 7 of them read today's runs that stand out, the latest alerts and the queue.
PINNED = {"overview": 15, "agents": 24, "kpis": 6, "agent-compare": 23}
PAGES = [
    ("overview", {}),
    ("agents", {}),
    ("kpis", {}),
    ("kpis", {"dim": "phase"}),
    ("agent-compare", {"agent": "agent-0"}),
]


def _declare(project, *, agents: int, kpis: int) -> None:
    names = [f"kpi_{k}" for k in range(kpis)]
    baselines = ["previous_version", "shadow", "control"]
    for k, name in enumerate(names):
        Kpi.objects.create(
            project=project,
            name=name,
            kind=Kpi.Kind.RATE if k % 2 else Kpi.Kind.MEAN,
            baseline=baselines[k % 3],
        )
    for i in range(agents):
        agent = f"agent-{i}"
        PromotionCriteria.objects.create(
            project=project, agent=agent, from_phase="bounded", to_phase="expanded"
        )
        PromotionCriteria.objects.create(
            project=project, agent=agent, from_phase="shadow", to_phase="bounded", window_days=30
        )
        for v, phase, days_ago in (("v1", "shadow", 3), ("v2", "bounded", 1), ("v3", "human", 0)):
            rollup(
                project,
                agent=agent,
                version=v,
                phase=phase,
                days_ago=days_ago,
                kpis={name: [1, 0] * 20 for name in names},
                evals={"helpful": [0.5, 0.9] * 20},
            )


def _queries(client, name, params) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(name), params)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize(("name", "params"), PAGES)
def test_a_pages_query_count_does_not_grow_with_agents_and_kpis(
    client_logged_in, project, other_project, name, params
):
    _declare(project, agents=1, kpis=1)
    few = _queries(client_logged_in, name, params)
    for model in (Kpi, PromotionCriteria, RunRollup):
        model.objects.filter(project=project).delete()
    _declare(project, agents=5, kpis=4)
    _declare(other_project, agents=2, kpis=2)
    assert _queries(client_logged_in, name, params) == few == PINNED[name]
