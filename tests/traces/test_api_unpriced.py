"""A trace whose model calls had no known price has `cost_usd` null in the API, never
"0.0000000000"; its spans' costs are null too."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.factories import agent_run

pytestmark = pytest.mark.django_db


def test_an_unpriced_trace_has_a_null_cost(client_logged_in, project):
    unpriced_id, _ = agent_run(project=project, model="no-price-llm")
    priced_id, _ = agent_run(project=project)

    listed = {t["trace_id"]: t for t in client_logged_in.get("/api/traces/").json()["results"]}
    detail = client_logged_in.get(f"/api/traces/{unpriced_id}/").json()

    assert listed[unpriced_id]["cost_usd"] is None and listed[unpriced_id]["unpriced_count"] == 2
    assert detail["cost_usd"] is None
    llm_spans = [s for s in detail["spans"] if s["model"]]
    assert llm_spans and all(s["cost_usd"] is None for s in llm_spans)
    assert all(s["cost_source"] == "unpriced" for s in llm_spans)
    assert Decimal(listed[priced_id]["cost_usd"]) > 0


def test_the_schema_says_the_cost_may_be_null(client_logged_in):
    schema = client_logged_in.get("/api/schema/?format=json").json()

    assert schema["components"]["schemas"]["Trace"]["properties"]["cost_usd"]["nullable"] is True
