"""New spend folded into the rollups triggers an evaluation at once, not a minute later."""

from decimal import Decimal

import pytest

from agentops_site.celery import app as celery_app
from budgets.models import Alert, BudgetEnvelope
from tests.factories import agent_run
from traces.rollups import rollup_pending


@pytest.fixture
def eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.mark.django_db(transaction=True)
def test_folding_new_spans_evaluates_budgets_right_away(project, other_project, eager_tasks):
    elsewhere = BudgetEnvelope.objects.create(
        project=other_project,
        name="another team's",
        metric=BudgetEnvelope.Metric.COST,
        limit=Decimal("1"),
        period=BudgetEnvelope.Period.MONTH,
        thresholds=[100],
    )
    envelope = BudgetEnvelope.objects.create(
        project=project,
        name="tiny",
        metric=BudgetEnvelope.Metric.COST,
        limit=Decimal("0.000001"),
        period=BudgetEnvelope.Period.MONTH,
        thresholds=[100],
        forecast=False,
    )
    agent_run(project=project)
    assert not Alert.objects.exists()

    rollup_pending()

    envelope.refresh_from_db()
    assert envelope.state == "exceeded"
    assert Alert.objects.filter(envelope=envelope, threshold=100).count() == 1
    # Only the project that got new spend was evaluated.
    elsewhere.refresh_from_db()
    assert elsewhere.last_evaluated_at is None


@pytest.mark.django_db(transaction=True)
def test_an_empty_fold_does_not_evaluate(project, eager_tasks):
    envelope = BudgetEnvelope.objects.create(
        project=project,
        name="never looked at",
        metric=BudgetEnvelope.Metric.COST,
        limit=Decimal("1"),
        period=BudgetEnvelope.Period.MONTH,
        thresholds=[100],
    )
    rollup_pending()
    envelope.refresh_from_db()
    assert envelope.last_evaluated_at is None
