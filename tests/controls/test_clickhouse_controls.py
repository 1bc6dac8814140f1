"""The controls readers with the spans in ClickHouse (chDB, the engine in process), the
relational database being this run's (SQLite or PostgreSQL): each reader must see the
spans ingestion stored in the span store, none of which are in traces_span."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from controls.checks import contract_checks_run
from controls.decision_memory import decisions_record
from controls.findings import findings_detect, findings_sweep
from controls.models import DecisionRecord, Finding, ReviewItem, ReviewRule, ToolContract
from tests.controls import test_approvals as approvals_t
from tests.controls import test_decision_memory as memory_t
from tests.controls import test_decisions as decisions_t
from tests.controls import test_idempotency
from tests.controls import test_readiness as readiness_t
from tests.controls import test_review as review
from tests.controls.test_checks import CORPUS, EXPECTED, T0, ingest_corpus, outcomes, register
from tests.controls.test_findings import lookup
from tests.controls.test_idempotency import SINCE, UNTIL
from tests.factories import new_trace_id
from tests.traces.test_clickhouse_ingest import ch  # noqa: F401 (a fixture)
from traces.ingest import span_batch_ingest
from traces.models import Span

Kind = Finding.Kind

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ch", "other_clean")]


@pytest.fixture
def other_clean(request, other_project):
    """`ch` empties the store of `project`; this of `other_project` (SQLite hands the
    same ids out again in every test, and the store outlives the test database)."""
    store = request.getfixturevalue("ch")
    store.delete_project(other_project.pk)
    yield
    store.delete_project(other_project.pk)


@pytest.fixture
def ch_corpus(other_clean, project, other_project):
    """The planted idempotency corpus (tests/controls/test_idempotency.py), ingested
    into ClickHouse."""
    return test_idempotency.corpus.__wrapped__(project, other_project)


def test_contract_checks_check_the_spans_in_clickhouse(project, other_project):
    register(project)
    ingest_corpus(project)
    assert Span.objects.count() == 0

    assert contract_checks_run() == len(CORPUS)
    assert outcomes(project) == EXPECTED
    assert contract_checks_run() == 0  # checked spans are left out
    # later spans, read a few at a time past the checked ones
    ingest_corpus(project, start=T0 + timedelta(minutes=1))
    assert contract_checks_run(chunk=3) == len(CORPUS)
    assert outcomes(project) == {k: 2 * v for k, v in EXPECTED.items()}
    assert contract_checks_run(project_id=other_project.pk) == 0


def test_findings_are_detected_from_the_spans_in_clickhouse(project, ch_corpus):
    assert Span.objects.count() == 0
    counts = findings_detect(since=SINCE, until=UNTIL, project_id=project.pk)
    assert counts == {"created": 3 + 2 + 2 + 2, "updated": 0}
    keys = {f.key for f in Finding.objects.filter(project=project, kind=Kind.DUPLICATE_SIDE_EFFECT)}
    assert {"K-in-run", "K-across"} <= keys
    storms = Finding.objects.filter(project=project, kind=Kind.RETRY_STORM)
    assert sorted((f.tool, f.count) for f in storms) == [
        ("chat gpt-4o-mini", 7),
        ("lookup_order", 6),
    ]
    costs = Finding.objects.filter(project=project, kind=Kind.RETRIED_MODEL_COST)
    assert sorted((f.agent, f.count, f.cost_usd) for f in costs) == [
        ("billing-agent", 1, Decimal("0.25")),
        ("support-agent", 6, Decimal("1.5")),
    ]
    assert findings_detect(since=SINCE, until=UNTIL, project_id=project.pk) == {
        "created": 0,
        "updated": 0,
    }


def test_the_findings_sweep_finds_its_first_day_in_clickhouse(project):
    run = new_trace_id()
    start = datetime(2026, 3, 2, 23, 57, tzinfo=UTC)
    span_batch_ingest(
        project_id=project.pk,
        spans=[lookup(run, start=start + timedelta(minutes=i)) for i in range(6)],
    )
    assert findings_sweep(project_id=project.pk, until=start + timedelta(days=1)) == {
        "created": 1,
        "updated": 0,
    }
    assert [f.count for f in Finding.objects.filter(project=project, kind=Kind.RETRY_STORM)] == [6]


def test_review_flags_come_from_the_spans_in_clickhouse(project):
    ReviewRule.objects.create(
        project=project, agent=review.AGENT, min_confidence=Decimal("0.6"), risks=["critical"]
    )
    ToolContract.objects.create(
        project=project, name="refund_order", version="1.0", risk="critical"
    )
    run, old = new_trace_id(), new_trace_id()
    review.ingest(
        project,
        review.step(run, name="unsure", **{"agentops.confidence": 0.4}),
        review.step(run, name="sure", **{"agentops.confidence": 0.9}),
        review.tool_call(run, "refund_order"),
        review.step(
            run, name="approved", **{"agentops.confidence": 0.1, "agentops.approval.id": "x"}
        ),
    )
    review.ingest(
        project,
        review.step(old, **{"agentops.confidence": 0.1}),
        received_at=timezone.now() - timedelta(hours=2),
    )
    assert Span.objects.count() == 0

    assert review.scan() == 2
    assert review.scan() == 0  # flagged spans are left out
    items = review.flagged(project)
    assert {(i.source, i.trace_id, i.risk, i.tool) for i in items} == {
        (ReviewItem.Source.LOW_CONFIDENCE, run, "", ""),
        (ReviewItem.Source.HIGH_RISK, run, "critical", "refund_order"),
    }


def test_decisions_and_ungated_calls_come_from_the_spans_in_clickhouse(
    project, other_project, other_clean
):
    planted = decisions_t.corpus.__wrapped__(project, other_project)
    assert Span.objects.count() == 0
    # the known answers of tests/controls/test_decisions.py, on ClickHouse
    decisions_t.test_each_decision_is_counted_once_from_both_sources(project, planted)
    decisions_t.test_rates_per_policy_and_version_are_exactly_the_planted_ones(project, planted)
    decisions_t.test_it_finds_exactly_the_ungated_side_effects(project, planted)


def test_decision_spans_in_clickhouse_are_recorded_once(project):
    trace_id, span_id = memory_t.decision_span(
        project,
        context="Customer asks for a refund of order 42",
        action="refund",
        **{"agentops.decision.confidence": 0.82},
    )
    assert Span.objects.count() == 0
    assert decisions_record() == 1
    assert decisions_record() == 0  # recorded spans are left out
    assert decisions_record(project_id=project.pk, trace_id=trace_id) == 0
    (record,) = DecisionRecord.objects.all()
    assert (record.trace_id, record.span_id, record.action) == (trace_id, span_id, "refund")
    assert str(record.confidence) == "0.820" and record.decided_at == memory_t.T0


def test_approval_violations_come_from_the_spans_in_clickhouse(project, other_project):
    bound = approvals_t.bound.__wrapped__(project, other_project)
    assert Span.objects.count() == 0
    approvals_t.test_calls_outside_their_approval_are_violations(project, bound)


def test_readiness_counts_the_spans_in_clickhouse(project, other_project):
    planted = readiness_t.corpus.__wrapped__(project, other_project)
    assert Span.objects.count() == 0
    readiness_t.test_it_gives_known_percentages_for_each_control(planted)
