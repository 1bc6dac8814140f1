from celery import shared_task

from traces.kpis import run_rollups_refresh
from traces.rollups import rollup_pending


@shared_task(ignore_result=True)
def rollup_spans() -> dict:
    """Fold pending ingest batches into rollups (safe to run concurrently)."""
    result = rollup_pending()
    return {
        "batches": result.batches,
        "spans": result.spans,
        "rows": result.rows,
        "quarantined": result.quarantined,
    }


@shared_task(ignore_result=True)
def rollup_runs() -> dict:
    """Recompute the daily run rollups touched since the last run (idempotent)."""
    return run_rollups_refresh()
