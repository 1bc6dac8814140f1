"""The ingest service: idempotency, arrival order, summaries and cost bookkeeping."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from tests.factories import agent_run, llm_attrs, new_span_id, new_trace_id, raw_span
from traces.ingest import span_batch_ingest
from traces.models import ModelPriceOverride, Span, Trace
from traces.retention import project_retention_days

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def summary_fields(trace: Trace) -> dict:
    return {
        f: getattr(trace, f)
        for f in (
            "root_span_id",
            "name",
            "agent",
            "started_at",
            "ended_at",
            "duration_ms",
            "span_count",
            "error_count",
            "llm_call_count",
            "tool_call_count",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "unpriced_count",
            "status",
            "session_id",
        )
    }


def test_resending_a_batch_stores_nothing_twice(project):
    _, spans = agent_run(project=project, start=T0, store=False)
    first = span_batch_ingest(project_id=project.pk, spans=spans)
    before = summary_fields(Trace.objects.get())

    again = span_batch_ingest(project_id=project.pk, spans=spans)

    assert (first.stored, first.duplicates) == (len(spans), 0)
    assert (again.stored, again.duplicates) == (0, len(spans))
    assert Span.objects.count() == len(spans)
    assert summary_fields(Trace.objects.get()) == before


def test_a_span_repeated_inside_one_batch_is_stored_once(project):
    _, spans = agent_run(project=project, start=T0, store=False)
    result = span_batch_ingest(project_id=project.pk, spans=spans + spans[:2])
    assert result.stored == len(spans)
    assert Trace.objects.get().span_count == len(spans)


def test_the_summary_is_the_same_whatever_order_and_batching_spans_arrive_in(
    project, other_project
):
    _, spans = agent_run(project=project, start=T0, tools=3, session_id="s-1", store=False)
    span_batch_ingest(project_id=project.pk, spans=spans)
    expected = summary_fields(Trace.objects.get(project=project))

    rng = random.Random(7)
    for attempt in range(5):
        shuffled = spans[:]
        rng.shuffle(shuffled)
        cut = rng.randint(1, len(spans) - 1)
        # Children before parents, root in either batch, overlapping re-sends.
        for batch in (shuffled[:cut], shuffled[cut:], shuffled[: cut // 2]):
            span_batch_ingest(project_id=other_project.pk, spans=batch)
        got = summary_fields(Trace.objects.get(project=other_project))
        assert got == expected, f"attempt {attempt}"
        Trace.objects.filter(project=other_project).delete()
        Span.objects.filter(project=other_project).delete()


def test_a_trace_without_its_root_yet_is_incomplete_then_completes(project):
    _, spans = agent_run(project=project, start=T0, store=False)
    root = spans[-1]
    children = spans[:-1]
    span_batch_ingest(project_id=project.pk, spans=children)
    trace = Trace.objects.get()
    assert trace.status == "incomplete"
    assert trace.root_span_id == ""

    span_batch_ingest(project_id=project.pk, spans=[root])
    trace.refresh_from_db()
    assert trace.status == "ok"
    assert trace.root_span_id == root.span_id
    assert trace.name == "invoke_agent support-agent"
    assert trace.agent == "support-agent"
    assert trace.started_at == T0


def test_a_failed_root_marks_the_trace_as_error(project):
    agent_run(project=project, start=T0, error=True)
    trace = Trace.objects.get()
    assert trace.status == "error"
    assert trace.error_count == 2


def test_a_root_without_an_agent_name_takes_the_first_agent_below_it(project):
    trace_id, root = new_trace_id(), new_span_id()
    spans = [
        raw_span(trace_id=trace_id, span_id=root, name="workflow", start=T0),
        raw_span(
            trace_id=trace_id,
            parent_span_id=root,
            start=T0 + timedelta(seconds=2),
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "late"},
        ),
        raw_span(
            trace_id=trace_id,
            parent_span_id=root,
            start=T0 + timedelta(seconds=1),
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"},
        ),
    ]
    span_batch_ingest(project_id=project.pk, spans=spans)
    assert Trace.objects.get().agent == "planner"


def test_tokens_are_summed_over_model_calls_only(project):
    """An agent span that repeats its children's usage must not double the total."""
    trace_id, root = new_trace_id(), new_span_id()
    spans = [
        raw_span(
            trace_id=trace_id,
            span_id=root,
            name="invoke_agent a",
            start=T0,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "a",
                "gen_ai.usage.input_tokens": 300,
                "gen_ai.usage.output_tokens": 70,
            },
        ),
        raw_span(
            trace_id=trace_id,
            parent_span_id=root,
            start=T0,
            attributes=llm_attrs(input_tokens=100, output_tokens=20),
        ),
        raw_span(
            trace_id=trace_id,
            parent_span_id=root,
            start=T0,
            attributes=llm_attrs(input_tokens=200, output_tokens=50),
        ),
    ]
    span_batch_ingest(project_id=project.pk, spans=spans)
    trace = Trace.objects.get()
    assert (trace.input_tokens, trace.output_tokens) == (300, 70)
    assert trace.llm_call_count == 2


def test_a_model_without_a_price_is_unpriced_not_free(project):
    trace_id = new_trace_id()
    span_batch_ingest(
        project_id=project.pk,
        spans=[
            raw_span(
                trace_id=trace_id,
                start=T0,
                attributes=llm_attrs(model="acme-internal-llm-7b", input_tokens=500),
            )
        ],
    )
    span = Span.objects.get()
    assert span.cost_source == "unpriced"
    assert span.cost_usd is None
    trace = Trace.objects.get()
    assert trace.unpriced_count == 1
    assert trace.cost_usd == 0


