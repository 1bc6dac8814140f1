"""Spans folded into 15-minute rollups exactly once, in the bucket of their start."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection  # noqa: F401 (read by the skipif condition)

from tests.concurrency import run_concurrently
from tests.factories import agent_run, llm_attrs, new_trace_id, raw_span
from traces.ingest import span_batch_ingest
from traces.models import IngestBatch, Rollup, Span, Trace
from traces.rollups import Histogram, bucket_floor, rollup_pending, rollup_rebuild
from traces.selectors import rollup_totals

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DAY = (T0 - timedelta(days=1), T0 + timedelta(days=1))


def totals(project):
    return rollup_totals(project_id=project.pk, start=DAY[0], end=DAY[1])


def test_it_folds_spans_into_totals_that_match_the_traces(project):
    for i in range(4):
        agent_run(project=project, start=T0 + timedelta(minutes=7 * i), tools=2, error=i == 3)

    result = rollup_pending()

    t = totals(project)
    traces = list(Trace.objects.filter(project=project))
    assert result.spans == Span.objects.count()
    assert t.trace_count == 4
    assert t.span_count == sum(tr.span_count for tr in traces)
    assert t.cost_usd == sum(tr.cost_usd for tr in traces)
    assert t.input_tokens == sum(tr.input_tokens for tr in traces)
    assert t.run_error_count == 1
    assert t.llm_call_count == 8
    assert IngestBatch.objects.count() == 0


def test_running_it_again_counts_nothing_twice(project):
    agent_run(project=project, start=T0)
    rollup_pending()
    before = totals(project)
    again = rollup_pending()
    assert (again.batches, again.spans) == (0, 0)
    assert totals(project) == before


def test_a_resent_batch_adds_nothing(project):
    _, spans = agent_run(project=project, start=T0, store=False)
    span_batch_ingest(project_id=project.pk, spans=spans)
    rollup_pending()
    span_batch_ingest(project_id=project.pk, spans=spans)
    rollup_pending()
    assert totals(project).span_count == len(spans)


def test_late_spans_land_in_the_bucket_of_their_start(project):
    trace_id = new_trace_id()
    early = T0 + timedelta(minutes=3)  # bucket 09:00
    late = T0 + timedelta(minutes=20)  # bucket 09:15
    span_batch_ingest(
        project_id=project.pk,
        spans=[raw_span(trace_id=trace_id, start=late, attributes=llm_attrs())],
    )
    rollup_pending()
    # Minutes later, a delayed batch with a span that started earlier.
    span_batch_ingest(
        project_id=project.pk,
        spans=[raw_span(trace_id=trace_id, start=early, attributes=llm_attrs())],
    )
    rollup_pending()
    buckets = dict(Rollup.objects.filter(project=project).values_list("bucket_start", "span_count"))
    assert buckets == {T0: 1, T0 + timedelta(minutes=15): 1}


def test_model_calls_are_attributed_to_their_runs_agent(project):
    agent_run(project=project, start=T0, agent="refund-agent")
    rollup_pending()
    by_model = Rollup.objects.get(project=project, model="gpt-4o-mini")
    assert by_model.agent == "refund-agent"
    assert by_model.cost_usd > 0


def test_rebuild_gives_the_same_rollups_as_incremental_folding(project):
    rng = random.Random(3)
    for i in range(6):
        agent_run(project=project, start=T0 + timedelta(minutes=rng.randint(0, 300)), tools=i % 3)
    rollup_pending()
    fields = ("bucket_start", "agent", "model", "span_count", "cost_usd", "run_latency")
    incremental = sorted(Rollup.objects.filter(project=project).values_list(*fields), key=str)

    rollup_rebuild(project_id=project.pk)

    rebuilt = sorted(Rollup.objects.filter(project=project).values_list(*fields), key=str)
    assert rebuilt == incremental


def test_rollup_folding_does_not_grow_queries_with_spans(project, django_assert_max_num_queries):
    for i in range(30):
        agent_run(project=project, start=T0 + timedelta(minutes=i), tools=3)
    with django_assert_max_num_queries(12):
        rollup_pending()


def test_bucket_floor_is_fifteen_minutes():
    assert bucket_floor(datetime(2026, 1, 1, 10, 44, 59, tzinfo=UTC)) == datetime(
        2026, 1, 1, 10, 30, tzinfo=UTC
    )


def test_histogram_quantiles_stay_within_four_percent():
    rng = random.Random(1)
    values = [rng.lognormvariate(6, 1.2) for _ in range(5000)]
    h1, h2 = {}, {}
    for i, v in enumerate(values):
        Histogram.add_value(h1 if i % 2 else h2, v)
    merged = Histogram.merge(dict(h1), h2)
    ordered = sorted(values)
    for q in (0.5, 0.95, 0.99):
        exact = ordered[int(q * len(ordered)) - 1]
        estimate = Histogram.quantile(merged, q)
        assert abs(estimate - exact) / exact < 0.045, (q, estimate, exact)
    assert Histogram.count(merged) == 5000
    assert Histogram.quantile({}, 0.5) is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="concurrent workers need PostgreSQL"
)
def test_two_workers_folding_at_once_count_every_span_once(project):
    for i in range(40):
        agent_run(project=project, start=T0 + timedelta(minutes=i % 20), tools=2)
    expected = Span.objects.count()
    _, errors = run_concurrently(lambda: rollup_pending(max_batches=3), times=3)
    assert not errors
    assert totals(project).span_count == expected
    assert totals(project).cost_usd == sum(
        (t.cost_usd for t in Trace.objects.filter(project=project)), Decimal(0)
    )
