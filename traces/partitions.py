"""Span partitions ahead of time, and retention enforced (traces/retention.py says how long).

PostgreSQL: `traces_span` is partitioned by `started_at` (migration 0011), and so is every
table with one row per span that another app registered (`register_span_scoped(…,
per_span=True)`, e.g. contract checks by `span_started_at`): one partition a UTC day
(`traces_span_pYYYYMMDD`), the table from before its migration as one partition
(`traces_span_legacy`, everything before the migration day + 1), and a DEFAULT partition
for what no partition covers (clock skew, the far future, a day whose partition is not
made yet). `ensure_partitions()` creates the days from today to SPAN_PARTITION_AHEAD_DAYS
ahead, and any day of the retention window whose rows sit in DEFAULT; those rows move into
the new partition in the same transaction. All these tables have the same days.

`enforce_retention()`:

1. folds pending ingest batches into the rollups first, so no span goes uncounted;
2. PostgreSQL: drops every partition (of spans and of the per-span tables) that ends at or
   before the cutoff of the project with the longest retention: a whole day goes at the
   cost of a catalog change;
3. deletes, in batches of RETENTION_DELETE_BATCH rows (one committed statement each), the
   spans older than each project's own cutoff (projects with a shorter retention than the
   longest; the DEFAULT and legacy partitions; every span on SQLite);
4. the same for trace summaries (by start), outcomes (past the cutoff and whose run's
   summary is gone) and what other apps registered as span-scoped;
5. rollups, and what is registered as rollup-scoped, past ROLLUP_RETENTION_DAYS;
6. on a ClickHouse span store, where TTL expires spans by the retention they were stored
   with, applies retention changes since (`apply_retention`).

Dropping a partition takes a short exclusive lock on its table; it waits at most
LOCK_TIMEOUT for running ingest transactions, else this run skips it and the next takes
it. Everything here is idempotent: a run killed half-way leaves nothing to repair.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, models, transaction

from traces import retention
from traces.dberrors import is_outage
from traces.models import Outcome, Project, Rollup, Span, Trace
from traces.spanstore import span_store

logger = logging.getLogger(__name__)

TABLE = Span._meta.db_table
LOCK_TIMEOUT = "5s"
_BOUND = re.compile(r"FROM \((.+?)\) TO \((.+?)\)")


@dataclass
class Partition:
    name: str
    lo: datetime | None  # None: MINVALUE
    hi: datetime | None  # None: MAXVALUE
    is_default: bool = False

    def overlaps(self, lo: datetime, hi: datetime) -> bool:
        if self.is_default:
            return False
        return (self.lo is None or self.lo < hi) and (self.hi is None or lo < self.hi)


@dataclass
class RetentionReport:
    dry_run: bool = False
    created: list[str] = field(default_factory=list)
    # (partition, rows, what a row is)
    dropped: list[tuple[str, int, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # partitions whose lock timed out
    # (what, project slug or "", rows)
    deleted: list[tuple[str, str, int]] = field(default_factory=list)
    analyzed: bool = False  # the partitioned table's statistics were refreshed
    failed: list[str] = field(default_factory=list)  # projects whose deletes failed
    # ClickHouse: (project slug, spans) whose expiry moved with a changed retention
    extended: list[tuple[str, int]] = field(default_factory=list)

    @property
    def deleted_rows(self) -> int:
        return sum(n for *_, n in self.deleted)

    @property
    def rows(self) -> int:
        return sum(n for _, n, _ in self.dropped) + self.deleted_rows

    def lines(self) -> list[str]:
        would = "would " if self.dry_run else ""
        out = [f"{would}create partition {name}" for name in self.created]
        about = "" if self.dry_run else "about "
        out += [
            f"{would}drop partition {name} ({about}{n} {noun})" for name, n, noun in self.dropped
        ]
        out += [f"skipped partition {name} (locked; next run)" for name in self.skipped]
        out += [
            f"{would}delete {n} {what}" + (f" of project {slug}" if slug else "")
            for what, slug, n in self.deleted
        ]
        out += [
            f"{would}move the expiry of {n} spans of project {slug} to its changed retention"
            for slug, n in self.extended
        ]
        out += [f"project {slug} failed (see the log; next run retries)" for slug in self.failed]
        return out


@dataclass(frozen=True)
class DailyTable:
    """A table partitioned by day of span start: spans, or rows one per span."""

    table: str
    column: str  # the span's start
    noun: str  # what a row is, for reports

    @property
    def default(self) -> str:
        return f"{self.table}_default"


SPANS = DailyTable(TABLE, "started_at", "spans")


def daily_tables() -> list[DailyTable]:
    """Spans and the registered per-span tables that are partitioned here (PostgreSQL;
    none on SQLite, nor before their migration)."""
    if connection.vendor != "postgresql":
        return []
    candidates = [SPANS] + [
        DailyTable(
            model._meta.db_table,
            model._meta.get_field(name).column,
            str(model._meta.verbose_name_plural),
        )
        for model, name in retention.per_span()
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'p' AND relname = ANY(%s) "
            "AND relnamespace = to_regnamespace(current_schema())",
            [[t.table for t in candidates]],
        )
        found = {row[0] for row in cursor.fetchall()}
    return [t for t in candidates if t.table in found]


def is_partitioned(table: str = TABLE) -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    return bool(row and row[0] == "p")


def _bound(value: str) -> datetime | None:
    value = value.strip()
    if value in ("MINVALUE", "MAXVALUE"):
        return None
    return datetime.fromisoformat(value.strip("'")).astimezone(UTC)


def partitions(table: str = TABLE) -> list[Partition]:
    """A partitioned table's partitions with their bounds (PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass "
            "ORDER BY c.relname",
            [table],
        )
        rows = cursor.fetchall()
    out = []
    for name, bound in rows:
        if bound.strip() == "DEFAULT":
            out.append(Partition(name, None, None, is_default=True))
            continue
        m = _BOUND.search(bound)
        if m is None:  # not a range partition: leave it alone
            continue
        out.append(Partition(name, _bound(m.group(1)), _bound(m.group(2))))
    return out


