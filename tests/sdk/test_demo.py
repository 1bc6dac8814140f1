"""The demo of `manage.py up` for the runtime controls: contracts and policies set up once,
and the governed demo agents (controls.demo_agent) driving the SDK against a live console
beside the older demo traffic, which the demo contracts must accept."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from budgets.demo import demo_budgets_ensure
from controls.checks import contract_checks_run
from controls.demo import DEMO_CONTRACTS, DEMO_POLICIES, demo_controls_ensure
from controls.models import ContractCheck, PolicyDecision, PolicyVersion, ToolContract
from controls.policies import policy_check, policy_version_create
from rollouts.demo import demo_declarations_ensure
from traces.demo import DemoTraffic
from traces.models import Span
from traces.services import ingest_key_create


@pytest.fixture
def demo_project(project):
    demo_budgets_ensure(project=project)
    demo_declarations_ensure(project=project)
    demo_controls_ensure(project=project)
    return project


def test_the_demo_controls_are_set_up_once_and_edits_are_kept(demo_project):
    assert ToolContract.objects.filter(project=demo_project).count() == len(DEMO_CONTRACTS)
    (version,) = PolicyVersion.objects.filter(project=demo_project)
    assert (version.active, version.text) == (True, DEMO_POLICIES)
    ToolContract.objects.filter(name="lookup_order").update(description="edited")
    edited = policy_version_create(project=demo_project, text=DEMO_POLICIES + "\n", created_by="x")

    demo_controls_ensure(project=demo_project)
    assert ToolContract.objects.filter(project=demo_project).count() == len(DEMO_CONTRACTS)
    assert ToolContract.objects.get(name="lookup_order").description == "edited"
    assert PolicyVersion.objects.filter(project=demo_project).count() == 2
    assert PolicyVersion.objects.get(project=demo_project, active=True) == edited


def test_the_demo_sends_escalations_and_unsure_steps_to_the_review_queue(demo_project):
    from controls.models import ReviewRule, ReviewSla
    from controls.review import review_sla_minutes

    (rule,) = ReviewRule.objects.filter(project=demo_project)
    assert (rule.agent, rule.phase, rule.risks) == ("", "", ["critical"])
    assert rule.on_escalation and rule.on_policy_escalate
    assert review_sla_minutes(project_id=demo_project.pk, risk="critical") == 30
    assert review_sla_minutes(project_id=demo_project.pk, risk="low") == 240
    demo_controls_ensure(project=demo_project)
    assert ReviewRule.objects.filter(project=demo_project).count() == 1
    assert ReviewSla.objects.filter(project=demo_project).count() == 3


@pytest.mark.parametrize(
    ("agent", "tool", "amount", "decision", "policy"),
    [
        ("support-agent", "lookup_order", "0", "allow", "read-only-tools"),
        ("support-agent", "issue_refund", "20.00", "allow", "refunds-when-bounded"),
        ("support-agent", "issue_refund", "250.00", "escalate", "big-refund"),
        ("support-agent", "close_account", "0", "deny", "no-account-closure"),
        ("support-agent", "send_survey", "0", "deny", None),  # no contract: side effects
        ("research-agent", "issue_refund", "20.00", "deny", None),  # declared shadow
        ("triage-agent", "page_oncall", "0", "allow", "paging"),
    ],
)
def test_the_demo_policies_decide(demo_project, agent, tool, amount, decision, policy):
    answer = policy_check(
        project_id=demo_project.pk, agent=agent, tool=tool, amount=Decimal(amount)
    )
    assert answer.decision == decision
    assert answer.policy_ids == ([policy] if policy else [])


@pytest.mark.live
def test_the_governed_demo_shows_every_control(live_server, demo_project):
    from controls.demo_agent import SCENARIOS, GovernedDemo

    key = ingest_key_create(project=demo_project).secret
    traffic = DemoTraffic(endpoint=f"{live_server.url}/v1/traces", key=key, seed=7)
    for _ in range(20):
        traffic.run()
    traffic.flush()
    traffic.shutdown()
    governed = GovernedDemo(base_url=live_server.url, key=key, seed=7, pause=0)
    try:
        tour = governed.tour()
    finally:
        governed.shutdown()

    assert [(o.scenario, o.outcome) for o in tour] == list(
        zip(
            SCENARIOS,
            ["done", "refunded", "escalated", "denied", "violation", "budget_stop"],
            strict=True,
        )
    )
    runaway = tour[-1]
    assert runaway.detail == "run_cap_exceeded"
    assert 2 <= runaway.model_calls < 10
    assert Counter(PolicyDecision.objects.values_list("decision", flat=True)) == {
        "allow": 2,  # the refund, and the refund with the bad order id
        "escalate": 1,
        "deny": 1,
    }

    contract_checks_run(project_id=demo_project.pk)
    violations = ContractCheck.objects.exclude(outcome=ContractCheck.Outcome.OK)
    # The older traffic keeps to the demo contracts; the one planted violation is found.
    assert list(violations.values_list("tool_name", "contract_version", "outcome")) == [
        ("issue_refund", "2", "arguments_invalid")
    ]
    assert violations.get().trace_id == tour[4].trace_id
    assert violations.get().detail["pointer"] == "/order_id"
    assert ContractCheck.objects.filter(outcome="ok").count() > 20
    refund = Span.objects.get(trace_id=tour[1].trace_id, name="execute_tool issue_refund")
    assert refund.attributes["agentops.idempotency_key"].startswith("refund-")
    # Each refund the agents weigh is remembered as a decision, with what they chose.
    from controls.decision_memory import decisions_record
    from controls.models import DecisionRecord

    decisions_record(project_id=demo_project.pk)
    actions = dict(DecisionRecord.objects.values_list("trace_id", "action"))
    assert actions[tour[1].trace_id] == "issue_refund"
    assert actions[tour[2].trace_id] == "stop: policy said escalate"
