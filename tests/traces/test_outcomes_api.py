"""POST /api/outcomes/: validation, idempotency, unknown runs reported, project scoping."""

import pytest
from django.test import Client

from tests.factories import agent_run
from traces.models import Membership, Outcome
from traces.services import ingest_key_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def key_client(project):
    return Client(HTTP_AUTHORIZATION=f"Bearer {ingest_key_create(project=project).secret}")


def post(client, body):
    return client.post("/api/outcomes/", body, content_type="application/json")


def test_it_stores_outcomes_and_updates_them_when_posted_again(key_client, project):
    trace_id, _ = agent_run(project=project)
    body = {"outcomes": [{"trace_id": trace_id, "name": "resolved", "value": True}]}

    first = post(key_client, body)
    again = post(
        key_client, {"outcomes": [{"trace_id": trace_id.upper(), "name": "resolved", "value": 0}]}
    )

    assert first.status_code == 200
    assert first.json() == {"created": 1, "updated": 0, "unknown_trace_ids": []}
    assert again.json() == {"created": 0, "updated": 1, "unknown_trace_ids": []}
    outcome = Outcome.objects.get()
    assert (outcome.value, outcome.kind, outcome.source) == (0.0, "kpi", "api")


def test_unknown_trace_ids_are_reported_not_dropped_silently(key_client, project):
    trace_id, _ = agent_run(project=project)
    unknown = "f" * 32
    response = post(
        key_client,
        [
            {
                "trace_id": trace_id,
                "name": "csat",
                "value": 4.5,
                "recorded_at": "2026-11-02T10:00Z",
            },
            {"trace_id": unknown, "name": "csat", "value": 3},
        ],
    )
    assert response.json() == {"created": 1, "updated": 0, "unknown_trace_ids": [unknown]}
    assert Outcome.objects.get().recorded_at.isoformat() == "2026-11-02T10:00:00+00:00"


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"trace_id": "xyz", "name": "csat", "value": 1}, "trace_id"),
        ({"trace_id": "a" * 32, "name": "not a slug!", "value": 1}, "name"),
        ({"trace_id": "a" * 32, "name": "csat", "value": "high"}, "value"),
        ({"trace_id": "a" * 32, "name": "csat", "value": 1, "kind": "vibe"}, "kind"),
        ({"trace_id": "a" * 32, "name": "csat", "value": 1, "recorded_at": "soon"}, "recorded_at"),
    ],
)
def test_bad_items_are_a_400_naming_the_field(key_client, item, field):
    response = post(key_client, {"outcomes": [item]})
    assert response.status_code == 400
    errors = response.json()["outcomes"]  # per item, keyed by its position
    assert field in (errors["0"] if isinstance(errors, dict) else errors[0])
    assert not Outcome.objects.exists()


def test_an_empty_or_oversized_batch_is_refused(key_client):
    assert post(key_client, {"outcomes": []}).status_code == 400
    many = [{"trace_id": "a" * 32, "name": "n", "value": 1}] * 1001
    assert post(key_client, {"outcomes": many}).status_code == 400


def test_a_key_writes_only_to_its_own_project(key_client, project, other_project):
    theirs, _ = agent_run(project=other_project)
    response = post(key_client, [{"trace_id": theirs, "name": "csat", "value": 5}])
    assert response.json()["unknown_trace_ids"] == [theirs]
    refused = post(
        key_client,
        {
            "project": other_project.slug,
            "outcomes": [{"trace_id": theirs, "name": "x", "value": 1}],
        },
    )
    assert refused.status_code == 403
    assert not Outcome.objects.exists()


def test_project_admins_may_post_with_their_session_viewers_may_not(
    client_logged_in, user, project
):
    trace_id, _ = agent_run(project=project)
    body = {"project": project.slug, "outcomes": [{"trace_id": trace_id, "name": "n", "value": 1}]}
    assert post(client_logged_in, body).status_code == 200
    Membership.objects.filter(user=user).update(role="viewer")
    assert post(client_logged_in, body).status_code == 403


def test_anonymous_is_401():
    assert post(Client(), {"outcomes": []}).status_code == 401
