"""Tool contracts and Cedar policies for the demo project of `manage.py up`, so the Controls
pages have something real on a fresh start.

The contracts cover the tools of the demo traffic (traces.demo, which names contract
version "1" on every tool span) and of the governed demo agents (controls.demo_agent,
which validate their calls through agentops_sdk). `issue_refund` has two versions: "1",
now deprecated, which the older traffic still names, and "2", which makes `amount`
required (a breaking change the console shows). The side-effecting tools require an
idempotency key. The policies permit read-only tools, refunds for agents declared bounded
or expanded and paging on-call, escalate a refund over 100.00 to a person and forbid
closing a customer's account.
"""

from __future__ import annotations

from decimal import Decimal

from controls.models import PolicyVersion, ReviewRule, ReviewSla, ToolContract
from controls.policies import policy_version_create
from controls.services import contract_upsert
from traces.models import Project

ORDER_ARGS = {
    "type": "object",
    "properties": {"order_id": {"type": "integer", "minimum": 1}},
    "required": ["order_id"],
}
QUERY_ARGS = {
    "type": "object",
    "properties": {"query": {"type": "string", "minLength": 1, "maxLength": 200}},
    "required": ["query"],
}
# The older demo traffic tracks a shipment by a free-text query, the governed agents by id.
TRACKING_ARGS = {
    "type": "object",
    "properties": {
        "order_id": {"type": "integer", "minimum": 1},
        "query": {"type": "string", "minLength": 1, "maxLength": 200},
    },
    "anyOf": [{"required": ["order_id"]}, {"required": ["query"]}],
}
STATUS_RESULT = {
    "type": "object",
    "properties": {"status": {"type": "string"}},
    "required": ["status"],
}
REFUND_V2_ARGS = {
    "type": "object",
    "properties": {
        "order_id": {"type": "integer", "minimum": 1},
        "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 5000},
        "reason": {"type": "string", "maxLength": 200},
    },
    "required": ["order_id", "amount"],
    "additionalProperties": False,
}
SIDE_EFFECTS = {"side_effects": True, "requires_idempotency_key": True}

DEMO_CONTRACTS = (
    {
        "name": "lookup_order",
        "version": "1",
        "description": "Reads an order and its status.",
        "arguments_schema": ORDER_ARGS,
        "result_schema": STATUS_RESULT,
    },
    {
        "name": "track_shipment",
        "version": "1",
        "description": "Reads the carrier's tracking events of an order.",
        "arguments_schema": TRACKING_ARGS,
        "result_schema": STATUS_RESULT,
    },
    {
        "name": "issue_refund",
        "version": "1",
        "status": "deprecated",
        "risk": "high",
        "description": "Refunds an order in full.",
        "arguments_schema": ORDER_ARGS,
        "result_schema": STATUS_RESULT,
        **SIDE_EFFECTS,
    },
    {
        "name": "issue_refund",
        "version": "2",
        "risk": "high",
        "description": "Refunds part or all of an order: the amount is now required.",
        "arguments_schema": REFUND_V2_ARGS,
        "result_schema": STATUS_RESULT,
        **SIDE_EFFECTS,
    },
    {
        "name": "search_docs",
        "version": "1",
        "description": "Full-text search over the knowledge base.",
        "arguments_schema": QUERY_ARGS,
        "result_schema": STATUS_RESULT,
    },
    {
        "name": "query_warehouse",
        "version": "1",
        "risk": "medium",
        "description": "Read-only SQL over the analytics warehouse.",
        "arguments_schema": QUERY_ARGS,
        "result_schema": STATUS_RESULT,
    },
    {
        "name": "get_runbook",
        "version": "1",
        "description": "Fetches the runbook of an alert.",
        "arguments_schema": QUERY_ARGS,
        "result_schema": STATUS_RESULT,
    },
    {
        "name": "page_oncall",
        "version": "1",
        "risk": "high",
        "description": "Pages the on-call engineer.",
        "arguments_schema": QUERY_ARGS,
        "result_schema": STATUS_RESULT,
        **SIDE_EFFECTS,
    },
    {
        "name": "close_account",
        "version": "1",
        "risk": "critical",
        "description": "Closes a customer's account and deletes its data.",
        "arguments_schema": {
            "type": "object",
            "properties": {"customer_id": {"type": "string", "minLength": 1}},
            "required": ["customer_id"],
        },
        "result_schema": STATUS_RESULT,
        **SIDE_EFFECTS,
    },
)

# Cedar: amounts are in cents (10000 is 100.00); see controls/policies.py.
DEMO_POLICIES = """\
@id("read-only-tools")
permit(principal, action == Action::"call_tool", resource)
when { resource.contracted && !resource.side_effects };

@id("refunds-when-bounded")
permit(principal, action == Action::"call_tool", resource == Tool::"issue_refund")
when { principal.phase == "bounded" || principal.phase == "expanded" };

@id("big-refund")
@escalate("refunds over 100.00 need a person")
forbid(principal, action == Action::"call_tool", resource == Tool::"issue_refund")
when { context.amount > 10000 };

@id("paging")
permit(principal, action == Action::"call_tool", resource == Tool::"page_oncall");

@id("no-account-closure")
forbid(principal, action == Action::"call_tool", resource == Tool::"close_account");
"""


def demo_controls_ensure(*, project: Project) -> None:
    """Register the demo contracts that are not registered yet and, when the project has no
    policies yet, save the demo policies as its active version. Idempotent, and what
    someone has changed since (a contract version, the policies) is never replaced."""
    registered = set(ToolContract.objects.filter(project=project).values_list("name", "version"))
    for contract in DEMO_CONTRACTS:
        if (contract["name"], contract["version"]) not in registered:
            contract_upsert(project=project, data=contract)
    if not PolicyVersion.objects.filter(project=project).exists():
        policy_version_create(project=project, text=DEMO_POLICIES, created_by="demo")
    # The review queue: escalations, escalate decisions, critical-risk calls and unsure
    # steps of any agent go to a person, who has 30 minutes for high and critical risks
    # and 4 hours for the rest.
    if not ReviewRule.objects.filter(project=project).exists():
        ReviewRule.objects.create(
            project=project, min_confidence=Decimal("0.5"), risks=["critical"]
        )
    for risk, minutes in (("high", 30), ("critical", 30), ("", 240)):
        ReviewSla.objects.get_or_create(project=project, risk=risk, defaults={"minutes": minutes})
