"""One usage rule: the envelope's chart ends where the evaluation that set its state
(and fired its alerts) stands, for every metric and scope, with runs still in progress
and with more runs than any row cap."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from budgets import selectors
from budgets.evaluate import budget_evaluate
from budgets.models import BudgetEnvelope
from budgets.selectors import envelope_current_period, envelope_usage_series
from tests.factories import agent_run
from traces.ingest import span_batch_ingest
from traces.models import Trace, TraceStatus
from traces.rollups import rollup_pending

Metric = BudgetEnvelope.Metric
Period = BudgetEnvelope.Period

NOW = datetime(2025, 11, 14, 10, 7, tzinfo=UTC)
SESSION = "s-42"


@pytest.fixture
def traffic(project):
    """Seven finished runs of the session (two failed, of growing length), one run of the
    session still in progress (no root span yet), and a run of another agent."""
    morning = datetime(2025, 11, 14, 8, 0, tzinfo=UTC)
    for i in range(7):
        agent_run(
            project=project,
            start=morning + timedelta(minutes=7 * i),
            tools=1 + i,
            error=i in (2, 5),
            session_id=SESSION,
        )
    _, spans = agent_run(
        project=project,
        start=morning + timedelta(hours=1, minutes=50),
        tools=30,
        session_id=SESSION,
        store=False,
    )
    span_batch_ingest(project_id=project.pk, spans=spans[:-1])  # the root has not arrived
    agent_run(project=project, agent="other-agent", start=morning + timedelta(minutes=3))
    rollup_pending()
    assert Trace.objects.filter(status=TraceStatus.INCOMPLETE).count() == 1


SCOPES = [
    pytest.param({}, id="project"),
    pytest.param({"agent": "support-agent"}, id="agent"),
    pytest.param({"attribute": "session_id", "attribute_value": SESSION}, id="session"),
]


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize(
    "metric", [Metric.COST, Metric.TOKENS, Metric.ERROR_RATE, Metric.P95_LATENCY]
)
def test_the_chart_ends_at_the_evaluated_value(project, traffic, monkeypatch, metric, scope):
    # A row cap smaller than the period's runs: a chart that stops reading rows early
    # would end below the evaluation.
    monkeypatch.setattr(selectors, "TRACE_SCAN_LIMIT", 3, raising=False)
    envelope = BudgetEnvelope.objects.create(
        project=project,
        name="agreement",
        metric=metric,
        limit=Decimal("1000000"),
        period=Period.DAY,
        timezone="UTC",
        thresholds=[100],
        forecast=False,
        **scope,
    )
    evaluation = budget_evaluate(envelope=envelope, now=NOW)
    envelope.refresh_from_db()
    start, end = envelope_current_period(envelope=envelope, now=NOW)

    series = envelope_usage_series(envelope=envelope, start=start, end=end, now=NOW)

    assert evaluation.value > 0
    assert series.points[-1][1] == pytest.approx(float(evaluation.value), rel=1e-9)


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("metric", [Metric.RUN_COST, Metric.RUN_DURATION])
def test_the_worst_run_charted_is_the_evaluated_one(project, traffic, metric, scope):
    envelope = BudgetEnvelope.objects.create(
        project=project,
        name="cap",
        metric=metric,
        limit=Decimal("1000000"),
        period=Period.DAY,
        timezone="UTC",
        thresholds=[100],
        **scope,
    )
    evaluation = budget_evaluate(envelope=envelope, now=NOW)
    start, end = envelope_current_period(envelope=envelope, now=NOW)

    series = envelope_usage_series(envelope=envelope, start=start, end=end, now=NOW)

    assert evaluation.value > 0
    assert max(v for _, v in series.points) == pytest.approx(float(evaluation.value), rel=1e-9)


def test_a_run_in_progress_is_in_no_ratio(project, traffic):
    # 2 of 7 finished runs failed; the run without its root is neither ok nor failed yet.
    envelope = BudgetEnvelope.objects.create(
        project=project,
        name="errors",
        metric=Metric.ERROR_RATE,
        limit=Decimal("50"),
        period=Period.DAY,
        thresholds=[100],
        attribute="session_id",
        attribute_value=SESSION,
    )
    evaluation = budget_evaluate(envelope=envelope, now=NOW)
    start, end = envelope_current_period(envelope=envelope, now=NOW)
    series = envelope_usage_series(envelope=envelope, start=start, end=end, now=NOW)
    assert evaluation.value == Decimal(200) / Decimal(7)
    assert series.points[-1][1] == pytest.approx(200 / 7)
