"""The phase the console declares for an agent: changed on the agent's page (admins), each
change audited (who, when, from which phase to which), used at once by every later policy
decision; "paused" denies every check without evaluating the policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.sites import site
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client, RequestFactory
from django.urls import reverse

from controls import policies
from controls.models import PolicyDecision
from controls.policies import policy_check, policy_version_create
from rollouts.models import AgentPhase, RunRollup
from rollouts.selectors import agent_phase_history
from rollouts.services import agent_phase_set
from tests.factories import MembershipFactory, UserFactory
from traces.models import Membership, Phase

pytestmark = pytest.mark.django_db

POLICIES = """
@id("refunds-when-bounded")
permit(principal, action == Action::"call_tool", resource == Tool::"refund_order")
when { principal.phase == "bounded" || principal.phase == "expanded" };
"""
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def bounded(project):
    return AgentPhase.objects.create(
        project=project, agent="support", phase="bounded", since=LONG_AGO, set_by="grace"
    )


@pytest.fixture
def gated(project, bounded):
    return policy_version_create(project=project, text=POLICIES, created_by="ada")


@pytest.fixture
def viewer_client(project):
    viewer = UserFactory(username="vic")
    MembershipFactory(project=project, user=viewer, role=Membership.Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    return client


def agent_url(project, agent="support"):
    return f"{reverse('agent-compare')}?project={project.slug}&agent={agent}"


def decide(project, **fields):
    return policy_check(project_id=project.pk, agent="support", tool="refund_order", **fields)


# ------------------------------------------------------------------ the service


def test_paused_is_one_of_the_shared_phases():
    assert Phase.PAUSED == "paused"
    assert ("paused", Phase.PAUSED.label) in AgentPhase._meta.get_field("phase").choices


def test_a_change_records_who_when_and_from_which_phase(project, bounded):
    before = datetime.now(UTC)
    row = agent_phase_set(
        project=project, agent="support", phase="shadow", by="ada", note="bad refunds"
    )
    assert (row.phase, row.set_by, row.note) == ("shadow", "ada", "bad refunds")
    assert before <= row.since <= datetime.now(UTC) and before <= row.created_at
    read = agent_phase_history(project=project, agent="support")
    assert read["current"] == "shadow"
    assert [(h["from_phase"], h["to_phase"], h["set_by"]) for h in read["history"]] == [
        ("bounded", "shadow", "ada"),
        ("", "bounded", "grace"),
    ]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"phase": "boss"}, "phase"),
        ({"phase": "human"}, "phase"),
        ({"phase": "bounded"}, "phase"),  # already
        ({"phase": "shadow", "agent": ""}, "agent"),
        ({"phase": "shadow", "agent": "a" * 201}, "agent"),
        ({"phase": "shadow", "note": "n" * 301}, "note"),
        ({"phase": "shadow", "note": "a\x00b"}, "note"),
    ],
)
def test_a_bad_change_is_refused_by_field(project, bounded, fields, field):
    with pytest.raises(ValidationError) as caught:
        agent_phase_set(project=project, **{"agent": "support", "by": "ada", **fields})
    assert field in caught.value.message_dict
    assert AgentPhase.objects.count() == 1


# ------------------------------------------------------------------ the decisions


def test_a_demotion_changes_the_very_next_decision(project, gated):
    first = decide(project, amount=Decimal("10"), phase="bounded")
    assert (first.decision, first.phase) == ("allow", "bounded")
    agent_phase_set(project=project, agent="support", phase="shadow", by="ada")
    after = decide(project, amount=Decimal("10"), phase="bounded")  # the claim changes nothing
    assert (after.decision, after.phase) == ("deny", "shadow")
    agent_phase_set(project=project, agent="support", phase="bounded", by="ada")
    assert decide(project).decision == "allow"


def test_a_paused_agent_is_denied_without_evaluating_the_policies(project, gated, monkeypatch):
    def boom(**kwargs):
        raise AssertionError("Cedar evaluated for a paused agent")

    monkeypatch.setattr(policies, "policy_evaluate", boom)
    agent_phase_set(project=project, agent="support", phase="paused", by="ada", note="incident")
    answer = decide(project, phase="expanded")
    assert (answer.decision, answer.reason, answer.policy_ids) == ("deny", "agent paused", [])
    row = PolicyDecision.objects.get(public_id=answer.decision_id)
    assert (row.decision, row.reason, row.phase, row.claimed_phase) == (
        "deny",
        "agent paused",
        "paused",
        "expanded",
    )
    assert row.policy_version == gated.number


def test_a_paused_agent_is_denied_as_paused_even_with_no_policy(project, bounded):
    agent_phase_set(project=project, agent="support", phase="paused", by="ada")
    assert decide(project).reason == "agent paused"


def test_the_check_api_follows_a_demotion_made_on_the_page(
    client_logged_in, project, gated, ingest_secret
):
    agent = Client(headers={"Authorization": f"Bearer {ingest_secret}"})
    ask = {"agent": "support", "tool": "refund_order", "amount": "10", "phase": "bounded"}
    before = agent.post("/api/policy/check", ask, content_type="application/json").json()
    assert before["decision"] == "allow"
    response = client_logged_in.post(agent_url(project), {"phase": "paused", "note": "stop"})
    assert response.status_code == 302
    after = agent.post("/api/policy/check", ask, content_type="application/json").json()
    assert (after["decision"], after["reason"]) == ("deny", "agent paused")


# ------------------------------------------------------------------ the agent's page


def test_the_agent_page_shows_the_phase_the_form_and_the_history(
    client_logged_in, project, bounded
):
    RunRollup.objects.create(
        project=project, day=datetime.now(UTC).date(), agent="support", agent_version="2", runs=5
    )
    agent_phase_set(project=project, agent="support", phase="shadow", by="ada", note="refunds")
    response = client_logged_in.get(agent_url(project))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="declared-phase">shadow<' in body
    assert 'id="change-phase"' in body and "csrfmiddlewaretoken" in body
    labels = dict(response.context["phase_choices"])
    assert labels == {
        "bounded": "Promote to bounded",
        "expanded": "Promote to expanded",
        "paused": "Pause (it may not act)",
    }
    history = body[body.index('id="phase-history"') :]
    assert "bounded → <strong>shadow</strong>" in history and "ada" in history
    assert "none → <strong>bounded</strong>" in history and "grace" in history
    assert history.index("refunds") < history.index("grace")  # newest first


def test_an_admin_pauses_and_resumes_an_agent_on_its_page(client_logged_in, project, bounded):
    response = client_logged_in.post(agent_url(project), {"phase": "paused", "note": "incident"})
    assert response.status_code == 302 and response["Location"].endswith("#phase")
    row = AgentPhase.objects.filter(project=project, agent="support").latest("since")
    assert (row.phase, row.set_by, row.note) == ("paused", "ada", "incident")
    # No runs in the window: the page still shows the paused agent, so it can be resumed.
    page = client_logged_in.get(response["Location"].split("#")[0])
    assert page.status_code == 200
    body = page.content.decode()
    assert "support is now paused" in body
    assert 'id="no-runs"' in body
    assert dict(page.context["phase_choices"])["bounded"] == "Resume as bounded"
    assert client_logged_in.post(agent_url(project), {"phase": "bounded"}).status_code == 302
    assert agent_phase_history(project=project, agent="support")["current"] == "bounded"


def test_a_bad_change_on_the_page_is_a_400(client_logged_in, project, bounded):
    for data in (
        {"phase": "boss"},
        {"phase": "bounded"},
        {},
        {"phase": "shadow", "note": "n" * 400},
    ):
        response = client_logged_in.post(agent_url(project), data)
        assert response.status_code == 400, data
        assert 'id="phase-errors"' in response.content.decode()
    assert AgentPhase.objects.count() == 1


def test_a_member_sees_the_phase_but_cannot_change_it(viewer_client, project, bounded):
    body = viewer_client.get(agent_url(project)).content.decode()
    assert 'id="declared-phase">bounded<' in body and 'id="change-phase"' not in body
    assert viewer_client.post(agent_url(project), {"phase": "paused"}).status_code == 403
    assert AgentPhase.objects.count() == 1


def test_an_outsider_gets_404(outsider_client, project, bounded):
    assert outsider_client.get(agent_url(project)).status_code == 404
    assert outsider_client.post(agent_url(project), {"phase": "paused"}).status_code == 404
    assert AgentPhase.objects.count() == 1


def test_the_phase_form_is_csrf_protected(user, project, bounded):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(agent_url(project), {"phase": "paused"}).status_code == 403
    assert AgentPhase.objects.count() == 1


def test_an_unknown_agent_without_runs_or_phases_is_still_404(client_logged_in, project):
    assert client_logged_in.get(agent_url(project, "nobody")).status_code == 404


# ------------------------------------------------------------------ admin and migration


def test_the_admin_records_who_added_a_phase_and_never_edits_one(project, bounded):
    admin = site._registry[AgentPhase]
    staff = UserFactory(username="root", is_staff=True, is_superuser=True)
    request = RequestFactory().post("/")
    request.user = staff
    row = AgentPhase(project=project, agent="support", phase="paused", since=datetime.now(UTC))
    admin.save_model(request, row, form=None, change=False)
    assert AgentPhase.objects.get(pk=row.pk).set_by == "root"
    assert admin.has_change_permission(request) is True  # the list and the add form
    assert admin.has_change_permission(request, bounded) is False
    assert {"set_by", "created_at"} <= set(admin.get_readonly_fields(request, bounded))


@pytest.mark.django_db(transaction=True)
def test_phases_declared_before_the_audit_take_their_start_as_created_at():
    before = [("rollouts", "0001_initial")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    project = old.get_model("traces", "Project").objects.create(slug="p", name="P")
    since = datetime.now(UTC) - timedelta(days=40)
    old.get_model("rollouts", "AgentPhase").objects.create(
        project_id=project.pk, agent="a", phase="bounded", since=since
    )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    row = AgentPhase.objects.get(project_id=project.pk)
    assert (row.created_at, row.set_by) == (since, "")
