"""Error pages look like the console: 404, 403, the CSRF refusal, 500 and 503 carry the
navigation; 500 and 503 are drawn without the database; under /api/ they are JSON."""

from __future__ import annotations

import sys

import pytest
from django.db import connection
from django.test import Client, RequestFactory

from agentops_site.outage import server_error
from tests.factories import MembershipFactory, UserFactory
from tests.test_outage import database_down, server_client
from traces.models import Membership

NAV = '<nav aria-label="Main">'


def _page(response) -> str:
    html = response.content.decode()
    assert "console.css" in html and "errors.css" in html
    return html


@pytest.mark.django_db
def test_a_missing_page_is_the_consoles_404_with_navigation(client_logged_in):
    response = client_logged_in.get("/no/such/page/")

    assert response.status_code == 404
    html = _page(response)
    assert NAV in html and "There is no page here" in html
    assert "/no/such/page/" in html
    assert 'class="who">ada<' in html  # the user's own header, projects included


@pytest.mark.django_db
def test_a_missing_page_for_a_visitor_offers_the_login(client):
    response = client.get("/no/such/page/")

    assert response.status_code == 404
    html = _page(response)
    assert NAV not in html and 'href="/accounts/login/"' in html


@pytest.mark.django_db
def test_a_missing_api_address_is_json(client_logged_in):
    response = client_logged_in.get("/api/no-such-endpoint/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


@pytest.mark.django_db
def test_a_refused_action_is_the_consoles_403_with_navigation(project):
    viewer = UserFactory(username="vic")
    MembershipFactory(project=project, user=viewer, role=Membership.Role.VIEWER)
    client = Client()
    client.force_login(viewer)

    response = client.post(f"/controls/contracts/?project={project.slug}", {"tool": "x"})

    assert response.status_code == 403
    html = _page(response)
    assert NAV in html and "Your account may not do this" in html


@pytest.mark.django_db
def test_a_form_without_its_csrf_token_is_the_consoles_page(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.post("/accounts/logout/")

    assert response.status_code == 403
    html = _page(response)
    assert NAV in html and "This form has expired" in html
    assert "Nothing was changed" in html


@pytest.mark.django_db
def test_an_error_in_a_page_is_the_consoles_500(client_logged_in, monkeypatch):
    import console.views

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(console.views, "render", broken)
    client = server_client()
    client.cookies = client_logged_in.cookies

    response = client.get("/overview/")

    assert response.status_code == 500
    html = _page(response)
    assert NAV in html and "Something went wrong on our side" in html
    assert "boom" not in html


@pytest.mark.django_db
def test_an_error_under_the_api_is_json():
    request = RequestFactory().get("/api/traces/")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        response = server_error(request)

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"


@pytest.mark.django_db(transaction=True)
def test_the_500_page_is_drawn_while_the_database_is_down():
    request = RequestFactory().get("/overview/")
    queries: list[str] = []

    def no_database(execute, sql, params, many, context):
        queries.append(sql)
        raise AssertionError("the 500 page queried the database")

    with database_down(), connection.execute_wrapper(no_database):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            assert sys.exc_info()[1] is not None
            response = server_error(request)

    assert response.status_code == 500 and queries == []
    html = response.content.decode()
    assert NAV in html and "Something went wrong on our side" in html
    assert "Log out" not in html  # no user is loaded


@pytest.mark.django_db(transaction=True)
def test_the_outage_page_has_the_navigation(user):
    client = server_client(user)

    with database_down():
        response = client.get("/traces/")

    assert response.status_code == 503
    html = _page(response)
    assert NAV in html and "temporarily unavailable" in html
    assert '<meta http-equiv="refresh"' in html
    assert "<style>" not in html
