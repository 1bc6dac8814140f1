"""The cost series never reads an unknown cost as $0: a bucket or group whose model calls
had no known price has `cost_usd` null."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.factories import agent_run
from traces.rollups import bucket_floor, rollup_pending

pytestmark = pytest.mark.django_db


def test_an_unpriced_bucket_has_a_null_cost(client_logged_in, project):
    start = bucket_floor(datetime.now(UTC)) - timedelta(hours=3)
    agent_run(project=project, agent="priced", start=start)
    agent_run(
        project=project, agent="unpriced", model="no-price-llm", start=start + timedelta(hours=1)
    )
    rollup_pending()
    since = (start - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    body = client_logged_in.get(f"/api/cost/?since={since}&bucket=1h&group_by=agent").json()

    priced, unpriced = (
        next(b for b in body["buckets"] if b["runs"] and b["groups"][0]["key"] == agent)
        for agent in ("priced", "unpriced")
    )
    assert Decimal(priced["cost_usd"]) > 0 and priced["unpriced"] == 0
    assert unpriced["cost_usd"] is None and unpriced["unpriced"] == 2
    assert unpriced["groups"][0]["cost_usd"] is None
    groups = {g["key"]: g for g in body["groups"]}
    assert groups["unpriced"]["cost_usd"] is None
    # Priced and unpriced calls together: the priced part, with the unpriced count beside.
    assert Decimal(body["totals"]["cost_usd"]) == Decimal(priced["cost_usd"])
    assert body["totals"]["unpriced"] == 2
    # A bucket with nothing in it cost nothing.
    empty = next(b for b in body["buckets"] if not b["runs"])
    assert empty["cost_usd"] == "0.0000000000"