def _day(d: date) -> datetime:
    return retention.day_start(d)


def ensure_partitions(*, now: datetime | None = None, dry_run: bool = False) -> list[str]:
    """Create the daily partitions from today to SPAN_PARTITION_AHEAD_DAYS ahead, and the
    days of the retention window whose rows wait in DEFAULT, for spans and every per-span
    table. Returns the names created (would create, with dry_run). Does nothing on
    unpartitioned tables."""
    tables = daily_tables()
    if not tables:
        return []
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    ahead = today + timedelta(days=settings.SPAN_PARTITION_AHEAD_DAYS)
    days = {today + timedelta(days=i) for i in range((ahead - today).days + 1)}
    cutoffs = retention.project_cutoffs(now)
    oldest = min(
        (c for _, c in cutoffs.values()),
        default=retention.cutoff_for(retention.default_retention_days(), now),
    )
    created = []
    for t in tables:
        existing = partitions(t.table)
        wanted = set(days)
        if any(p.is_default for p in existing):
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT DISTINCT date_trunc('day', {t.column}, 'UTC') FROM {t.default} "
                    f"WHERE {t.column} >= %s AND {t.column} < %s",
                    [oldest, _day(ahead + timedelta(days=1))],
                )
                wanted.update(row[0].astimezone(UTC).date() for row in cursor.fetchall())
        for day in sorted(wanted):
            lo, hi = _day(day), _day(day + timedelta(days=1))
            if any(p.overlaps(lo, hi) for p in existing):
                continue
            name = f"{t.table}_p{day:%Y%m%d}"
            if not dry_run:
                try:
                    _create_partition(t, name, lo, hi)
                except DatabaseError as exc:
                    if "lock" not in str(exc).lower():
                        raise
                    # Its rows wait in DEFAULT meanwhile; the next run makes it.
                    logger.warning("retention: partition %s not created (locked): %s", name, exc)
                    continue
            existing.append(Partition(name, lo, hi))
            created.append(name)
    return created


