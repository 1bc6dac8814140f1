"""Production readiness: a small planted corpus gives known percentages for every item, for
each agent and never from another project; the Agents page, the agent's page and the API
show them; a promotion criterion can require them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from budgets.models import BudgetEnvelope
from controls.checks import contract_checks_run
from controls.models import DecisionRecord, ReviewItem, ReviewRule
from controls.readiness import ITEMS, agent_readiness
from rollouts.models import PromotionCriteria, RunRollup
from tests.controls.test_idempotency import register
from tests.factories import llm_attrs, new_span_id, new_trace_id, raw_span
from traces.ingest import span_batch_ingest
from traces.models import Outcome

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)
T = NOW - timedelta(hours=2)
SINCE, UNTIL = NOW - timedelta(days=1), NOW + timedelta(hours=1)


def at(minutes: float) -> datetime:
    return T + timedelta(minutes=minutes)


def span(trace_id, name, minutes, *, agent, parent="", span_id=None, **attrs):
    return raw_span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        start=at(minutes),
        duration_ms=50,
        attributes={"gen_ai.agent.name": agent, **attrs},
    )


def tool(trace_id, name, minutes, *, agent, parent, **attrs):
    return span(
        trace_id,
        f"execute_tool {name}",
        minutes,
        agent=agent,
        parent=parent,
        **{
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.arguments": "{}",
            **attrs,
        },
    )


def llm(trace_id, minutes, *, agent, parent, prompt=""):
    extra = {"agentops.prompt.version": prompt} if prompt else {}
    return span(trace_id, "chat", minutes, agent=agent, parent=parent, **llm_attrs(**extra))


def plant(project, agent: str, *, keyed_gate: bool = True) -> dict[str, str]:
    """Three runs of `agent`:

    a: root, a policy gate, refund_order (keyed, gated), send_email (unkeyed, gated),
       lookup_order (contracted, no side effects), a model call with a prompt version;
    b: root, refund_order (unkeyed, no gate), web_search (no contract), a model call
       without a prompt version;
    c: no root (incomplete), a model call with a prompt version.
    """
    a, b, c = new_trace_id(), new_trace_id(), new_trace_id()
    ra, rb = new_span_id(), new_span_id()
    spans = [
        span(a, "run", 0, agent=agent, span_id=ra),
        span(a, "policy refund", 0.1, agent=agent, parent=ra, **{"agentops.step": "policy"}),
        tool(a, "refund_order", 0.2, agent=agent, parent=ra, **{"agentops.idempotency_key": "K"}),
        tool(a, "send_email", 0.3, agent=agent, parent=ra),
        tool(a, "lookup_order", 0.4, agent=agent, parent=ra),
        llm(a, 0.5, agent=agent, parent=ra, prompt="p1"),
        span(b, "run", 1, agent=agent, span_id=rb),
        tool(b, "refund_order", 1.1, agent=agent, parent=rb),
        tool(b, "web_search", 1.2, agent=agent, parent=rb),
        llm(b, 1.3, agent=agent, parent=rb),
        llm(c, 2, agent=agent, parent=new_span_id(), prompt="p1"),
    ]
    span_batch_ingest(project_id=project.pk, spans=spans)
    return {"a": a, "b": b, "c": c}


def decision(project, agent, trace_id, *, human=""):
    return DecisionRecord.objects.create(
        project=project,
        trace_id=trace_id,
        span_id=new_span_id(),
        agent=agent,
        action="refund",
        decided_at=at(0.15),
        human_action=human,
    )


def review(project, agent, *, late: bool | None, status=ReviewItem.Status.RESOLVED):
    """A review item resolved in time (late=False), late (True), or with no SLA (None)."""
    due = None if late is None else at(30)
    return ReviewItem.objects.create(
        project=project,
        source=ReviewItem.Source.ESCALATION,
        trace_id=new_trace_id(),
        span_id=new_span_id(),
        agent=agent,
        created_at=at(0),
        sla_due_at=due,
        status=status,
        resolved_at=at(45 if late else 15) if status == ReviewItem.Status.RESOLVED else None,
    )


def rollup_day(project, agent, version, days_ago):
    RunRollup.objects.create(
        project=project,
        day=NOW.date() - timedelta(days=days_ago),
        agent=agent,
        agent_version=version,
        phase="bounded",
        runs=3,
    )


@pytest.fixture
def corpus(project, other_project):
    register(project)
    register(other_project)
    runs = plant(project, "alpha")
    beta = new_trace_id()
    span_batch_ingest(project_id=project.pk, spans=[span(beta, "run", 3, agent="beta")])
    # The other project's alpha is perfect in every way but has more of everything.
    other = plant(other_project, "alpha")
    plant(other_project, "alpha")
    contract_checks_run()

    # Decisions: one with a person's action, one whose run has an outcome, two with none.
    decision(project, "alpha", runs["a"], human="refund")
    decision(project, "alpha", runs["b"])
    decision(project, "alpha", runs["c"])
    decision(project, "alpha", runs["c"])
    Outcome.objects.create(
        project=project,
        trace_id=runs["b"],
        kind=Outcome.Kind.KPI,
        name="resolved",
        value=1,
        source=Outcome.Source.API,
        recorded_at=at(5),
        received_at=at(5),
    )
    decision(other_project, "alpha", other["b"], human="x")

    # Escalation for any agent; SLA: two in time, one late, one without SLA, one open.
    ReviewRule.objects.create(project=project, agent="")
    review(project, "alpha", late=False)
    review(project, "alpha", late=False)
    review(project, "alpha", late=True)
    review(project, "alpha", late=None)
    review(project, "alpha", late=True, status=ReviewItem.Status.OPEN)
    review(other_project, "alpha", late=True)

    BudgetEnvelope.objects.create(project=project, name="alpha cost", agent="alpha", limit=10)
    BudgetEnvelope.objects.create(project=project, name="gamma cost", agent="gamma", limit=10)
    BudgetEnvelope.objects.create(project=other_project, name="all", agent="", limit=10)

    rollup_day(project, "alpha", "1.0", 2)
    rollup_day(project, "alpha", "1.1", 0)
    rollup_day(project, "beta", "0.1", 0)
    rollup_day(other_project, "beta", "0.0", 3)
    return project


def items_of(project, agent) -> dict:
    found = agent_readiness(project=project, since=SINCE, until=UNTIL)
    return {i.key: i for i in found[agent]}


def test_it_gives_known_percentages_for_each_control(corpus):
    items = items_of(corpus, "alpha")
    assert list(items) == list(ITEMS)
    expected = {
        # tool calls: refund, send_email, lookup (a), refund, web_search (b); 4 contracted
        "contracts": (4, 5, 80.0, False),
        # side-effecting: refund (keyed), send_email (a), refund (b)
        "idempotency": (1, 3, 33.3, False),
        # b's refund ran with no gate before it
        "policy_gate": (2, 3, 66.7, False),
        # a person's action on one, an outcome of run b on another, two with neither
        "decision_outcomes": (2, 4, 50.0, False),
        # run c never sent its root
        "complete_traces": (2, 3, 66.7, False),
        # resolved with an SLA: two in time, one late
        "escalation": (2, 3, 66.7, False),
        # model calls: a and c name a prompt version, b's does not
        "unversioned_prompts": (1, 3, 33.3, False),
    }
    got = {
        k: (items[k].numerator, items[k].denominator, items[k].percent, items[k].met)
        for k in expected
    }
    assert got == expected
    assert items["budget"].met and "alpha cost" in items["budget"].evidence
    assert "gamma" not in items["budget"].evidence
    assert items["no_rollback"].met and "1.0" in items["no_rollback"].evidence
    assert not items["policy_in_reasoning"].met and items["policy_in_reasoning"].numerator == 1
    # No KPI declared, but one run of alpha received a KPI value.
    assert items["only_model_quality"].met and items["only_model_quality"].numerator == 1


def test_it_flags_the_anti_patterns_of_a_bare_agent(corpus):
    items = items_of(corpus, "beta")
    assert not items["no_rollback"].met  # only 0.1 here; the other project's 0.0 is not
    assert "only version 0.1" in items["no_rollback"].evidence
    assert not items["only_model_quality"].met
    assert not items["budget"].met  # alpha's and gamma's envelopes do not cover beta
    assert not items["decision_outcomes"].met  # nothing recorded is no evidence
    assert items["contracts"].met and items["contracts"].denominator == 0  # called no tool
    assert items["escalation"].met  # the any-agent rule; nothing resolved yet
    # A root alone has no storyline to tell: not a complete trace.
    assert (items["complete_traces"].numerator, items["complete_traces"].denominator) == (0, 1)


def test_escalation_without_a_rule_is_not_met(corpus):
    ReviewRule.objects.filter(project=corpus).delete()
    ReviewRule.objects.create(project=corpus, agent="beta")
    assert not items_of(corpus, "alpha")["escalation"].met
    assert items_of(corpus, "beta")["escalation"].met


def test_an_any_agent_envelope_covers_every_agent(corpus):
    BudgetEnvelope.objects.create(project=corpus, name="everyone", agent="", limit=5)
    BudgetEnvelope.objects.create(project=corpus, name="off", agent="beta", limit=5, enabled=False)
    assert items_of(corpus, "beta")["budget"].evidence == "covered by everyone"


def test_the_agents_page_shows_each_item_with_evidence_and_links(client_logged_in, corpus):
    response = client_logged_in.get(reverse("agents"), {"project": corpus.slug})
    assert response.status_code == 200
    rows = {r["agent"]: r for r in response.context["rows"]}
    assert rows["alpha"]["checklist_met"] == 3  # budget, rollback, KPI; nothing else
    body = response.content.decode()
    assert "3 of 11 met" in body
    assert "80.0 %" in body and "4 of 5 tool calls checked against a contract" in body
    assert f"{reverse('controls')}?project={corpus.slug}" in body


def test_the_agents_own_page_shows_the_checklist(client_logged_in, corpus):
    response = client_logged_in.get(
        reverse("agent-compare"), {"project": corpus.slug, "agent": "alpha"}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="production-readiness"' in body
    assert "33.3 %" in body and "side-effecting calls carry agentops.idempotency_key" in body
    assert 'id="readiness-policy_in_reasoning"' in body


def test_a_promotion_criterion_can_require_readiness_items(client_logged_in, corpus):
    criteria = PromotionCriteria.objects.create(
        project=corpus,
        agent="alpha",
        from_phase="bounded",
        to_phase="expanded",
        min_runs=1,
        max_exception_rate=Decimal(100),
        max_intervention_rate=Decimal(100),
        require_no_kpi_regression=False,
        window_days=7,
        require_readiness=["budget", "no_rollback"],
    )
    response = client_logged_in.get(reverse("agents"), {"project": corpus.slug, "days": "14"})
    (readiness,) = {r["agent"]: r for r in response.context["rows"]}["alpha"]["readiness"]
    assert readiness.ready, [(c.name, c.evidence) for c in readiness.checks]

    criteria.require_readiness = ["budget", "contracts", "no_such_item"]
    criteria.save()
    response = client_logged_in.get(reverse("agents"), {"project": corpus.slug})
    (readiness,) = {r["agent"]: r for r in response.context["rows"]}["alpha"]["readiness"]
    unmet = {c.name: c.evidence for c in readiness.checks if not c.met}
    assert not readiness.ready
    assert unmet == {
        ITEMS["contracts"]: "4 of 5 tool calls checked against a contract (80.0 %)",
        "Readiness: no_such_item": "not evaluated",
    }


def test_the_api_answers_the_checklist(client_logged_in, corpus):
    response = client_logged_in.get(
        "/api/agents/readiness/", {"project": corpus.slug, "agent": "alpha", "days": "7"}
    )
    assert response.status_code == 200, response.content
    (agent,) = response.json()["agents"]
    items = {i["key"]: i for i in agent["items"]}
    assert agent["agent"] == "alpha"
    assert (items["idempotency"]["numerator"], items["idempotency"]["denominator"]) == (1, 3)
    assert items["idempotency"]["percent"] == 33.3
    assert items["unversioned_prompts"]["kind"] == "anti_pattern"
    assert items["contracts"]["url"].startswith(reverse("controls"))


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"project": "acme-support", "days": "0"},
        {"project": "acme-support", "days": "91"},
        {"project": "acme-support", "days": "7x"},
        {"project": "acme-support", "days": "٣"},
        {"project": "acme-support", "agent": "a" * 201},
        {"project": "acme-support", "agent": "a\x00b"},
    ],
)
def test_the_api_refuses_bad_input_with_a_400(client_logged_in, corpus, params):
    response = client_logged_in.get("/api/agents/readiness/", params)
    assert response.status_code == 400, response.content


def test_the_api_and_pages_are_scoped_and_need_a_login(client, outsider_client, corpus):
    url = "/api/agents/readiness/"
    assert outsider_client.get(url, {"project": corpus.slug}).status_code == 404
    assert client.get(url, {"project": corpus.slug}).status_code in (401, 403)
    page = client.get(reverse("agents"), {"project": corpus.slug})
    assert page.status_code == 302
    # The outsider's own alpha never shows this project's figures.
    response = outsider_client.get(url, {"project": "other-team"})
    (alpha,) = [a for a in response.json()["agents"] if a["agent"] == "alpha"]
    items = {i["key"]: i for i in alpha["items"]}
    assert items["contracts"]["denominator"] == 10
    assert items["escalation"]["met"] is False  # no rule in that project
