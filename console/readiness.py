"""Production readiness composed across the apps (`console` may import every app):

* `controls.readiness` needs to know whether a budget envelope covers an agent, and
  `controls` may not import `budgets`: `envelopes_covering` answers it from here;
* the Agents page and the promotion criteria of `rollouts` show and require the readiness
  items, and `rollouts` may not import `controls`: `readiness_checklists` hands them over
  through `rollouts.extensions`.

Both are registered in `ConsoleConfig.ready`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from budgets.models import BudgetEnvelope
from controls.readiness import agent_readiness, readiness_window
from traces.models import Project


def envelopes_covering(*, project_id: int, agents: list[str]) -> dict[str, list[str]]:
    """{agent: [names of the enabled envelopes scoped to it or to every agent]}."""
    rows = BudgetEnvelope.objects.filter(
        project_id=project_id, enabled=True, agent__in=[*agents, ""]
    ).values_list("agent", "name")
    out: dict[str, list[str]] = defaultdict(list)
    for scope, name in rows:
        for agent in agents if not scope else [scope]:
            out[agent].append(name)
    return dict(out)


def readiness_checklists(*, project: Project, agents: list[str], start_day: date, end_day: date):
    since, until = readiness_window(days=(end_day - start_day).days + 1, today=end_day)
    return agent_readiness(project=project, since=since, until=until, agents=agents)
