"""Celery tasks of the controls app. Thin: they call a service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from celery import shared_task
from django.conf import settings

from controls.approvals import approvals_expire
from controls.checks import contract_checks_run
from controls.decision_memory import decisions_record_recent
from controls.findings import findings_detect
from controls.review import review_flags_scan, review_interventions_sync


@shared_task(ignore_result=True, acks_late=True)
def check_contracts() -> int:
    """Check the tool spans received in the trailing CONTRACT_CHECK_WINDOW_HOURS that have
    no contract check yet (every 30 s from the beat). The window bounds the scan on a large
    span table; `manage.py check_contracts` sweeps everything."""
    since = datetime.now(UTC) - timedelta(hours=settings.CONTRACT_CHECK_WINDOW_HOURS)
    return contract_checks_run(since=since)


@shared_task(ignore_result=True, acks_late=True)
def detect_findings() -> dict[str, int]:
    """Run the idempotency and retry detectors over the spans of every project started in
    the trailing FINDINGS_WINDOW_MINUTES and store their findings (every minute from the
    beat). Re-runs and concurrent runs store nothing twice; `manage.py detect_findings
    --since` sweeps further back."""
    since = datetime.now(UTC) - timedelta(minutes=settings.FINDINGS_WINDOW_MINUTES)
    return findings_detect(since=since)


@shared_task(ignore_result=True, acks_late=True)
def record_decisions() -> int:
    """Record the decision spans (`agentops.decision.*`) of the trailing hours that have no
    DecisionRecord yet (every minute from the beat; `manage.py record_decisions` sweeps)."""
    return decisions_record_recent()


@shared_task(ignore_result=True, acks_late=True)
def flag_review_items() -> dict[str, int]:
    """Queue the spans received in the trailing REVIEW_FLAG_WINDOW_MINUTES that cross a
    review rule, and mark intervened the runs of items decided in that window whose trace
    came after the decision (every minute from the beat). Re-runs queue nothing twice."""
    since = datetime.now(UTC) - timedelta(minutes=settings.REVIEW_FLAG_WINDOW_MINUTES)
    return {
        "opened": review_flags_scan(since=since),
        "intervened": review_interventions_sync(since=since),
    }


@shared_task(ignore_result=True, acks_late=True)
def expire_approvals() -> int:
    """Mark every pending approval request past its deadline expired (every 30 s from the
    beat). A read of such a request expires it too, so the schedule only bounds how long
    the queue shows it open."""
    return approvals_expire()
