"""Policy gates: Cedar policies, versioned; `POST /api/policy/check` decides and records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client

from controls.models import PolicyDecision, PolicyVersion
from controls.policies import policy_version_create
from controls.services import contract_upsert
from rollouts.models import AgentPhase
from traces.services import ingest_key_create

POLICIES = """
@id("low-risk-tools")
permit(principal, action == Action::"call_tool", resource)
when { resource.risk == "low" };

@id("refunds-when-bounded")
permit(principal, action == Action::"call_tool", resource == Tool::"refund_order")
when { principal.phase == "bounded" || principal.phase == "expanded" };

@id("big-refund")
@escalate("refund over 500.00 needs a person")
forbid(principal, action, resource == Tool::"refund_order")
when { context.amount > 50000 };

@id("unsure")
@escalate("confidence under 0.7")
forbid(principal, action, resource) when { resource.side_effects && context.confidence < 700 };

@id("no-test-accounts")
forbid(principal, action, resource)
when { context.arguments has account && context.arguments.account == "test" };

@id("no-uncontracted")
forbid(principal, action, resource) when { !resource.contracted };
"""


@pytest.fixture
def gated(project):
    contract_upsert(project=project, data={"name": "lookup_order", "version": "1.0.0"})
    contract_upsert(
        project=project,
        data={"name": "refund_order", "version": "1.0.0", "side_effects": True, "risk": "high"},
    )
    AgentPhase.objects.create(
        project=project, agent="support", phase="bounded", since=datetime(2026, 1, 1, tzinfo=UTC)
    )
    return policy_version_create(project=project, text=POLICIES, created_by="ada")


def check(secret, **body):
    question = {"agent": "support", "agent_version": "2.1", "tool": "refund_order", **body}
    return Client().post(
        "/api/policy/check",
        question,
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )


TABLE = [
    # (request fields, decision, policy ids, reason)
    ({"tool": "lookup_order"}, "allow", ["low-risk-tools"], "permitted by low-risk-tools"),
    (
        {"amount": "120.00", "confidence": 0.9},
        "allow",
        ["refunds-when-bounded"],
        "permitted by refunds-when-bounded",
    ),
    (
        {"amount": "500.01", "confidence": 0.9},
        "escalate",
        ["big-refund"],
        "refund over 500.00 needs a person",
    ),
    ({"amount": "500.00", "confidence": 0.9}, "allow", ["refunds-when-bounded"], None),
    ({"amount": "10", "confidence": 0.5}, "escalate", ["unsure"], "confidence under 0.7"),
    (
        {"amount": "900", "confidence": 0.9, "arguments": {"account": "test"}},
        "deny",
        ["big-refund", "no-test-accounts"],
        "forbidden by big-refund, no-test-accounts",
    ),
    ({"tool": "lookup_order", "arguments": {"account": "test", "n": 1.5}}, "deny", None, None),
    (
        {"tool": "delete_everything", "confidence": 0.9},
        "deny",
        ["no-uncontracted"],
        "forbidden by no-uncontracted",
    ),
]


@pytest.mark.parametrize(("fields", "decision", "ids", "reason"), TABLE)
def test_it_decides_a_table_of_requests(gated, ingest_secret, fields, decision, ids, reason):
    response = check(ingest_secret, **fields)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["decision"] == decision
    assert body["policy_version"] == 1
    if ids is not None:
        assert sorted(body["policy_ids"]) == ids
    if reason is not None:
        assert body["reason"] == reason
    row = PolicyDecision.objects.get(public_id=body["decision_id"])
    assert (row.decision, row.tool, row.policy_version) == (
        decision,
        fields.get("tool", "refund_order"),
        1,
    )
    assert row.policy_ids == body["policy_ids"] and row.reason == body["reason"]


def test_the_declared_phase_wins_over_the_claimed_one(gated, project, ingest_secret):
    fields = {"amount": "10", "confidence": 0.9}
    assert check(ingest_secret, phase="shadow", **fields).json()["decision"] == "allow"
    # The operator demotes the agent: the next decision follows, whatever the agent claims.
    AgentPhase.objects.create(
        project=project,
        agent="support",
        phase="shadow",
        since=datetime.now(UTC) - timedelta(seconds=1),
    )
    body = check(ingest_secret, phase="bounded", **fields).json()
    assert body["decision"] == "deny"
    assert body["reason"] == "no policy permits this"
    row = PolicyDecision.objects.get(public_id=body["decision_id"])
    assert (row.phase, row.claimed_phase) == ("shadow", "bounded")


def test_an_undeclared_agent_has_no_phase(gated, ingest_secret):
    body = check(ingest_secret, agent="newcomer", phase="expanded", amount="10", confidence=0.9)
    assert body.json()["decision"] == "deny"


def test_it_fails_closed_without_an_active_policy(project, ingest_secret):
    response = check(ingest_secret)
    assert response.status_code == 200
    body = response.json()
    assert (body["decision"], body["reason"], body["policy_version"]) == ("deny", "no policy", None)
    assert PolicyDecision.objects.filter(public_id=body["decision_id"], decision="deny").exists()


def test_it_refuses_invalid_cedar_on_save(project):
    with pytest.raises(ValidationError) as caught:
        policy_version_create(project=project, text="permit(principal, action, resource")
    assert "unexpected end of input" in caught.value.message_dict["text"][0]
    with pytest.raises(ValidationError) as caught:
        policy_version_create(
            project=project,
            text='permit(principal, action, resource) when { context.mood == "good" };',
        )
    assert "attribute `mood` in context" in caught.value.message_dict["text"][0]
    assert not PolicyVersion.objects.exists()


def test_each_save_is_a_new_version_and_old_ones_stay_readable(project, ingest_secret):
    first = policy_version_create(project=project, text="permit(principal, action, resource);")
    assert check(ingest_secret).json()["decision"] == "allow"
    second = policy_version_create(project=project, text="forbid(principal, action, resource);")
    body = check(ingest_secret).json()
    assert (body["decision"], body["policy_version"]) == ("deny", 2)
    versions = list(
        PolicyVersion.objects.filter(project=project).values_list("number", "active", "text")
    )
    assert versions == [(2, True, second.text), (1, False, first.text)]


def test_another_projects_key_cannot_see_or_use_these_policies(gated, other_project):
    theirs = ingest_key_create(project=other_project).secret
    body = check(theirs, tool="lookup_order").json()
    assert (body["decision"], body["reason"], body["policy_ids"]) == ("deny", "no policy", [])
    assert PolicyDecision.objects.get(public_id=body["decision_id"]).project_id == other_project.pk


def test_it_answers_field_errors(project, ingest_secret):
    response = check(ingest_secret, agent="", amount="-1", confidence=2, arguments=[1])
    assert response.status_code == 400
    assert set(response.json()) == {"agent", "amount", "confidence", "arguments"}
    assert check(ingest_secret, tool=None).status_code == 400
    assert not PolicyDecision.objects.exists()


def test_it_takes_a_project_key_only(client_logged_in, project):
    response = client_logged_in.post(
        "/api/policy/check", {"agent": "a", "tool": "t"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert (
        Client().post("/api/policy/check", {}, content_type="application/json").status_code == 401
    )


def test_its_query_count_is_pinned(gated, ingest_secret, django_assert_num_queries):
    check(ingest_secret)  # parses and caches the version's policies
    # The key look-up (its cache is off in tests), one read of the active version, the
    # declared phase and the contract, and the audit insert (on PostgreSQL after a
    # SET LOCAL synchronous_commit).
    with django_assert_num_queries(4 if connection.vendor == "postgresql" else 3):
        assert check(ingest_secret, amount="1", confidence=0.9).json()["decision"] == "allow"
