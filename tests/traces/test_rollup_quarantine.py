"""One project's bad row must not stop the background work of every project: a batch the
rollup cannot fold is quarantined and retried later; budgets and run rollups of the other
projects go on. The bad rows are planted in the database directly, past ingest checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from budgets.evaluate import budgets_evaluate_all
from budgets.models import BudgetEnvelope
from rollouts.models import RunRollup
from rollouts.services import run_rollups_refresh
from tests.factories import UserFactory, agent_run
from traces.models import IngestBatch, Outcome, Span, Step, Trace
from traces.rollups import BIGINT_MAX, Rollup, rollup_pending
from traces.selectors import rollup_totals

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)


def input_tokens(project) -> int:
    return rollup_totals(
        project_id=project.pk, start=T0 - timedelta(days=1), end=T0 + timedelta(days=1)
    ).input_tokens


def traced_tokens(project, trace_ids) -> int:
    return sum(
        Trace.objects.filter(project=project, trace_id__in=trace_ids).values_list(
            "input_tokens", flat=True
        )
    )


@pytest.fixture
def poisoned(project, other_project):
    """Project A: a good run and a run whose LLM call claims 2**63-1 input tokens;
    project B: a good run."""
    good_a, _ = agent_run(project=project, start=T0)
    bad_a, _ = agent_run(project=project, start=T0 + timedelta(minutes=1))
    good_b, _ = agent_run(project=other_project, start=T0)
    span = Span.objects.filter(project=project, trace_id=bad_a, step=Step.LLM).first()
    Span.objects.filter(pk=span.pk).update(input_tokens=BIGINT_MAX)
    return {"good_a": good_a, "bad_a": bad_a, "good_b": good_b, "span": span}


def test_a_batch_that_cannot_be_folded_is_quarantined_and_the_others_go_on(
    project, other_project, poisoned
):
    result = rollup_pending(now=NOW)

    assert result.quarantined == 1
    assert input_tokens(other_project) == traced_tokens(other_project, [poisoned["good_b"]])
    assert input_tokens(project) == traced_tokens(project, [poisoned["good_a"]])
    batch = IngestBatch.objects.get()
    assert batch.project_id == project.pk
    assert Span.objects.filter(batch_id=batch.pk, trace_id=poisoned["bad_a"]).count() == 4
    assert "input_tokens" in batch.error
    assert (batch.attempts, batch.failed_at, batch.retry_at) == (1, NOW, NOW + timedelta(minutes=1))


def test_a_quarantined_batch_waits_for_its_retry_time_then_backs_off(project, poisoned):
    rollup_pending(now=NOW)

    early = rollup_pending(now=NOW + timedelta(seconds=30))
    assert (early.batches, early.quarantined) == (0, 0)
    assert IngestBatch.objects.get().attempts == 1

    later = NOW + timedelta(minutes=1)
    assert rollup_pending(now=later).quarantined == 1
    batch = IngestBatch.objects.get()
    assert batch.attempts == 2
    assert batch.failed_at == NOW  # the first failure is kept
    assert batch.retry_at == later + timedelta(minutes=2)


def test_a_fixed_batch_is_folded_exactly_once(project, poisoned):
    rollup_pending(now=NOW)
    Span.objects.filter(pk=poisoned["span"].pk).update(input_tokens=poisoned["span"].input_tokens)

    retried = rollup_pending(now=NOW + timedelta(minutes=1))
    again = rollup_pending(now=NOW + timedelta(hours=1))

    assert (retried.batches, retried.quarantined) == (1, 0)
    assert again.batches == 0
    assert not IngestBatch.objects.exists()
    assert input_tokens(project) == traced_tokens(project, [poisoned["good_a"], poisoned["bad_a"]])


def test_staff_see_quarantined_batches_in_the_navigation_and_the_admin(project, poisoned):
    rollup_pending(now=NOW)
    staff = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)

    page = client.get("/traces/").content.decode()
    listing = client.get("/admin/traces/ingestbatch/?quarantined=yes").content.decode()

    assert "1</span> quarantined" in page
    assert "input_tokens" in listing


def test_members_who_are_not_staff_see_no_quarantine_count(client_logged_in, poisoned):
    rollup_pending(now=NOW)

    assert "quarantined" not in client_logged_in.get("/traces/").content.decode()


def test_budgets_of_other_projects_are_evaluated_when_one_project_has_a_bad_row(
    project, other_project
):
    for p in (project, other_project):
        BudgetEnvelope.objects.create(
            project=p,
            name="p95",
            metric=BudgetEnvelope.Metric.P95_LATENCY,
            limit=Decimal(10),
            period=BudgetEnvelope.Period.DAY,
            timezone="UTC",
            thresholds=[100],
        )
        agent_run(project=p, start=NOW - timedelta(minutes=30))
    rollup_pending(now=NOW)
    # A histogram bin that is not a number cannot be read back.
    Rollup.objects.filter(project=project).update(run_latency={"not-a-bin": 1})

    summary = budgets_evaluate_all(now=NOW)

    assert summary.failed_projects == [project.pk]
    assert summary.errors == 1
    assert [ev.name for ev in summary.evaluations] == ["p95"]
    assert BudgetEnvelope.objects.get(project=other_project).last_evaluated_at == NOW
    assert BudgetEnvelope.objects.get(project=project).last_evaluated_at is None


def test_run_rollups_of_other_projects_are_refreshed_when_one_day_fails(project, other_project):
    bad, _ = agent_run(project=project, start=T0)
    agent_run(project=other_project, start=T0)
    # A KPI value that is not a number: its sums cannot be stored as JSON.
    outcome = Outcome.objects.create(
        project=project,
        trace_id=bad,
        kind=Outcome.Kind.KPI,
        name="resolved",
        value=float("inf"),
        source=Outcome.Source.API,
        recorded_at=T0,
        received_at=T0,
    )

    first = run_rollups_refresh(now=NOW)

    assert first["failed"] == 1
    assert RunRollup.objects.filter(project=other_project).exists()
    assert not RunRollup.objects.filter(project=project).exists()
    # The failed day stays due: once the row is fixed, the next refresh picks it up.
    Outcome.objects.filter(pk=outcome.pk).update(value=1.0)
    second = run_rollups_refresh(now=NOW + timedelta(minutes=1))
    assert second["failed"] == 0
    assert RunRollup.objects.get(project=project).runs == 1


def test_bucket_cost_saturates_instead_of_overflowing(project):
    def run_costing(usd: int, minute: int) -> None:
        # A model call priced past the ingest plausibility check, planted in the database.
        trace_id, _ = agent_run(project=project, start=T0 + timedelta(minutes=minute))
        llm = Span.objects.filter(project=project, trace_id=trace_id, step=Step.LLM)
        llm.update(cost_usd=Decimal(0))
        Span.objects.filter(pk=llm.first().pk).update(cost_usd=Decimal(usd))

    # Two runs in one fold: the sum is capped in Python before it is written.
    run_costing(6_000_000_000, 1)
    run_costing(6_000_000_000, 2)
    assert rollup_pending(now=NOW).quarantined == 0
    # A third into the same bucket row: the SQL upsert adds and caps.
    run_costing(6_000_000_000, 3)
    assert rollup_pending(now=NOW).quarantined == 0

    assert IngestBatch.objects.count() == 0
    assert Rollup.objects.get(project=project, cost_usd__gt=0).cost_usd == Decimal(9_999_999_999)
