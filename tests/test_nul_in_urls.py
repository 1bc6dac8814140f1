"""A NUL character in a URL's path or query string is a clear 400 on every page and API
endpoint, not a PostgreSQL error inside whichever filter reads it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

PATHS = [
    "/traces/",
    "/agents/compare/",
    "/budgets/",
    "/alerts/",
    "/api/traces/",
    "/api/budgets/",
    "/api/alerts/",
    "/api/cost/",
    "/api/contracts/",
    "/api/controls/violations/",
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("param", ["project", "agent", "session", "q"])
def test_a_nul_in_the_query_string_is_a_400(client_logged_in, project, path, param):
    client_logged_in.raise_request_exception = False
    response = client_logged_in.get(f"{path}?project={project.slug}&{param}=a%00b")
    assert response.status_code == 400
    assert b"NUL" in response.content


def test_the_api_answers_json_and_pages_plain_text(client_logged_in):
    assert client_logged_in.get("/api/traces/?q=%00").json()["detail"].startswith("A NUL")
    page = client_logged_in.get("/traces/%00/")
    assert page.status_code == 400 and page["Content-Type"].startswith("text/plain")


def test_ordinary_queries_pass(client_logged_in, project):
    assert client_logged_in.get(f"/traces/?project={project.slug}&q=refund").status_code == 200
