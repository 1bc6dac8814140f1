"""Personal API tokens stored as SHA-256 digests, shown once, revocable; every API endpoint
takes the same credentials (project key, personal token, HTTP Basic, session)."""

from __future__ import annotations

import base64
import importlib
import re
from io import StringIO
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client

from tests.factories import UserFactory, agent_run
from traces.models import PersonalToken
from traces.services import key_hash
from traces.tokens import personal_token_create, personal_token_revoke

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"  # tests.factories.UserFactory
ENDPOINTS = ["/api/traces/", "/api/budgets/", "/api/alerts/", "/api/cost/"]


def token_client(secret: str) -> Client:
    return Client(headers={"Authorization": f"Token {secret}"})


@pytest.fixture
def staff_client():
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def _credentials(kind: str, *, user, ingest_secret) -> Client:
    if kind == "session":
        client = Client()
        client.force_login(user)
        return client
    if kind == "token":
        return token_client(personal_token_create(user=user).secret)
    if kind == "basic":
        raw = base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode()
        return Client(headers={"Authorization": f"Basic {raw}"})
    return Client(headers={"Authorization": f"Bearer {ingest_secret}"})


@pytest.mark.parametrize("kind", ["session", "token", "basic", "ingest key"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_endpoint_takes_every_credential(user, project, ingest_secret, kind, endpoint):
    agent_run(project=project)
    client = _credentials(kind, user=user, ingest_secret=ingest_secret)
    response = client.get(endpoint)
    assert response.status_code == 200, response.content
    if endpoint == "/api/traces/":
        assert response.json()["count"] == 1


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_without_credentials_every_endpoint_is_a_401(endpoint):
    response = Client().get(endpoint)
    assert response.status_code == 401 and response["WWW-Authenticate"]


def test_a_token_is_stored_only_as_its_hash(user):
    new = personal_token_create(user=user, name="ci")
    row = PersonalToken.objects.filter(pk=new.token.pk).values().get()
    assert new.secret not in {str(v) for v in row.values()}
    assert row["key_hash"] == key_hash(new.secret) and new.secret.startswith(row["prefix"])
    assert token_client(new.secret).get("/api/traces/").status_code == 200
    assert PersonalToken.objects.get().last_used_at is not None


def test_a_revoked_or_unknown_token_is_a_401(user):
    new = personal_token_create(user=user)
    personal_token_revoke(token=new.token)
    for secret in (new.secret, "at_nope", "x" * 1000):
        response = token_client(secret).get("/api/budgets/")
        assert response.status_code == 401
    assert Client(headers={"Authorization": "Token"}).get("/api/budgets/").status_code == 401
    assert Client(headers={"Authorization": "Token a b"}).get("/api/budgets/").status_code == 401


def test_an_inactive_users_token_is_a_401(user):
    new = personal_token_create(user=user)
    user.is_active = False
    user.save()
    assert token_client(new.secret).get("/api/budgets/").status_code == 401


def test_createtoken_prints_the_token_once_and_revoketoken_stops_it(user):
    out = StringIO()
    call_command("createtoken", "ada", "--name", "deploy", stdout=out)
    secret = out.getvalue().strip().splitlines()[-1]
    assert token_client(secret).get("/api/budgets/").status_code == 200
    assert PersonalToken.objects.get().name == "deploy"

    call_command("revoketoken", secret[:10], stdout=StringIO())
    assert token_client(secret).get("/api/budgets/").status_code == 401


def test_the_admin_shows_a_new_token_once_and_revokes_it(staff_client, user):
    response = staff_client.post(
        "/admin/traces/personaltoken/add/", {"user": user.pk, "name": "laptop"}, follow=True
    )
    secret = re.search(r"<code>(at_[\w-]+)</code>", response.content.decode()).group(1)
    token = PersonalToken.objects.get(name="laptop")
    assert token.key_hash == key_hash(secret)
    page = staff_client.get(f"/admin/traces/personaltoken/{token.pk}/change/").content.decode()
    assert secret not in page

    staff_client.post(
        "/admin/traces/personaltoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    assert token_client(secret).get("/api/budgets/").status_code == 401


def test_plain_tokens_are_converted_to_hashes_and_keep_working(user):
    """The migration that replaced rest_framework.authtoken, on a database that had it."""
    old_key = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"  # the form authtoken generated
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "created timestamp with time zone NOT NULL, user_id integer NOT NULL)"
            if connection.vendor == "postgresql"
            else "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "created datetime NOT NULL, user_id integer NOT NULL)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, %s, %s)",
            [old_key, "2025-01-02 03:04:05+00:00", user.pk],
        )
    migration = importlib.import_module("traces.migrations.0007_personal_tokens")
    migration.tokens_from_plain_table(apps, SimpleNamespace(connection=connection))

    assert "authtoken_token" not in connection.introspection.table_names()
    token = PersonalToken.objects.get()
    assert token.user == user and token.key_hash == key_hash(old_key)
    assert token.created_at.year == 2025
    assert token_client(old_key).get("/api/budgets/").status_code == 200


def test_the_plain_token_app_is_gone():
    assert "rest_framework.authtoken" not in settings.INSTALLED_APPS
    assert "authtoken_token" not in connection.introspection.table_names()
