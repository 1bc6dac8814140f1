"""The Overview answers "is anything wrong?": today's standout runs, the latest alerts, what
waits for a person, trends with axes, and no "0 runs" while the run figures warm up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from budgets.models import Alert, BudgetEnvelope
from controls.models import ReviewItem
from tests.factories import llm_attrs, new_trace_id, raw_span
from traces.ingest import span_batch_ingest

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)


def run(project, *, name, seconds, error=False, model_calls=1, agent="support"):
    trace_id = new_trace_id()
    start = max(NOW - timedelta(minutes=30), NOW.replace(hour=0, minute=0, second=1))
    spans = [
        raw_span(
            trace_id=trace_id,
            span_id=f"{i + 1:016x}",
            parent_span_id="a" * 16,
            name="chat",
            start=start,
            duration_ms=10,
            attributes=llm_attrs(model="gpt-4o", input_tokens=1000 * model_calls),
        )
        for i in range(model_calls)
    ]
    spans.append(
        raw_span(
            trace_id=trace_id,
            span_id="a" * 16,
            name=name,
            start=start,
            duration_ms=seconds * 1000,
            status_code=2 if error else 0,
            attributes={"gen_ai.agent.name": agent},
        )
    )
    span_batch_ingest(project_id=project.pk, spans=spans)
    return trace_id


def test_todays_standout_runs_alerts_and_queue(client_logged_in, project):
    cheap = run(project, name="quick answer", seconds=1)
    costly = run(project, name="long research", seconds=2, model_calls=20)
    slow = run(project, name="slow lookup", seconds=90)
    failed = run(project, name="broken refund", seconds=3, error=True)
    envelope = BudgetEnvelope.objects.create(
        project=project, name="Daily spend", metric="cost", limit=Decimal("1"), period="day"
    )
    Alert.objects.create(
        envelope=envelope,
        project=project,
        kind=Alert.Kind.THRESHOLD,
        threshold=100,
        period_start=NOW - timedelta(hours=1),
        period_end=NOW + timedelta(hours=1),
        value=Decimal("1.5"),
        limit=Decimal("1"),
        message="over",
        created_at=NOW,
    )
    ReviewItem.objects.create(
        project=project,
        source=ReviewItem.Source.HIGH_RISK,
        agent="support",
        tool="issue_refund",
        risk="high",
        created_at=NOW - timedelta(hours=2),
        sla_due_at=NOW - timedelta(hours=1),
    )
    response = client_logged_in.get(reverse("overview"), {"project": project.slug})
    assert response.status_code == 200
    lists = {
        item["id"]: [t.trace_id for t in item["runs"]] for item in response.context["runs"]["lists"]
    }
    assert lists["costliest"][0] == costly
    assert lists["slowest"][0] == slow and cheap in lists["slowest"]
    assert lists["failed"] == [failed]
    html = response.content.decode()
    assert 'id="recent-alerts"' in html and "Daily spend" in html
    assert "1</strong> waiting" in html and "1 past SLA" in html
    assert response.context["runs"]["received"] == 4
    # No run rollup yet: the runs card says the figures are warming up, not "0".
    assert 'id="runs-warming"' in html and "4 received" in html
    # The trends have axes.
    figure = response.context["cards"][0]["figure"]
    assert (
        figure["layout"]["xaxis"].get("visible", True)
        and figure["layout"]["yaxis"]["tickprefix"] == "$"
    )


def test_an_empty_project_says_so(client_logged_in, project):
    html = client_logged_in.get(reverse("overview"), {"project": project.slug}).content.decode()
    assert 'id="queue-empty"' in html and 'id="alerts-empty"' in html
    assert "No failed run today." in html and 'id="runs-warming"' not in html
