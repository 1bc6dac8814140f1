"""A full trace id typed in the trace list's search opens that trace."""

from __future__ import annotations

import pytest

from tests.factories import MembershipFactory, ProjectFactory, agent_run

pytestmark = pytest.mark.django_db


def test_a_full_trace_id_opens_the_trace(client_logged_in, project):
    trace_id, _ = agent_run(project=project)

    response = client_logged_in.get("/traces/", {"q": f"  {trace_id.upper()} "})

    assert response.status_code == 302
    assert response["Location"] == f"/p/{project.slug}/traces/{trace_id}/"


def test_a_prefix_or_words_still_search_the_list(client_logged_in, project):
    trace_id, _ = agent_run(project=project)

    for q in (trace_id[:8], "support"):
        response = client_logged_in.get("/traces/", {"q": q})
        assert response.status_code == 200
        assert trace_id in response.content.decode()


def test_another_projects_trace_id_is_not_opened(client_logged_in, other_project):
    trace_id, _ = agent_run(project=other_project)

    response = client_logged_in.get("/traces/", {"q": trace_id})

    assert response.status_code == 200
    assert f"/traces/{trace_id}/" not in response.content.decode()


def test_an_id_in_two_of_the_users_projects_lists_both(client_logged_in, project, user):
    second = ProjectFactory(slug="second", name="Second")
    MembershipFactory(project=second, user=user)
    trace_id, _ = agent_run(project=project)
    agent_run(project=second, store=True)
    from traces.models import Trace

    Trace.objects.filter(project=second).update(trace_id=trace_id)

    response = client_logged_in.get("/traces/", {"q": trace_id})
    assert response.status_code == 200
    html = response.content.decode()
    assert f"/p/{project.slug}/traces/{trace_id}/" in html
    assert f"/p/second/traces/{trace_id}/" in html

    narrowed = client_logged_in.get("/traces/", {"q": trace_id, "project": "second"})
    assert narrowed["Location"] == f"/p/second/traces/{trace_id}/"
