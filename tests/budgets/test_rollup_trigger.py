"""New spend folded into the rollups triggers an evaluation at once, not a minute later:
the scheduled fold is chained to the evaluation in agentops_site.celery, in plain sight."""

from decimal import Decimal

import pytest
from django.conf import settings

from agentops_site.celery import app as celery_app
from agentops_site.celery import fold_then_evaluate
from budgets.models import Alert, BudgetEnvelope
from tests.factories import agent_run
from traces.rollups import rollup_pending


@pytest.fixture
def eager_tasks():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def tiny_envelope(project) -> BudgetEnvelope:
    return BudgetEnvelope.objects.create(
        project=project,
        name="tiny",
        metric=BudgetEnvelope.Metric.COST,
        limit=Decimal("0.000001"),
        period=BudgetEnvelope.Period.MONTH,
        thresholds=[100],
        forecast=False,
    )


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
    envelope = tiny_envelope(project)
    agent_run(project=project)
    assert not Alert.objects.exists()

    fold_then_evaluate.delay()

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
    fold_then_evaluate.delay()
    envelope.refresh_from_db()
    assert envelope.last_evaluated_at is None


@pytest.mark.django_db(transaction=True)
def test_the_fold_alone_evaluates_nothing(project, eager_tasks):
    # No hidden wiring: the rollups know nothing of budgets; only the chain evaluates.
    envelope = tiny_envelope(project)
    agent_run(project=project)
    assert rollup_pending().project_ids == {project.pk}
    envelope.refresh_from_db()
    assert envelope.last_evaluated_at is None
    assert not Alert.objects.exists()


def test_the_schedule_runs_the_chain_with_an_expiry():
    entry = settings.CELERY_BEAT_SCHEDULE["fold-then-evaluate"]
    assert entry["task"] == fold_then_evaluate.name
    assert entry["options"]["expires"] == settings.ROLLUP_EVERY_SECONDS
    scheduled = [e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()]
    assert "traces.tasks.rollup_spans" not in scheduled
