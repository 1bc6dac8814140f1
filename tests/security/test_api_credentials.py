"""Every API endpoint, each listed by GET /api/, takes the same credentials: a login
session, HTTP Basic and a personal token answer alike; none is a 401; a project key is
accepted everywhere (the runtime endpoints take nothing else)."""

from __future__ import annotations

import base64
import re

import pytest
from django.test import Client

from console.api import api_endpoints
from tests.factories import agent_run
from traces.tokens import personal_token_create

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"  # tests.factories.UserFactory
PATHS = {name: re.sub(r"\{\w+\}", "1", path) for name, path in api_endpoints().items()}


def clients(user, ingest_secret) -> dict[str, Client]:
    session = Client()
    session.force_login(user)
    basic = base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode()
    token = personal_token_create(user=user).secret
    return {
        "session": session,
        "basic": Client(headers={"Authorization": f"Basic {basic}"}),
        "token": Client(headers={"Authorization": f"Token {token}"}),
        "key": Client(headers={"Authorization": f"Bearer {ingest_secret}"}),
    }


def test_the_list_covers_the_api():
    assert len(PATHS) >= 25 and "trace-list" in PATHS and "budget-list" in PATHS


@pytest.mark.parametrize("name", sorted(PATHS))
def test_every_credential_is_accepted(name, user, project, ingest_secret):
    agent_run(project=project)
    path = PATHS[name] + (f"?project={project.slug}" if "?" not in PATHS[name] else "")

    answers = {kind: c.get(path).status_code for kind, c in clients(user, ingest_secret).items()}

    assert 401 not in answers.values(), answers
    assert answers["session"] == answers["basic"] == answers["token"], answers
    assert Client().get(path).status_code == 401
