"""Ask the AgentOps Console before acting, and say on the span what was asked and answered."""

from agentops_sdk.client import Approval, BudgetDecision, Client, Decision, RequestRefused
from agentops_sdk.contracts import ContractUnavailable, ContractViolation
from agentops_sdk.decisions import record_decision
from agentops_sdk.tools import contracted_tool

__all__ = [
    "Approval",
    "BudgetDecision",
    "Client",
    "ContractUnavailable",
    "ContractViolation",
    "Decision",
    "RequestRefused",
    "contracted_tool",
    "record_decision",
]
