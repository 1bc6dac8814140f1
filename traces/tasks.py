from celery import shared_task

from traces.partitions import enforce_retention as _enforce_retention
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


@shared_task(ignore_result=True)
def enforce_retention() -> dict:
    """Span partitions ahead, then what is past retention dropped or deleted
    (traces/partitions.py). Idempotent; hourly in the beat schedule."""
    report = _enforce_retention()
    return {
        "created": report.created,
        "dropped": [name for name, *_ in report.dropped],
        "skipped": report.skipped,
        "deleted": report.deleted_rows,
        "failed_projects": report.failed,
    }