def _create_partition(t: DailyTable, name: str, lo: datetime, hi: datetime) -> None:
    """A new day, its rows taken out of DEFAULT in the same transaction (attaching it
    checks that DEFAULT holds none of its rows any more)."""
    with transaction.atomic(), connection.cursor() as cursor:
        # Deferred foreign-key checks pending in the transaction would forbid ALTER TABLE.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        # No row may land in DEFAULT between the move and the attach (reads go on).
        cursor.execute(f"LOCK TABLE {t.default} IN EXCLUSIVE MODE")
        cursor.execute(
            f"CREATE TABLE {name} (LIKE {t.table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        cursor.execute(
            f"WITH moved AS (DELETE FROM {t.default} WHERE {t.column} >= %s "
            f"AND {t.column} < %s RETURNING *) INSERT INTO {name} SELECT * FROM moved",
            [lo, hi],
        )
        moved = cursor.rowcount
        cursor.execute(
            f"ALTER TABLE {t.table} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
            [lo, hi],
        )
    logger.info("retention: created partition %s (%d %s moved from DEFAULT)", name, moved, t.noun)


# ------------------------------------------------------------------ enforcing


def _delete_batched(
    qs: models.QuerySet, *, dry_run: bool, prune: tuple[str, datetime] | None = None
) -> int:
    """Delete what `qs` selects, RETENTION_DELETE_BATCH rows per statement, each committed
    on its own (no long transaction, no long lock). With dry_run, count it."""
    if dry_run:
        return qs.count()
    batch = max(1, settings.RETENTION_DELETE_BATCH)
    model = qs.model
    table = model._meta.db_table
    pk = model._meta.pk.column
    inner, params = qs.order_by().values_list("pk")[:batch].query.sql_with_params()
    where, extra = "", []
    if prune is not None:
        # The outer statement names the range too, so PostgreSQL prunes partitions.
        where, extra = f"{prune[0]} < %s AND ", [prune[1]]
    sql = f"DELETE FROM {table} WHERE {where}{pk} IN ({inner})"
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [*extra, *params])
            n = cursor.rowcount
        total += n
        if n < batch:
            return total


def _before(model: type[models.Model], name: str, cutoff: datetime) -> dict:
    f = model._meta.get_field(name)
    value = cutoff.date() if f.get_internal_type() == "DateField" else cutoff
    return {f"{name}__lt": value}


def _drop_partitions(
    t: DailyTable, cutoff: datetime, report: RetentionReport
) -> list[tuple[datetime | None, datetime]]:
    """Drop (with dry_run: count) the table's partitions that end at or before `cutoff`.
    Returns their ranges, skipped ones included: their rows go whole, now or at the next
    run, so the row deletes leave them out (and a dry run does not count them twice)."""
    whole = []
    for p in partitions(t.table):
        if p.is_default or p.hi is None or p.hi > cutoff:
            continue
        whole.append((p.lo, p.hi))
        with connection.cursor() as cursor:
            # Counted for the dry run; the run itself reports the planner's estimate
            # rather than read the whole day it is about to drop.
            if report.dry_run:
                cursor.execute(f"SELECT count(*) FROM {p.name}")
            else:
                cursor.execute(
                    "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = %s::regclass",
                    [p.name],
                )
            rows = cursor.fetchone()[0]
        if not report.dry_run:
            try:
                _detach_and_drop(t, p)
            except DatabaseError as exc:
                if "lock" not in str(exc).lower():
                    raise
                logger.warning("retention: partition %s not dropped (locked): %s", p.name, exc)
                report.skipped.append(p.name)
                continue
            logger.info("retention: dropped partition %s (%d %s)", p.name, rows, t.noun)
        report.dropped.append((p.name, rows, t.noun))
    return whole


