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

from django.db.models import (
    Count,
    Exists,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.fields.json import KT

from traces import retention
from traces.models import Span
from traces.spanstore import query

BUCKETS = {"15m": 900, "hour": 3600, "day": 86400}
GROUPS = ("model", "agent", "provider", "service_name", "agent_version", "prompt_version")
_FIELDS = tuple(f.attname for f in Span._meta.concrete_fields if f.attname != "id")


class RelationalSpanStore:
    kind = "relational"

    def describe(self) -> str:
        return "relational database (traces_span)"

    def ensure_schema(self) -> None:
        """The table is created by migrations."""

    def apply_retention(
        self, retention_days: Mapping[int, int], *, now: datetime, dry_run: bool = False
    ) -> list[tuple[int, str, int]]:
        """Nothing here: traces/partitions.py drops and deletes relational spans."""
        return []

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

    # -- the general read (docs/span-store.md, "Reads") ------------------------------

    def select_spans(
        self,
        project_ids: int | Sequence[int] | None,
        *,
        columns: Sequence[str],
        trace_ids: Sequence[str] | QuerySet | None = None,
        span_ids: Sequence[str] | None = None,
        started: tuple[datetime | None, datetime | None] | None = None,
        received: tuple[datetime | None, datetime | None] | None = None,
        equals: Mapping[str, Any] | None = None,
        nonempty: Sequence[str] = (),
        any_of: Sequence[Mapping[str, Any]] | None = None,
        lacks_keys: Sequence[str] = (),
        keys: Mapping[str, str] | None = None,
        absent_from: QuerySet | None = None,
        order: Sequence[str] | str = ("started_at", "span_id"),
        after: Any = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The spans that match, as dicts of `columns` (see query.check_select). One ORM
        query: the filters, the anti-join on `absent_from` and the order are the ones the
        call sites ran before the seam, so their plans are unchanged."""
        spec = query.check_select(
            columns=columns,
            equals=equals,
            nonempty=nonempty,
            any_of=any_of,
            lacks_keys=lacks_keys,
            order=order,
            after=after,
            keys=keys,
        )
        qs = Span.objects.all()
        if project_ids is not None:
            if isinstance(project_ids, int):
                qs = qs.filter(project_id=project_ids)
            else:
                qs = qs.filter(project_id__in=list(project_ids))
        if trace_ids is not None:
            qs = qs.filter(trace_id__in=trace_ids)
        if span_ids is not None:
            qs = qs.filter(span_id__in=list(span_ids))
        for name, (lo, hi) in (
            ("started_at", started or (None, None)),
            ("received_at", received or (None, None)),
        ):
            if lo is not None:
                qs = qs.filter(**{f"{name}__gte": lo})
            if hi is not None:
                qs = qs.filter(**{f"{name}__lt": hi})
        qs = qs.filter(_equals_q(equals or {}))
        for name in nonempty:
            qs = qs.exclude(**{name: ""})
        if any_of is not None:
            if not any_of:
                return []
            match = _clause_q(any_of[0])
            for clause in any_of[1:]:
                match |= _clause_q(clause)
            qs = qs.filter(match)
        for key in lacks_keys:
            qs = qs.exclude(attributes__has_key=key)
        if absent_from is not None:
            match = {
                "project_id": OuterRef("project_id"),
                "trace_id": OuterRef("trace_id"),
                "span_id": OuterRef("span_id"),
            }
            if start := retention.span_start_field(absent_from.model):
                # One row per span, keyed and partitioned by day of its start (PostgreSQL):
                # matched on the start too, and bounded below by the earliest candidate's
                # start, a value PostgreSQL knows before it reads, so it skips the days
                # before it (else a hash anti-join reads every day of the table).
                match[start] = OuterRef("started_at")
                earliest = (
                    qs.order_by()
                    .annotate(one=Value(1))
                    .values("one")
                    .annotate(earliest=Min("started_at"))
                    .values("earliest")
                )
                absent_from = absent_from.filter(**{f"{start}__gte": Subquery(earliest)})
            qs = qs.filter(~Exists(absent_from.filter(**match)))
        names = list(spec.columns)
        if keys:
            qs = qs.annotate(**{alias: KT(f"attributes__{key}") for alias, key in keys.items()})
            names.extend(keys)
        if spec.arrival:
            # the order spans were stored in: the primary key here
            if after is not None:
                qs = qs.filter(id__gt=after)
            qs = qs.order_by("id")
            names.append("id")
        else:
            qs = qs.order_by(*("id" if c == query.ARRIVAL else c for c in spec.order))
        if limit is not None:
            qs = qs[:limit]
        rows = list(qs.values(*names))
        if spec.arrival:
            for row in rows:
                row[query.CURSOR] = row.pop("id")
        return rows

    def sum_spans(
        self,
        project_id: int,
        *,
        group: str,
        measure: str,
        started: tuple[datetime, datetime],
        equals: Mapping[str, Any] | None = None,
        trace_ids: Sequence[str] | QuerySet | None = None,
        limit: int | None = None,
    ) -> list[tuple[Any, Any]]:
        """[(group value, amount)] largest first; `measure` is "cost_usd" or "tokens"
        (input + output). One GROUP BY (a subquery when `trace_ids` is a QuerySet)."""
        query.check_sum(group, measure, equals)
        qs = Span.objects.filter(
            project_id=project_id, started_at__gte=started[0], started_at__lt=started[1]
        ).filter(_equals_q(equals or {}))
        if trace_ids is not None:
            qs = qs.filter(trace_id__in=trace_ids)
        amount = (
            Sum("cost_usd")
            if measure == "cost_usd"
            else Sum(F("input_tokens") + F("output_tokens"))
        )
        ranked = qs.order_by().values(group).annotate(amount=amount).order_by("-amount")
        if limit is not None:
            ranked = ranked[:limit]
        return [(r[group], r["amount"]) for r in ranked]

    def count_spans(
        self,
        project_id: int,
        *,
        group: str,
        started: tuple[datetime, datetime],
        equals: Mapping[str, Any] | None = None,
        nonempty: Sequence[str] = (),
        counted: str | None = None,
    ) -> dict[Any, tuple[int, int]]:
        """{group value: (spans, of which `counted` is not empty)}: one GROUP BY."""
        return _count_spans(
            project_id,
            group=group,
            started=started,
            equals=equals,
            nonempty=nonempty,
            counted=counted,
        )

    def count(self, project_id: int | None = None, *, final: bool = True) -> int:
        qs = (
            Span.objects.all() if project_id is None else Span.objects.filter(project_id=project_id)
        )
        return qs.count()


def _count_spans(
    project_id, *, group, started, equals=None, nonempty=(), counted=None
) -> dict[Any, tuple[int, int]]:
    query.check_count(group, equals, nonempty, counted)
    qs = Span.objects.filter(
        project_id=project_id, started_at__gte=started[0], started_at__lt=started[1]
    ).filter(_equals_q(equals or {}))
    for name in nonempty:
        qs = qs.exclude(**{name: ""})
    with_value = Count("id", filter=~Q(**{counted: ""})) if counted else Value(0)
    rows = qs.values(group).annotate(n=Count("id"), v=with_value).order_by(group)
    return {r[group]: (r["n"], r["v"]) for r in rows}


def _equals_q(equals: Mapping[str, Any]) -> Q:
    q = Q()
    for name, value in equals.items():
        if isinstance(value, list | tuple | set | frozenset):
            q &= Q(**{f"{name}__in": list(value)})
        else:
            q &= Q(**{name: value})
    return q


def _clause_q(clause: Mapping[str, Any]) -> Q:
    q = _equals_q(clause.get("equals") or {})
    if clause.get("has_key"):
        q &= Q(attributes__has_key=clause["has_key"])
    return q
