from celery import shared_task

from traces.rollups import rollup_pending


@shared_task(ignore_result=True)
def rollup_spans() -> dict:
    """Fold pending ingest batches into rollups (safe to run concurrently). Returns the
    counts and `project_ids`, the projects whose rollups received spans, for whatever
    the schedule chains after it."""
    result = rollup_pending()
    return {
        "batches": result.batches,
        "spans": result.spans,
        "rows": result.rows,
        "quarantined": result.quarantined,
        "project_ids": sorted(result.project_ids),
    }
