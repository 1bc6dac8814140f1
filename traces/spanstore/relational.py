"""The span store on the relational database: traces.Span, as ingestion writes it today.

The same calls as the ClickHouse store, so the pages, the API and the rollups can be
moved onto the seam one at a time. A batch token here is the IngestBatch id (as text):
spans are unique on (project, trace_id, span_id) and keep the batch that first stored
them (ON CONFLICT DO NOTHING), so the spans of a batch are exactly the ones it folds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from traces.models import Span

BUCKETS = {"15m": 900, "hour": 3600, "day": 86400}
GROUPS = ("model", "agent", "provider", "service_name", "agent_version", "prompt_version")
_FIELDS = tuple(f.attname for f in Span._meta.concrete_fields if f.attname != "id")


class RelationalSpanStore:
    kind = "relational"

    def describe(self) -> str:
        return "relational database (traces_span)"

    def ensure_schema(self) -> None:
        """The table is created by migrations."""

    def insert_spans(
        self,
        project_id: int,
        spans: Iterable[Mapping[str, Any]],
        batch_token: str,
        *,
        retention_days: int | None = None,
    ) -> int:
        objs = [
            Span(
                **{k: v for k, v in span.items() if k in _FIELDS and k != "project_id"},
                project_id=project_id,
                batch_id=int(batch_token),
            )
            for span in spans
        ]
        Span.objects.bulk_create(objs, ignore_conflicts=True, batch_size=1000)
        return len(objs)

    def discard_batch(self, project_id: int, batch_token: str) -> None:
        """Nothing to do: the spans were written in the batch's own transaction."""

    def delete_project(self, project_id: int) -> None:
        Span.objects.filter(project_id=project_id).delete()

    @staticmethod
    def _columns(columns: Sequence[str] | None) -> list[str]:
        names = list(columns or _FIELDS)
        unknown = [c for c in names if c not in _FIELDS]
        if unknown:
            raise ValueError(f"unknown span columns: {unknown}")
        return names

    def trace_spans(
        self,
        project_id: int,
        trace_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        qs = Span.objects.filter(project_id=project_id, trace_id=trace_id)
        if start is not None:
            qs = qs.filter(started_at__gte=start)
        if end is not None:
            qs = qs.filter(started_at__lte=end)
        return list(qs.order_by("started_at", "span_id").values(*self._columns(columns)))

    def batch_spans(
        self, project_id: int, batch_tokens: Sequence[str], columns: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        ids = [int(t) for t in batch_tokens]
        qs = Span.objects.filter(project_id=project_id, batch_id__in=ids)
        return list(qs.order_by("started_at", "span_id").values(*self._columns(columns)))

    def existing_keys(
        self,
        project_id: int,
        keys: Iterable[tuple[str, str]],
        start_min: datetime,
        start_max: datetime,
    ) -> set[tuple[str, str]]:
        wanted = set(keys)
        trace_ids = sorted({t for t, _ in wanted})
        found: set[tuple[str, str]] = set()
        for i in range(0, len(trace_ids), 500):
            rows = Span.objects.filter(
                project_id=project_id,
                started_at__gte=start_min,
                started_at__lte=start_max,
                trace_id__in=trace_ids[i : i + 500],
            ).values_list("trace_id", "span_id")
            found.update(key for key in rows if key in wanted)
        return found

    def project_spans(
        self,
        project_id: int,
        start: datetime,
        columns: Sequence[str] | None = None,
        chunk: int = 50_000,
    ) -> Iterator[list[dict[str, Any]]]:
        names = self._columns(columns)
        qs = (
            Span.objects.filter(project_id=project_id, started_at__gte=start)
            .order_by("started_at", "pk")
            .values(*names)
        )
        buffer: list[dict[str, Any]] = []
        for row in qs.iterator(chunk_size=chunk):
            buffer.append(row)
            if len(buffer) >= chunk:
                yield buffer
                buffer = []
        if buffer:
            yield buffer

    def cost_by(
        self,
        project_id: int,
        start: datetime,
        end: datetime,
        group: str = "model",
        bucket: str = "day",
        *,
        final: bool = True,
    ) -> list[dict[str, Any]]:
        if group not in GROUPS:
            raise ValueError(f"group must be one of {GROUPS}")
        if bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {tuple(BUCKETS)}")
        seconds = BUCKETS[bucket]
        acc: dict[tuple, list] = defaultdict(lambda: [None, 0, 0, 0])
        rows = Span.objects.filter(
            project_id=project_id, started_at__gte=start, started_at__lt=end
        ).values_list("started_at", group, "cost_usd", "input_tokens", "output_tokens")
        for started, key, cost, tokens_in, tokens_out in rows.iterator(chunk_size=5000):
            epoch = int(started.timestamp()) // seconds * seconds
            slot = acc[(datetime.fromtimestamp(epoch, tz=started.tzinfo), key)]
            if cost is not None:
                slot[0] = (slot[0] or Decimal(0)) + cost
            slot[1] += tokens_in
            slot[2] += tokens_out
            slot[3] += 1
        return [
            {
                "bucket": b,
                "key": k,
                "cost_usd": v[0],
                "input_tokens": v[1],
                "output_tokens": v[2],
                "spans": v[3],
            }
            for (b, k), v in sorted(acc.items())
        ]

    def count(self, project_id: int | None = None, *, final: bool = True) -> int:
        qs = (
            Span.objects.all() if project_id is None else Span.objects.filter(project_id=project_id)
        )
        return qs.count()
