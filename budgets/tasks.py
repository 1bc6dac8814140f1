"""Celery tasks of the budgets app. Thin: they take ids and call a service."""

from __future__ import annotations

import logging
import random
from functools import partial

from celery import shared_task
from django.db import InterfaceError, OperationalError, transaction

from budgets import notify
from budgets.models import Delivery

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------ alert delivery
# deliver(delivery_id): one attempt per run, retried by Celery for temporary errors.
# deliver_pending(): the sweeper, every 5 minutes from the beat schedule.

RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 10 * 60  # stays below notify.RETRY_TIMEOUT


def retry_countdown(retries: int) -> float:
    """Exponential backoff with jitter: 30 s, 1, 2, 4, 8 min (each ±50 %)."""
    delay = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2**retries)
    # Jitter spreads the retries of one receiver's outage over time.
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - not security-relevant


@shared_task(
    bind=True,
    ignore_result=True,
    acks_late=True,
    max_retries=notify.MAX_ATTEMPTS,
    # A database outage: the claim may or may not have happened; either way the CAS
    # decides on the next run.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=RETRY_BASE_SECONDS,
    retry_backoff_max=RETRY_MAX_SECONDS,
    retry_jitter=True,
)
def deliver(self, delivery_id: int) -> str:
    """Send one alert delivery; retry temporary transport errors with backoff.

    Never retried: a missing delivery, a permanent error (the channel is disabled), or
    a delivery another task holds or finished.
    """
    try:
        outcome = notify.delivery_attempt(delivery_id=delivery_id)
    except Delivery.DoesNotExist:
        logger.info("delivery %s no longer exists", delivery_id)
        return "missing"
    if outcome == notify.Outcome.RETRY:
        raise self.retry(countdown=retry_countdown(self.request.retries))
    return str(outcome)


@shared_task(ignore_result=True)
def deliver_pending() -> int:
    """Enqueue again the deliveries whose task was lost (see notify.deliveries_sweep)."""
    ids = notify.deliveries_sweep()
    for delivery_id in ids:
        transaction.on_commit(partial(deliver.delay, delivery_id))
    if ids:
        logger.info("re-enqueued %d stuck deliveries", len(ids))
    return len(ids)


# ------------------------------------------------------------------ budget evaluation
# evaluate_budgets(): every EVALUATE_EVERY_SECONDS from the beat schedule, and for the
# projects of each fold right after it (agentops_site.celery). Not retried: the next run
# comes a minute later and evaluation is idempotent.


@shared_task(ignore_result=True)
def evaluate_budgets(project_ids: list[int] | None = None) -> dict:
    """Evaluate every enabled budget envelope now, or those of `project_ids` (safe to
    run concurrently)."""
    from budgets.evaluate import budgets_evaluate_all

    return budgets_evaluate_all(project_ids=project_ids).as_dict()
