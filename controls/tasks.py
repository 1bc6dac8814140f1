"""Celery tasks of the controls app. Thin: they call a service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from celery import shared_task
from django.conf import settings

from controls.checks import contract_checks_run
from controls.findings import findings_detect


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
