"""Contract checks on the trace timeline: a badge on each checked span with the reason, in
the waterfall's data and in the span panel; spans not yet checked have none."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from controls.checks import contract_checks_run
from tests.controls.test_checks import register, tool_span
from tests.factories import new_trace_id
from traces import annotations
from traces.annotations import SpanBadge, span_badges
from traces.ingest import span_batch_ingest
from traces.models import Trace

XHR = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}


def _badges(response) -> dict:
    return response.context["timeline"].payload["badges"]


@pytest.fixture
def run(project):
    register(project)
    trace_id = new_trace_id()
    start = datetime.now(UTC) - timedelta(minutes=1)
    spans = [
        tool_span(trace_id, "refund_order", start=start, args='{"order_id": 7, "amount": 1}'),
        tool_span(trace_id, "refund_order", start=start, **{"agentops.idempotency_key": "k"}),
        tool_span(trace_id, "lookup_order", start=start),
    ]
    span_batch_ingest(project_id=project.pk, spans=spans)
    bad, good, unknown = (s.span_id for s in spans)
    return trace_id, bad, good, unknown


def test_unchecked_spans_have_no_badge(client_logged_in, project, run):
    trace_id = run[0]
    response = client_logged_in.get(reverse("trace-timeline", args=[project.slug, trace_id]))
    assert _badges(response) == {}


def test_each_checked_span_gets_its_verdict(client_logged_in, project, run):
    trace_id, bad, good, unknown = run
    contract_checks_run()
    response = client_logged_in.get(reverse("trace-timeline", args=[project.slug, trace_id]))
    badges = _badges(response)
    assert badges[good] == [["contract ✓", "ok", "Matches the contract refund_order 1.1.0."]]
    assert badges[bad][0][:2] == ["contract ✗ arguments invalid", "danger"]
    assert badges[bad][0][2].startswith("Arguments invalid at /order_id: 7 is not of type")
    assert badges[unknown][0][:2] == ["no contract", "info"]
    # The data reaches the page's script as JSON.
    data = json.loads(
        response.content.decode()
        .split('id="waterfall-data" type="application/json">')[1]
        .split("</script>")[0]
    )
    assert data["badges"][bad][0][0] == "contract ✗ arguments invalid"


def test_the_span_panel_spells_out_the_reason(client_logged_in, project, run):
    trace_id, bad, _, _ = run
    contract_checks_run()
    url = reverse("span-detail", args=[project.slug, trace_id, bad])
    page = client_logged_in.get(url, **XHR).content.decode()
    assert "contract ✗ arguments invalid" in page
    assert "Arguments invalid at /order_id: 7 is not of type" in page
    assert "Tool contract" in page


def test_a_failing_provider_is_skipped_not_fatal(project, run, monkeypatch):
    def broken(*, trace, span_ids=None):
        raise RuntimeError("boom")

    def fine(*, trace, span_ids=None):
        return {"s1": [SpanBadge("x", "info", "why")]}

    monkeypatch.setattr(annotations, "_providers", [broken, fine])
    trace = Trace.objects.get(trace_id=run[0])
    assert span_badges(trace=trace) == {"s1": [SpanBadge("x", "info", "why")]}
