from celery import shared_task

from traces.rollups import rollup_pending


@shared_task(ignore_result=True)
def rollup_spans() -> dict:
    """Fold pending ingest batches into rollups (safe to run concurrently)."""
    result = rollup_pending()
    return {"batches": result.batches, "spans": result.spans, "rows": result.rows}
