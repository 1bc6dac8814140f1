"""The step kinds as plain strings: the mapping compares them once per span per rule, and
an enum member's lookup costs more than the comparison."""

from __future__ import annotations

from traces.models import Step

AGENT = str(Step.AGENT.value)
LLM = str(Step.LLM.value)
TOOL = str(Step.TOOL.value)
RETRIEVAL = str(Step.RETRIEVAL.value)
POLICY = str(Step.POLICY.value)
ESCALATION = str(Step.ESCALATION.value)
OTHER = str(Step.OTHER.value)
