"""While the database is down, pages and the API answer a clear 503 with Retry-After (an
HTML page, a JSON body), whether the outage surfaces in a view or in the middleware
that loads the session and user before any view runs."""

from __future__ import annotations

from contextlib import contextmanager

import orjson
import pytest
from django.db import connection
from django.test import Client

from traces.services import ingest_key_create
from traces.tokens import personal_token_create

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def database_down():
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent-dir/agentops.sqlite3"
    else:
        connection.settings_dict["PORT"] = "1"  # nothing listens there
        connection.settings_dict.setdefault("OPTIONS", {}).pop("pool", None)
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def server_client(user=None) -> Client:
    # What a real server does: an exception becomes a response, it is not re-raised.
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    return client


def assert_retry_after(response) -> None:
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0


def test_a_page_answers_an_outage_page_when_the_session_cannot_be_loaded(user):
    client = server_client(user)

    with database_down():
        response = client.get("/traces/")

    assert_retry_after(response)
    assert response["Content-Type"].startswith("text/html")
    assert "temporarily unavailable" in response.content.decode()


def test_the_api_answers_json_when_the_session_cannot_be_loaded(user):
    client = server_client(user)

    with database_down():
        response = client.get("/api/traces/")

    assert_retry_after(response)
    assert response["Content-Type"] == "application/json"
    assert "database" in orjson.loads(response.content)["detail"]


@pytest.mark.parametrize("credential", ["key", "token"])
def test_the_api_answers_json_when_a_key_or_token_cannot_be_checked(user, credential):
    if credential == "key":
        secret = ingest_key_create(project=user.memberships.first().project).secret
        header = f"Bearer {secret}"
    else:
        header = f"Token {personal_token_create(user=user).secret}"

    with database_down():
        response = server_client().get("/api/traces/", HTTP_AUTHORIZATION=header)

    assert_retry_after(response)
    assert response["Content-Type"] == "application/json"


def test_logging_in_answers_the_outage_page(user):
    # The default test client re-raises anything that reaches Django's 500 handling: a
    # 503 here means the middleware answered the outage raised in the login view.
    with database_down():
        response = Client().post("/accounts/login/", {"username": "ada", "password": "secret"})

    assert_retry_after(response)
    assert "temporarily unavailable" in response.content.decode()


def test_the_login_page_itself_needs_no_database():
    with database_down():
        response = Client().get("/accounts/login/")

    assert response.status_code == 200


def test_healthz_says_when_to_ask_again():
    with database_down():
        response = server_client().get("/healthz")

    assert_retry_after(response)


def test_other_errors_stay_a_500(user, monkeypatch):
    from traces import views

    def broken(*args, **kwargs):
        raise RuntimeError("a bug, not an outage")

    monkeypatch.setattr(views, "trace_list_page", broken)
    monkeypatch.setattr(
        "django.urls.resolvers.URLResolver.resolve",
        _resolve_to(broken),
    )

    response = server_client(user).get("/traces/")

    assert response.status_code == 500
    assert not response.has_header("Retry-After")


def _resolve_to(view):
    from django.urls.resolvers import ResolverMatch

    def resolve(self, path):
        return ResolverMatch(view, (), {}, url_name="trace-list")

    return resolve
