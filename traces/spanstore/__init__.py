"""The span store: where spans are written and read, behind one seam.

`span_store()` answers the store that settings.SPAN_STORE_URL selects:

- empty: the relational database (traces.Span, today's table) — `RelationalSpanStore`;
- `clickhouse://user:password@host:8123/db` (`clickhouses://` for TLS): a ClickHouse
  server; `chdb:///path` or `chdb://`: the same engine in process (tests, one node).

Both answer the same calls: `insert_spans`, `existing_keys`, `trace_spans`, `batch_spans`,
`project_spans`, `cost_by`, the general reads `select_spans`, `sum_spans` and
`count_spans` (traces/spanstore/query.py), `discard_batch`, `delete_project`, `count`,
`ensure_schema`.
PostgreSQL keeps projects, keys, trace summaries, ingest batches, envelopes, alerts,
rollups and controls whichever is chosen.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_stores: dict[str, object] = {}


def span_store(url: str | None = None):
    """The configured span store, one per process and URL (a ClickHouse client is
    thread-safe for queries; chDB allows one engine per process anyway)."""
    url = settings.SPAN_STORE_URL if url is None else url
    if not url:
        # imported here: the ClickHouse module stays importable without Django's apps
        from traces.spanstore.relational import RelationalSpanStore

        return RelationalSpanStore()
    with _lock:
        store = _stores.get(url)
        if store is None:
            from traces.spanstore.clickhouse import ClickHouseSpanStore

            store = _stores[url] = ClickHouseSpanStore(url)
        return store


def projects_scope(project_id: int | None, store=None):
    """What to pass as select_spans' `project_ids` for one project or every project.

    Every project is None on the relational store (a project's spans go with it, by
    cascade) and the existing projects' ids on ClickHouse, which keeps a deleted
    project's spans until `delete_project` (not called on project deletion yet)."""
    if project_id is not None:
        return project_id
    store = store or span_store()
    if store.kind == "relational":
        return None
    from traces.models import Project

    return list(Project.objects.order_by("pk").values_list("pk", flat=True))


def project_spans_delete(sender, instance, **kwargs) -> None:
    """post_delete of a Project: delete its spans from an external store once the
    deletion commits (a rolled-back delete keeps them). The relational store's spans go
    by the foreign key's cascade."""
    from django.db import transaction

    store = span_store()
    if store.kind == "relational":
        return
    project_id = instance.pk

    def forget() -> None:
        try:
            store.delete_project(project_id)
        except Exception:
            # The project is gone already; its spans expire by TTL, and no read sees
            # them (every read names existing projects). Said, not raised.
            logger.exception("span store: spans of deleted project %s not deleted", project_id)

    transaction.on_commit(forget)


def span_page(rows: list[dict], after):
    """The rows of a select_spans in ARRIVAL order as unsaved Span objects, and the
    cursor that continues after them (`after` itself when there are none)."""
    from traces.models import Span
    from traces.spanstore.query import CURSOR

    if not rows:
        return [], after
    spans = [Span(**{k: v for k, v in row.items() if k != CURSOR}) for row in rows]
    return spans, rows[-1][CURSOR]


def check_span_store_url(app_configs=None, **kwargs):
    """A SPAN_STORE_URL that cannot be used is said at start-up (`migrate`, `check`, `up`),
    not by every ingest request failing."""
    from django.core.checks import Error

    url = settings.SPAN_STORE_URL
    if not url:
        return []
    from traces.spanstore.clickhouse import parse_url

    try:
        parse_url(url)
    except ValueError as exc:
        return [Error(str(exc), hint="See README, Span store.", id="traces.E020")]
    try:
        import clickhouse_connect  # noqa: F401
    except ImportError:
        return [
            Error(
                "SPAN_STORE_URL names ClickHouse, but clickhouse-connect is not installed.",
                hint="pip install '.[clickhouse]'",
                id="traces.E021",
            )
        ]
    return []
