from celery import shared_task

from rollouts.services import run_rollups_refresh


@shared_task(ignore_result=True)
def rollup_runs() -> dict:
    """Recompute the daily run rollups touched since the last run (idempotent)."""
    return run_rollups_refresh()
