"""Store what can be stored of a batch the database refuses.

`span_batch_ingest` writes a batch in one transaction, so a single span the database
cannot take (a number out of range, a character it cannot store) fails the whole batch.
Answering 503 would make the exporter resend the same batch forever; answering 500 loses
it. Instead the batch is split in halves, each half ingested in its own transaction, down
to single spans: the good spans are stored and each refused span is reported back in
the OTLP partial success with the database's message.

Only an outage escapes from here (see `traces.dberrors`): the caller answers 503 and the
exporter resends the batch; what was already stored is skipped on the resend.
"""

from __future__ import annotations

import logging

from traces.dberrors import is_outage
from traces.ingest import MAX_REJECT_REASONS, IngestResult, span_batch_ingest
from traces.otlp import RawSpan

logger = logging.getLogger(__name__)

# Single spans refused before the rest of the batch is refused unattempted: a fault that
# hits every span (a bug, not bad data) would otherwise cost one transaction per span.
MAX_REFUSED_SPANS = 32


def span_batch_ingest_isolating(*, project_id: int, spans: list[RawSpan]) -> IngestResult:
    """Ingest a batch; if the database refuses it, store every span it accepts and
    reject the others with the reason. Raises only when the database is unavailable."""
    try:
        return span_batch_ingest(project_id=project_id, spans=spans)
    except Exception as exc:
        if is_outage(exc):
            raise
        logger.warning(
            "project %s: batch of %d spans refused (%s: %s); storing span by span",
            project_id,
            len(spans),
            type(exc).__name__,
            _reason(exc),
        )
        first_error = exc
    total = IngestResult(received=len(spans))
    _carry_batch_notes(total, spans)
    state = {"refused": 0}
    mid = len(spans) // 2
    if len(spans) == 1:
        _reject(total, spans, first_error)
        return total
    for part in (spans[:mid], spans[mid:]):
        _isolate(project_id, part, total, state)
    return total


def _isolate(project_id: int, spans: list[RawSpan], total: IngestResult, state: dict) -> None:
    if not spans:
        return
    if state["refused"] >= MAX_REFUSED_SPANS:
        _reject(total, spans, None)
        return
    try:
        part = span_batch_ingest(project_id=project_id, spans=spans)
    except Exception as exc:
        if is_outage(exc):
            raise
        if len(spans) == 1:
            state["refused"] += 1
            if state["refused"] == 1:
                logger.exception("project %s: span refused by the database", project_id)
            _reject(total, spans, exc)
            return
        mid = len(spans) // 2
        _isolate(project_id, spans[:mid], total, state)
        _isolate(project_id, spans[mid:], total, state)
        return
    total.stored += part.stored
    total.duplicates += part.duplicates
    total.rejected += part.rejected
    for key, count in part.invalid.items():
        total.invalid[key] = total.invalid.get(key, 0) + count
    for reason in part.reasons:
        if len(total.reasons) < MAX_REJECT_REASONS:
            total.reasons.append(reason)


def _carry_batch_notes(total: IngestResult, spans: list[RawSpan]) -> None:
    """What the decoding limits took out of the request as a whole (see `otlp.SpanBatch`);
    the halves are plain lists and do not carry it."""
    over_limit = getattr(spans, "over_limit", 0)
    if over_limit:
        total.received += over_limit
        total.rejected += over_limit
        total.over_limit = over_limit
    total.limited = dict(getattr(spans, "limited", None) or {})
    total.limits = getattr(spans, "limits", None)


def _reason(exc: BaseException) -> str:
    # psycopg's message carries the server's detail lines; the first line says it.
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _reject(total: IngestResult, spans: list[RawSpan], exc: BaseException | None) -> None:
    total.rejected += len(spans)
    if len(total.reasons) >= MAX_REJECT_REASONS:
        return
    if exc is None:
        total.reasons.append(
            f"{len(spans)} span(s) not attempted after {MAX_REFUSED_SPANS} were refused"
        )
    else:
        span = spans[0]
        total.reasons.append(
            f"span {span.span_id} in trace {span.trace_id}: the database refused it "
            f"({type(exc).__name__}: {_reason(exc)})"
        )
