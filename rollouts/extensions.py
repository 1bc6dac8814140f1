"""Checklists other apps put on an agent: the production readiness of `controls`, shown on
the Agents page and on an agent's page, and required by promotion criteria
(`PromotionCriteria.require_readiness`).

`rollouts` imports none of the apps that know these facts, so they register a provider here
when Django starts (`console`, the app that composes the others, in `ConsoleConfig.ready`).

A provider takes `project`, `agents` (names) and the window `start_day`..`end_day` (UTC days,
both included) and returns {agent: [item, …]}. An item has `key`, `label`, `kind`
("control" or "anti_pattern"), `met` (bool), `evidence` (words), `numerator`, `denominator`,
`percent` (None where no share applies) and `url` (where the evidence is, or "").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from traces.models import Project

logger = logging.getLogger(__name__)

Provider = Callable[..., Mapping[str, Sequence[Any]]]
_providers: list[Provider] = []


def agent_checklist_provider(provider: Provider) -> Provider:
    """Register `provider(project=..., agents=[...], start_day=..., end_day=...)`.
    Idempotent."""
    if provider not in _providers:
        _providers.append(provider)
    return provider


def agent_checklists(
    *, project: Project, agents: list[str], start_day: date, end_day: date
) -> dict[str, list[Any]]:
    """Every provider's items for each agent, in registration order. A provider that fails
    is logged and skipped: its items are then missing, and a promotion criterion requiring
    one of them is not met."""
    out: dict[str, list[Any]] = {agent: [] for agent in agents}
    if not agents:
        return out
    for provider in _providers:
        try:
            found = provider(project=project, agents=agents, start_day=start_day, end_day=end_day)
        except Exception:
            logger.exception("agent checklist provider %r failed", provider)
            continue
        for agent, items in found.items():
            if agent in out:
                out[agent].extend(items)
    return out


# ------------------------------------------------------------------ shadow agreement

# `agreement(project_id=..., agent=..., phase=..., version=..., start_day=..., end_day=...)`
# → (decisions with a person's action, how many of them agreed with the agent), read from
# decision memory (`controls`), which `rollouts` may not import.
AgreementProvider = Callable[..., tuple[int, int]]
_agreement: list[AgreementProvider] = []


def shadow_agreement_provider(provider: AgreementProvider) -> AgreementProvider:
    """Register the one source of shadow agreement counts. Idempotent."""
    if provider not in _agreement:
        _agreement.append(provider)
    return provider


def shadow_agreement(
    *, project_id: int, agent: str, phase: str, version: str, start_day: date, end_day: date
) -> tuple[int, int] | None:
    """(n, agreed) from the registered provider, None when none is registered or it
    failed (logged): a criterion that needs it is then not met."""
    for provider in _agreement:
        try:
            return provider(
                project_id=project_id,
                agent=agent,
                phase=phase,
                version=version,
                start_day=start_day,
                end_day=end_day,
            )
        except Exception:
            logger.exception("shadow agreement provider %r failed", provider)
            return None
    return None
