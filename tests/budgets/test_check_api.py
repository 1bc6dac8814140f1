"""`POST /api/budgets/check`: may an agent spend this now? Answered with the project key
from each covering envelope's last evaluation and the run's current cost."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from budgets.models import BudgetEnvelope, State
from traces.models import Trace
from traces.services import ingest_key_create

pytestmark = pytest.mark.django_db

URL = "/api/budgets/check"
RUN = "0af7651916cd43dd8448eb211c80319c"
Metric = BudgetEnvelope.Metric


@pytest.fixture
def key_client(ingest_secret):
    return Client(headers={"Authorization": f"Bearer {ingest_secret}"})


def evaluated(project, name, *, limit, value, state=State.OK, **fields):
    """An envelope as the evaluation leaves it: value and state of the current period."""
    now = timezone.now()
    return BudgetEnvelope.objects.create(
        project=project,
        name=name,
        limit=Decimal(limit),
        thresholds=[80, 100],
        state=state,
        last_value=Decimal(value),
        last_period_start=now - timedelta(days=1),
        last_period_end=now + timedelta(days=20),
        last_evaluated_at=now,
        **fields,
    )


def run(project, trace_id=RUN, *, cost, agent="support"):
    now = timezone.now()
    return Trace.objects.create(
        project=project,
        trace_id=trace_id,
        agent=agent,
        started_at=now,
        ended_at=now,
        first_received_at=now,
        last_received_at=now,
        cost_usd=Decimal(cost),
    )


def check(client, **body):
    return client.post(URL, body, content_type="application/json")


def test_it_allows_a_spend_under_budget(key_client, project):
    evaluated(project, "Monthly", limit="100", value="40")
    r = check(key_client, agent="support", estimated_cost="0.25")
    assert r.status_code == 200, r.content
    assert r.json() == {
        "allow": True,
        "reason": "ok",
        "envelopes": [
            {"name": "Monthly", "metric": "cost_usd", "remaining": "60.0000000000", "state": "ok"}
        ],
    }


def test_it_refuses_when_an_envelope_is_exhausted(key_client, project):
    evaluated(project, "Monthly", limit="100", value="100", state=State.EXCEEDED)
    body = check(key_client, agent="support").json()
    assert body["allow"] is False
    assert body["reason"] == "budget_exhausted"
    assert body["envelopes"][0] == {
        "name": "Monthly",
        "metric": "cost_usd",
        "remaining": "0.0000000000",
        "state": "exceeded",
    }


def test_it_refuses_when_the_estimate_would_pass_the_limit(key_client, project):
    evaluated(project, "Monthly", limit="100", value="99.50", state=State.WARNING)
    assert check(key_client, estimated_cost="0.50").json()["allow"] is True
    body = check(key_client, estimated_cost="0.51").json()
    assert (body["allow"], body["reason"]) == (False, "budget_exhausted")


def test_it_counts_a_finished_period_as_spent_nothing_yet(key_client, project):
    env = evaluated(project, "Daily", limit="10", value="10", state=State.EXCEEDED, period="day")
    BudgetEnvelope.objects.filter(pk=env.pk).update(
        last_period_end=timezone.now() - timedelta(seconds=5)
    )
    body = check(key_client, estimated_cost="1").json()
    assert body["allow"] is True
    assert body["envelopes"][0]["remaining"] == "10.0000000000"


def test_it_caps_a_run_with_its_current_spend(key_client, project):
    evaluated(
        project, "Run cap", limit="0.50", value="3", state=State.EXCEEDED, metric=Metric.RUN_COST
    )
    run(project, cost="0.40")
    # The envelope's stored value is another run's: this run has 0.10 left.
    body = check(key_client, trace_id=RUN, estimated_cost="0.10").json()
    assert body == {
        "allow": True,
        "reason": "ok",
        "envelopes": [
            {
                "name": "Run cap",
                "metric": "run_cost_usd",
                "remaining": "0.1000000000",
                "state": "ok",
            }
        ],
    }
    body = check(key_client, trace_id=RUN.upper(), estimated_cost="0.11").json()
    assert (body["allow"], body["reason"]) == (False, "run_cap_exceeded")
    # A run not seen yet has spent nothing.
    other = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert check(key_client, trace_id=other, estimated_cost="0.11").json()["allow"] is True


def test_it_names_the_run_cap_before_an_exhausted_budget(key_client, project):
    evaluated(project, "Monthly", limit="100", value="100", state=State.EXCEEDED)
    evaluated(project, "Run cap", limit="1", value="0", metric=Metric.RUN_COST)
    run(project, cost="2")
    assert check(key_client, trace_id=RUN).json()["reason"] == "run_cap_exceeded"


def test_an_agent_envelope_applies_only_to_that_agent(key_client, project):
    evaluated(project, "Billing bot", limit="10", value="10", state=State.EXCEEDED, agent="billing")
    refused = check(key_client, agent="billing").json()
    assert (refused["allow"], [e["name"] for e in refused["envelopes"]]) == (False, ["Billing bot"])
    for body in (check(key_client, agent="support").json(), check(key_client).json()):
        assert body == {"allow": True, "reason": "ok", "envelopes": []}


def test_a_session_envelope_applies_only_to_that_session(key_client, project):
    evaluated(
        project,
        "Session",
        limit="1",
        value="1",
        state=State.EXCEEDED,
        attribute=BudgetEnvelope.Attribute.SESSION,
        attribute_value="s-1",
    )
    assert check(key_client, session="s-1").json()["reason"] == "budget_exhausted"
    assert check(key_client, session="s-2").json()["envelopes"] == []


def test_envelopes_it_cannot_place_or_disabled_ones_do_not_apply(key_client, project):
    common = {"limit": "1", "value": "1", "state": State.EXCEEDED}
    evaluated(project, "By model", model="gpt-4o", **common)
    evaluated(project, "By service", service_name="api", **common)
    evaluated(project, "By user", attribute="user_id", attribute_value="u1", **common)
    evaluated(project, "Off", enabled=False, **common)
    assert check(key_client, agent="support", session="s-1").json()["envelopes"] == []


def test_token_and_latency_envelopes_are_reported_but_never_refuse(key_client, project):
    evaluated(
        project, "Tokens", limit="1000", value="5000", state=State.EXCEEDED, metric=Metric.TOKENS
    )
    evaluated(
        project, "Latency", limit="3", value="9", state=State.EXCEEDED, metric=Metric.P95_LATENCY
    )
    body = check(key_client, estimated_cost="5").json()
    assert (body["allow"], body["reason"]) == (True, "ok")
    assert [(e["name"], e["state"]) for e in body["envelopes"]] == [
        ("Latency", "exceeded"),
        ("Tokens", "exceeded"),
    ]


def test_another_projects_key_sees_nothing_of_this_project(project, other_project):
    evaluated(project, "Monthly", limit="1", value="1", state=State.EXCEEDED)
    run(project, cost="5")
    evaluated(project, "Run cap", limit="1", value="5", metric=Metric.RUN_COST)
    other = Client(
        headers={"Authorization": f"Bearer {ingest_key_create(project=other_project).secret}"}
    )
    assert check(other, trace_id=RUN, estimated_cost="0.5").json() == {
        "allow": True,
        "reason": "ok",
        "envelopes": [],
    }
    # Its own run cap never reads this project's run of the same id.
    evaluated(other_project, "Their run cap", limit="1", value="0", metric=Metric.RUN_COST)
    body = check(other, trace_id=RUN, estimated_cost="0.5").json()
    assert (body["allow"], body["envelopes"][0]["remaining"]) == (True, "1.0000000000")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"estimated_cost": "-1"}, "estimated_cost"),
        ({"estimated_cost": "lots"}, "estimated_cost"),
        ({"estimated_cost": "NaN"}, "estimated_cost"),
        ({"trace_id": "not-a-trace"}, "trace_id"),
        ({"agent": "a" * 201}, "agent"),
        ({"session": "s\x00"}, "session"),
        ({"agent": ["support"]}, "agent"),
    ],
)
def test_it_rejects_bad_input_by_field(key_client, project, body, field):
    r = check(key_client, **body)
    assert r.status_code == 400
    assert list(r.json()) == [field]


def test_it_ignores_unknown_fields_and_rejects_a_body_that_is_not_an_object(key_client, project):
    assert check(key_client, model="gpt-4o", extra=1).json()["allow"] is True
    r = key_client.post(URL, [1, 2], content_type="application/json")
    assert r.status_code == 400
    r = key_client.post(URL, "{nope", content_type="application/json")
    assert r.status_code == 400


def test_it_needs_a_project_key(project, user):
    r = Client().post(URL, {}, content_type="application/json")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    bad = Client(headers={"Authorization": "Bearer ak_nope"})
    assert check(bad).status_code == 401
    person = Client()
    person.force_login(user)
    assert check(person).status_code == 403


def test_it_answers_in_two_queries_however_many_envelopes(
    key_client, project, django_assert_num_queries
):
    for i in range(30):
        evaluated(project, f"budget {i}", limit="100", value="1", agent=["", "support"][i % 2])
    evaluated(project, "Run cap", limit="1", value="0", metric=Metric.RUN_COST)
    run(project, cost="0.2")
    check(key_client)  # records the key as used; later requests within a minute do not
    # The key look-up (cached per process in production), the envelopes, the run.
    with django_assert_num_queries(3):
        body = check(key_client, agent="support", trace_id=RUN, estimated_cost="0.1").json()
    assert len(body["envelopes"]) == 31
    with django_assert_num_queries(2):
        check(key_client, agent="support", estimated_cost="0.1")
