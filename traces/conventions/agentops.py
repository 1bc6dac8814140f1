"""Our own `agentops.*` namespace (DESIGN.md): explicit storyline steps, policy gates and
escalations, versions, the rollout phase, interventions, KPI and eval values. It names
what no convention does, so it is read last and wins."""

from __future__ import annotations

import math
from typing import Any

from traces.conventions.steps import ESCALATION, POLICY, TOOL
from traces.conventions.values import Neutral
from traces.models import STEP_ROLES, Phase

STEP = "agentops.step"
PHASES = frozenset(str(p.value) for p in Phase)
_TRUE = (True, "true", "True", "1", 1)

CLASSIFY = {STEP: (70, {"tool": TOOL, "result": TOOL})}
KEYS = {
    "agent_version": ((20, "agentops.agent.version"),),
    "prompt_version": ((10, "agentops.prompt.version"),),
}


def apply(a: dict[str, Any], n: Neutral) -> None:
    """Role, step override, phase, intervention and outcome values, on the mapped span."""
    step = a.get(STEP)
    if type(step) is str and step in STEP_ROLES:
        n.role = step
    # A policy gate or a hand-off to a human wins over the conventions' kind; the usage of
    # an LLM-as-judge gate still counts (tokens follow the conventions' kind).
    if step == "escalation":
        n.step = ESCALATION
    elif step == "policy" or "agentops.policy.decision" in a or "agentops.policy.name" in a:
        n.step = POLICY
    phase = a.get("agentops.autonomy.phase")
    if type(phase) is str and phase.lower() in PHASES:
        n.phase = phase.lower()
    n.intervened = (
        a.get("agentops.human.intervened") in _TRUE
        or n.step == ESCALATION
        or a.get("agentops.policy.decision") == "escalate"
    )
    kpi = evals = False
    for key in a:
        if key.startswith("agentops.kpi."):
            kpi = True
        elif key.startswith("agentops.eval."):
            evals = True
    if kpi or evals:
        n.kpis = _numbers_under(a, "agentops.kpi.")
        n.evals = _numbers_under(a, "agentops.eval.")


def _numbers_under(a: dict[str, Any], prefix: str) -> dict[str, float] | None:
    """{name: value} of numeric (or boolean, as 0/1) attributes named prefix + name."""
    out = {}
    for key, value in a.items():
        if not key.startswith(prefix) or len(key) == len(prefix):
            continue
        if type(value) is bool:
            out[key[len(prefix) :]] = 1.0 if value else 0.0
            continue
        number = _float(value)
        if number is not None:
            out[key[len(prefix) :]] = number
    return out or None


def _float(value: Any) -> float | None:
    if type(value) in (int, float):
        f = float(value)
    elif type(value) is str:
        try:
            f = float(value)
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) else None