def _detach_and_drop(t: DailyTable, p: Partition) -> None:
    """One statement each, waiting at most LOCK_TIMEOUT for the table's lock."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cursor.execute(f"ALTER TABLE {t.table} DETACH PARTITION {p.name}")
        cursor.execute(f"DROP TABLE {p.name}")


def _outside(
    qs: models.QuerySet, name: str, ranges: list[tuple[datetime | None, datetime]]
) -> models.QuerySet:
    """`qs` without the rows whose `name` falls in `ranges` (adjacent ones merged)."""
    merged: list[list] = []
    for lo, hi in sorted(ranges, key=lambda r: (r[0] is not None, r[0] or r[1])):
        if merged and lo is not None and merged[-1][1] >= lo:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    for lo, hi in merged:
        if lo is None:
            qs = qs.filter(**{f"{name}__gte": hi})
        else:
            qs = qs.exclude(**{f"{name}__gte": lo, f"{name}__lt": hi})
    return qs


def enforce_retention(*, now: datetime | None = None, dry_run: bool = False) -> RetentionReport:
    """Partitions ahead, then everything past retention dropped or deleted (see the
    module's docstring). Returns what was done (or would be, with dry_run)."""
    from traces.rollups import rollup_pending  # rollups imports ingest, which imports us

    now = now or datetime.now(UTC)
    report = RetentionReport(dry_run=dry_run)
    report.created = ensure_partitions(now=now, dry_run=dry_run)
    if not dry_run:
        rollup_pending(max_rounds=10**6)
    cutoffs = retention.project_cutoffs(now)
    slugs = dict(Project.objects.values_list("pk", "slug"))
    tables = daily_tables()
    whole: dict[str, list[tuple[datetime | None, datetime]]] = {}
    if tables:
        longest = min(
            (c for _, c in cutoffs.values()),
            default=retention.cutoff_for(retention.default_retention_days(), now),
        )
        for t in tables:
            whole[t.table] = _drop_partitions(t, longest, report)

    for project_id, (_days, cutoff) in sorted(cutoffs.items()):
        slug = slugs.get(project_id, str(project_id))
        steps = [
            (
                "spans",
                _outside(
                    Span.objects.filter(project_id=project_id, started_at__lt=cutoff),
                    "started_at",
                    whole.get(TABLE, []),
                ),
                ("started_at", cutoff),
            ),
            ("traces", Trace.objects.filter(project_id=project_id, started_at__lt=cutoff), None),
            (
                "outcomes",
                Outcome.objects.filter(project_id=project_id, received_at__lt=cutoff).exclude(
                    trace_id__in=Trace.objects.filter(project_id=project_id).values("trace_id")
                ),
                None,
            ),
        ]
        for model, name in retention.span_scoped():
            qs = model.objects.filter(project_id=project_id, **_before(model, name, cutoff))
            prune = None
            if model._meta.db_table in whole:
                qs = _outside(qs, name, whole[model._meta.db_table])
                prune = (model._meta.get_field(name).column, cutoff)
            steps.append((model._meta.verbose_name_plural, qs, prune))
        try:
            for what, qs, prune in steps:
                n = _delete_batched(qs, dry_run=dry_run, prune=prune)
                if n:
                    report.deleted.append((str(what), slug, n))
        except DatabaseError as exc:
            if is_outage(exc):
                raise
            # One project's rows must not stop the others' retention: said, and retried
            # at the next run (every step is idempotent).
            logger.exception("retention: project %s failed; the others go on", slug)
            report.failed.append(slug)

    rollup_cutoff = retention.cutoff_for(retention.rollup_retention_days(), now)
    rollups = [(Rollup, "bucket_start"), *retention.rollup_scoped()]
    for model, name in rollups:
        qs = model.objects.filter(**_before(model, name, rollup_cutoff))
        n = _delete_batched(qs, dry_run=dry_run)
        if n:
            report.deleted.append((str(model._meta.verbose_name_plural), "", n))
    if not dry_run and (report.created or report.dropped) and tables:
        # Autovacuum never analyzes a partitioned table itself, only its partitions, and
        # without the parent's statistics the planner guesses joins over all spans badly
        # (a first contract check over fresh spans took minutes). Once a day in practice:
        # when a day is created or dropped. ANALYZE samples a bounded number of rows.
        with connection.cursor() as cursor:
            for t in tables:
                cursor.execute(f"ANALYZE {t.table}")
        report.analyzed = True
    store = span_store()
    if store.kind != "relational":
        # Last, so that an unreachable span store stops nothing above (the next run
        # retries): TTL expires ClickHouse spans; this applies retention changes.
        applied = store.apply_retention(
            {pk: days for pk, (days, _) in cutoffs.items()}, now=now, dry_run=dry_run
        )
        for project_id, what, n in applied:
            slug = slugs.get(project_id, str(project_id))
            if what == "failed":
                report.failed.append(slug)
            elif what == "expiries":
                report.extended.append((slug, n))
            else:
                report.deleted.append((what, slug, n))
    return report
