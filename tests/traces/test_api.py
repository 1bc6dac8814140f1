"""GET /api/traces/ and /api/traces/<trace_id>/, by login session or project key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from tests.factories import agent_run
from traces.services import ingest_key_create

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)

LIST_FIELDS = {
    "trace_id",
    "name",
    "agent",
    "started_at",
    "duration_ms",
    "span_count",
    "error_count",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "status",
}
SPAN_FIELDS = {
    "span_id",
    "parent_span_id",
    "name",
    "step",
    "started_at",
    "duration_ms",
    "status",
    "model",
    "tool",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "cost_source",
    "attributes",
}


def test_the_list_has_the_documented_fields_newest_first(client_logged_in, project):
    older, _ = agent_run(project=project, start=T0)
    newer, _ = agent_run(project=project, start=T0 + timedelta(minutes=5))

    body = client_logged_in.get("/api/traces/").json()

    assert body["count"] == 2
    assert [t["trace_id"] for t in body["results"]] == [newer, older]
    assert set(body["results"][0]) >= LIST_FIELDS
    assert Decimal(body["results"][0]["cost_usd"]) > 0


def test_the_list_filters_like_the_page(client_logged_in, project):
    agent_run(project=project, start=T0, agent="a")
    failed, _ = agent_run(project=project, start=T0, agent="b", error=True)
    session, _ = agent_run(project=project, start=T0 + timedelta(hours=2), session_id="s-9")

    def ids(query):
        response = client_logged_in.get("/api/traces/?" + query)
        assert response.status_code == 200, response.content
        return {t["trace_id"] for t in response.json()["results"]}

    assert ids("agent=b") == {failed}
    assert ids("status=error") == {failed}
    assert ids("session=s-9") == {session}
    assert ids("since=2026-11-02T10:00:00Z") == {session}
    assert ids("until=2026-11-02T10:00:00%2B00:00") == ids("status=error") | ids("agent=a")
    assert ids(f"q={failed[:12]}") == {failed}
    assert ids("min_cost=1000") == set()


def test_bad_filters_are_a_400_naming_the_problem(client_logged_in):
    response = client_logged_in.get("/api/traces/?status=weird&min_cost=abc")
    assert response.status_code == 400
    errors = " ".join(response.json()["filters"])
    assert "status" in errors and "min_cost" in errors


def test_the_detail_has_the_trace_and_its_spans(client_logged_in, project):
    trace_id, spans = agent_run(project=project, start=T0, tools=2)

    body = client_logged_in.get(f"/api/traces/{trace_id}/").json()

    assert body["trace_id"] == trace_id
    assert len(body["spans"]) == len(spans)
    assert set(body["spans"][0]) >= SPAN_FIELDS
    assert body["spans"][0]["parent_span_id"] == ""  # the root starts first
    tools = [s for s in body["spans"] if s["step"] == "tool"]
    assert [t["tool"] for t in tools] == ["lookup_order", "lookup_order"]


def test_a_project_key_reads_its_own_project_only(project, other_project):
    mine, _ = agent_run(project=project, start=T0)
    theirs, _ = agent_run(project=other_project, start=T0)
    secret = ingest_key_create(project=project).secret
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")

    listed = {t["trace_id"] for t in client.get("/api/traces/").json()["results"]}
    assert listed == {mine}
    assert client.get(f"/api/traces/{mine}/").status_code == 200
    assert client.get(f"/api/traces/{theirs}/").status_code == 404


def test_another_projects_trace_is_a_404(outsider_client, project):
    trace_id, _ = agent_run(project=project, start=T0)
    assert outsider_client.get(f"/api/traces/{trace_id}/").status_code == 404
    assert outsider_client.get("/api/traces/").json()["count"] == 0


def test_anonymous_and_bad_keys_get_401(db):
    assert Client().get("/api/traces/").status_code == 401
    response = Client(HTTP_AUTHORIZATION="Bearer ak_nope").get("/api/traces/")
    assert response.status_code == 401


def test_the_list_is_paginated(client_logged_in, project):
    ids = [agent_run(project=project, start=T0 + timedelta(seconds=i))[0] for i in range(3)]

    first = client_logged_in.get("/api/traces/?page_size=2").json()
    second = client_logged_in.get(first["next"]).json()

    assert first["count"] == 3
    assert [t["trace_id"] for t in first["results"] + second["results"]] == ids[::-1]
    assert second["next"] is None


def test_the_openapi_schema_is_served(client_logged_in):
    response = client_logged_in.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json() if "json" in response["Content-Type"] else None
    text = response.content.decode()
    assert "/api/traces/{trace_id}/" in text
    assert schema is None or "paths" in schema


def test_the_list_sorts_by_cost_or_duration(client_logged_in, project):
    cheap, _ = agent_run(project=project, start=T0, tools=0)
    pricey, _ = agent_run(project=project, start=T0 - timedelta(hours=1), tools=3)
    from traces.models import Trace

    Trace.objects.filter(trace_id=pricey).update(cost_usd=Decimal("9"), duration_ms=1)
    Trace.objects.filter(trace_id=cheap).update(cost_usd=Decimal("1"), duration_ms=99_999)

    def order(name):
        body = client_logged_in.get(f"/api/traces/?order={name}").json()
        return [t["trace_id"] for t in body["results"]]

    assert order("newest") == [cheap, pricey]
    assert order("cost") == [pricey, cheap]
    assert order("duration") == [cheap, pricey]
    bad = client_logged_in.get("/api/traces/?order=random")
    assert bad.status_code == 400
    assert "order" in " ".join(bad.json()["filters"])