def test_a_client_reported_cost_is_the_effective_cost_with_the_computed_one_beside(project):
    trace_id = new_trace_id()
    span_batch_ingest(
        project_id=project.pk,
        spans=[
            raw_span(
                trace_id=trace_id,
                start=T0,
                attributes=llm_attrs(
                    model="gpt-4o-mini",
                    input_tokens=1_000_000,
                    output_tokens=0,
                    **{"gen_ai.usage.cost": 0.42},
                ),
            )
        ],
    )
    span = Span.objects.get()
    assert span.cost_source == "client"
    assert span.cost_usd == Decimal("0.42")
    assert span.computed_cost_usd is not None and span.computed_cost_usd > 0
    assert span.computed_cost_usd != span.cost_usd
    assert Trace.objects.get().cost_usd == Decimal("0.42")


def test_a_price_override_applies_from_its_effective_date(project):
    ModelPriceOverride.objects.create(
        provider="openai",
        model="gpt-4o-mini",
        effective_from=T0,
        input_per_mtok=Decimal("1"),
        output_per_mtok=Decimal("2"),
    )
    before, after = new_trace_id(), new_trace_id()
    attrs = llm_attrs(model="gpt-4o-mini", input_tokens=1_000_000, output_tokens=1_000_000)
    span_batch_ingest(
        project_id=project.pk,
        spans=[
            raw_span(trace_id=before, start=T0 - timedelta(days=1), attributes=attrs),
            raw_span(trace_id=after, start=T0 + timedelta(hours=1), attributes=attrs),
        ],
    )
    assert Trace.objects.get(trace_id=after).cost_usd == Decimal("3")
    old = Span.objects.get(trace_id=before)
    assert old.cost_source == "price_data"
    assert old.cost_usd != Decimal("3")


def test_it_keeps_raw_attributes_events_resource_and_scope(project):
    trace_id = new_trace_id()
    events = [
        {
            "name": "exception",
            "time_unix_nano": 1,
            "attributes": {"exception.type": "ValueError", "exception.message": "bad"},
        }
    ]
    span_batch_ingest(
        project_id=project.pk,
        spans=[
            raw_span(
                trace_id=trace_id,
                start=T0,
                attributes={"custom.flag": True, "custom.list": [1, 2]},
                events=events,
                resource={"service.name": "svc", "deployment.environment.name": "prod"},
            )
        ],
    )
    span = Span.objects.get()
    assert span.attributes == {"custom.flag": True, "custom.list": [1, 2]}
    assert span.events == events
    assert span.resource["deployment.environment.name"] == "prod"
    assert span.scope == {"name": "tests", "version": "1"}
    assert span.service_name == "svc"


def test_ingest_costs_a_constant_number_of_queries(project, django_assert_max_num_queries):
    _, small = agent_run(project=project, start=T0, tools=1, store=False)
    spans = []
    for _ in range(40):
        spans += agent_run(project=project, start=T0, tools=3, store=False)[1]
    # The project's retention is read once a minute per process, not per request.
    project_retention_days(project.pk)
    # overrides, batch row, staging table, COPY, insert, trace upsert (+ SQLite: fewer)
    with django_assert_max_num_queries(7):
        span_batch_ingest(project_id=project.pk, spans=small)
    # overrides, batch row, staging table, COPY, insert, trace upsert (+ SQLite: fewer)
    with django_assert_max_num_queries(7):
        span_batch_ingest(project_id=project.pk, spans=spans)
    assert Span.objects.count() == len(small) + len(spans)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="concurrent writers need PostgreSQL"
)
def test_concurrent_batches_of_one_trace_add_up(project):
    """Two requests carrying spans of the same trace (and some of the same spans) at
    once: every span counted exactly once."""
    _, spans = agent_run(project=project, start=T0, tools=4, store=False)
    halves = [spans[::2] + spans[:2], spans[1::2] + spans[:2]]
    errors = []

    def send(batch):
        try:
            span_batch_ingest(project_id=project.pk, spans=batch)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    for _ in range(3):
        threads = [threading.Thread(target=send, args=(b,)) for b in halves]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        trace = Trace.objects.get()
        assert trace.span_count == len(spans)
        assert trace.tool_call_count == 4
        Trace.objects.all().delete()
        Span.objects.all().delete()


def test_it_keeps_the_runs_phase_prompt_version_interventions_and_outcomes(project):
    from traces.models import Outcome

    trace_id, root = new_trace_id(), new_span_id()
    root_span = raw_span(
        trace_id=trace_id,
        span_id=root,
        name="invoke_agent a",
        start=T0,
        attributes={
            "gen_ai.agent.name": "a",
            "agentops.autonomy.phase": "bounded",
            "agentops.prompt.version": "v7",
            "agentops.kpi.resolved": True,
            "agentops.eval.helpfulness": 0.75,
        },
    )
    escalation = raw_span(
        trace_id=trace_id,
        parent_span_id=root,
        start=T0,
        attributes={"agentops.step": "escalation"},
    )
    # The escalation arrives after its root, in another batch, and is re-sent.
    span_batch_ingest(project_id=project.pk, spans=[root_span])
    trace = Trace.objects.get()
    assert (trace.phase, trace.prompt_version, trace.intervened) == ("bounded", "v7", False)
    span_batch_ingest(project_id=project.pk, spans=[escalation])
    span_batch_ingest(project_id=project.pk, spans=[escalation, root_span])
    trace.refresh_from_db()
    assert trace.intervened is True
    assert sorted(Outcome.objects.values_list("kind", "name", "value", "source")) == [
        ("eval", "helpfulness", 0.75, "span"),
        ("kpi", "resolved", 1.0, "span"),
    ]
