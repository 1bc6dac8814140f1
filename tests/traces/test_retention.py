"""Retention: what is past a project's retention goes (whole partitions on PostgreSQL,
batched deletes otherwise), what is within it stays, rollups outlive spans, a span for a
dropped period is refused on its own, and budgets still add up."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from types import SimpleNamespace

import orjson
import pytest
from django.core.management import call_command
from django.db import IntegrityError, OperationalError, connection, transaction
from django.test import Client

from budgets.evaluate import budget_evaluate
from budgets.models import BudgetEnvelope
from controls.checks import contract_checks_run
from controls.models import ContractCheck
from tests.factories import ProjectFactory, agent_run, new_span_id, new_trace_id, raw_span
from traces import partitions, retention
from traces.ingest import span_batch_ingest
from traces.models import Outcome, Project, Rollup, Span, Trace
from traces.partitions import enforce_retention, ensure_partitions
from traces.rollups import rollup_pending, rollup_rebuild
from traces.services import ingest_key_create

pytestmark = pytest.mark.django_db
postgres_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="partitions are PostgreSQL's"
)

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()


def days_ago(n: int, hour: int = 12) -> datetime:
    d = TODAY - timedelta(days=n)
    return datetime(d.year, d.month, d.day, hour, tzinfo=UTC)


def table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [name])
        return cursor.fetchone()[0] is not None


def partition_of(row: Span | ContractCheck) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text FROM {row._meta.db_table} WHERE id = %s", [row.pk]
        )
        return cursor.fetchone()[0]


@pytest.fixture
def keep_everything(settings):
    """Ingest old spans first (nothing refused), set the retention to test afterwards."""
    settings.SPAN_RETENTION_DAYS = 20_000
    retention.retention_cache_clear()
    yield settings
    retention.retention_cache_clear()


@pytest.fixture
def daily_only(db):
    """PostgreSQL: the test database's `traces_span_legacy` partition (everything before
    the migration day + 1, empty here) taken away inside the test's transaction, so that
    past days are daily partitions or DEFAULT as they are in a database a while after the
    migration."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for table in ("traces_span", "controls_contractcheck"):
            cursor.execute(f"ALTER TABLE {table} DETACH PARTITION {table}_legacy")
            cursor.execute(f"DROP TABLE {table}_legacy")


def run(project, start, **kwargs) -> str:
    trace_id, _ = agent_run(project=project, start=start, **kwargs)
    return trace_id


# ------------------------------------------------------------------ both backends


def test_past_retention_gone_within_untouched_per_project(keep_everything):
    short = ProjectFactory(slug="short")
    default = ProjectFactory(slug="default")
    old_short, new_short = run(short, days_ago(5)), run(short, days_ago(1))
    old_default, new_default = run(default, days_ago(40)), run(default, days_ago(5))
    rollup_pending()
    rollups_before = Rollup.objects.count()
    spans_new_short = Span.objects.filter(trace_id=new_short).count()
    spans_new_default = Span.objects.filter(trace_id=new_default).count()
    assert spans_new_short and spans_new_default

    keep_everything.SPAN_RETENTION_DAYS = 30
    short.retention_days = 2
    short.save()
    enforce_retention(now=NOW)

    for gone in (old_short, old_default):
        assert not Span.objects.filter(trace_id=gone).exists()
        assert not Trace.objects.filter(trace_id=gone).exists()
    assert Span.objects.filter(project=short, trace_id=new_short).count() == spans_new_short
    assert Span.objects.filter(project=default, trace_id=new_default).count() == spans_new_default
    assert Trace.objects.filter(trace_id__in=[new_short, new_default]).count() == 2
    # The rollups (400 days by default) keep the days whose spans are gone.
    assert Rollup.objects.count() == rollups_before


def test_one_projects_failing_delete_does_not_stop_the_others(keep_everything, monkeypatch):
    from django.db import IntegrityError

    broken, fine = ProjectFactory(slug="broken"), ProjectFactory(slug="fine")
    old_broken, old_fine = run(broken, days_ago(40)), run(fine, days_ago(40))
    keep_everything.SPAN_RETENTION_DAYS = 30
    real = partitions._delete_batched

    def delete(qs, **kwargs):
        if qs.model is Span and {broken.pk} == set(qs.values_list("project_id", flat=True)):
            raise IntegrityError("a row this project cannot lose yet")
        return real(qs, **kwargs)

    monkeypatch.setattr(partitions, "_delete_batched", delete)
    report = enforce_retention(now=NOW)

    assert report.failed == ["broken"]
    assert "project broken failed (see the log; next run retries)" in report.lines()
    assert not Span.objects.filter(trace_id=old_fine).exists()
    assert not Trace.objects.filter(trace_id=old_fine).exists()
    # the failing project's rows wait for the next run (on PostgreSQL its day may have
    # been dropped whole: what matters is that the other project was not stopped)
    assert Trace.objects.filter(trace_id=old_broken).exists()


def test_deletes_go_in_batches_and_take_what_goes_with_spans(keep_everything):
    keep_everything.RETENTION_DELETE_BATCH = 3
    project = ProjectFactory()
    old = [run(project, days_ago(10, hour=h), tools=2) for h in range(3)]
    kept = run(project, days_ago(1))
    for trace_id, when in ((old[0], days_ago(10)), (kept, days_ago(1))):
        ContractCheck.objects.create(
            project=project,
            trace_id=trace_id,
            span_id=new_span_id(),
            tool_name="refund",
            outcome="ok",
            span_started_at=when,
        )
    for trace_id in (old[0], kept):
        Outcome.objects.create(
            project=project,
            trace_id=trace_id,
            kind="kpi",
            name="resolved",
            value=1,
            source="api",
            recorded_at=days_ago(10),
            received_at=days_ago(10),
        )
    rollup_pending()
    assert Span.objects.filter(trace_id__in=old).count() == 15  # 5 spans a run

    keep_everything.SPAN_RETENTION_DAYS = 7
    report = enforce_retention(now=NOW)

    assert not Span.objects.filter(trace_id__in=old).exists()
    assert Span.objects.filter(trace_id=kept).count() == 4
    assert ("spans", project.slug, 15) in report.deleted
    assert list(ContractCheck.objects.values_list("trace_id", flat=True)) == [kept]
    # An outcome goes with its run's summary; one whose run is still there stays.
    assert list(Outcome.objects.values_list("trace_id", flat=True)) == [kept]


def test_dry_run_changes_nothing_and_says_what_would_go(keep_everything):
    project = ProjectFactory(slug="dry")
    run(project, days_ago(9))
    keep_everything.SPAN_RETENTION_DAYS = 3
    out = StringIO()
    call_command("retention", "--dry-run", stdout=out)
    assert "would delete 4 spans of project dry" in out.getvalue()
    assert "would delete 1 traces of project dry" in out.getvalue()
    assert Span.objects.count() == 4

    call_command("retention", stdout=StringIO())
    assert Span.objects.count() == 0


def test_rollups_are_kept_longer_and_then_go(keep_everything):
    project = ProjectFactory()
    run(project, days_ago(10))
    run(project, days_ago(500))
    rollup_pending()
    keep_everything.SPAN_RETENTION_DAYS = 3
    keep_everything.ROLLUP_RETENTION_DAYS = 400
    enforce_retention(now=NOW)
    assert Span.objects.count() == 0
    starts = {r.date() for r in Rollup.objects.values_list("bucket_start", flat=True)}
    assert starts == {days_ago(10).date()}


def test_a_budget_adds_up_the_same_before_and_after_retention(keep_everything):
    project = ProjectFactory()
    now = datetime(2025, 11, 20, 10, tzinfo=UTC)
    for day in (3, 8, 15, 19):
        run(project, datetime(2025, 11, day, 9, tzinfo=UTC), tools=3)
    rollup_pending()
    envelope = BudgetEnvelope.objects.create(
        project=project,
        name="Month",
        metric=BudgetEnvelope.Metric.COST,
        limit=Decimal(1000),
        period=BudgetEnvelope.Period.MONTH,
        timezone="UTC",
        thresholds=[50, 80, 100],
        forecast=False,
    )
    BudgetEnvelope.objects.filter(pk=envelope.pk).update(
        created_at=datetime(2025, 1, 1, tzinfo=UTC)
    )
    envelope.refresh_from_db()
    before = budget_evaluate(envelope=envelope, now=now).value
    assert before > 0

    keep_everything.SPAN_RETENTION_DAYS = 2  # spans from the 18th on are kept
    enforce_retention(now=now)
    assert Span.objects.filter(started_at__lt=datetime(2025, 11, 18, tzinfo=UTC)).count() == 0
    assert Span.objects.exists()

    envelope.refresh_from_db()
    assert budget_evaluate(envelope=envelope, now=now).value == before
    # Rebuilding the rollups from spans keeps the days whose spans are gone.
    rollup_rebuild(project_id=project.pk, now=now)
    envelope.refresh_from_db()
    assert budget_evaluate(envelope=envelope, now=now).value == before


def test_a_span_before_the_window_is_refused_on_its_own(settings):
    settings.SPAN_RETENTION_DAYS = 30
    project = ProjectFactory()
    project.retention_days = 2
    project.save()
    trace_id = new_trace_id()
    spans = [
        raw_span(trace_id=trace_id, start=days_ago(3)),
        raw_span(trace_id=trace_id, start=NOW - timedelta(minutes=5)),
    ]
    result = span_batch_ingest(project_id=project.pk, spans=spans)
    assert (result.stored, result.rejected) == (1, 1)
    assert "starts before this project's 2-day retention window" in result.message
    assert "not stored" in result.message


def _otlp_json(spans: list[tuple[str, str, datetime]]) -> bytes:
    def ns(dt):
        return str(int(dt.timestamp()) * 10**9)

    return orjson.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "bot"}}]
                    },
                    "scopeSpans": [
                        {
                            "scope": {"name": "test"},
                            "spans": [
                                {
                                    "traceId": t,
                                    "spanId": s,
                                    "name": "step",
                                    "kind": 1,
                                    "startTimeUnixNano": ns(at),
                                    "endTimeUnixNano": ns(at + timedelta(seconds=1)),
                                }
                                for t, s, at in spans
                            ],
                        }
                    ],
                }
            ]
        }
    )


def test_the_endpoint_answers_a_span_for_a_dropped_period_in_partial_success(settings):
    settings.SPAN_RETENTION_DAYS = 30
    project = ProjectFactory()
    project.retention_days = 7
    project.save()
    secret = ingest_key_create(project=project).secret
    trace_id = new_trace_id()
    old = new_span_id()
    body = _otlp_json(
        [
            (trace_id, old, days_ago(8)),
            (trace_id, new_span_id(), NOW - timedelta(minutes=2)),
            (trace_id, new_span_id(), NOW - timedelta(minutes=1)),
        ]
    )
    response = Client().post(
        "/v1/traces",
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert response.status_code == 200
    partial = orjson.loads(response.content)["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert (
        f"span {old}: starts before this project's 7-day retention window"
        in partial["errorMessage"]
    )
    assert Span.objects.filter(project=project).count() == 2
    assert not Span.objects.filter(span_id=old).exists()


def test_a_resent_batch_is_stored_once(keep_everything):
    project = ProjectFactory()
    _, spans = agent_run(project=project, start=days_ago(3), tools=2, store=False)
    far = raw_span(trace_id=new_trace_id(), start=NOW + timedelta(days=400))  # DEFAULT
    first = span_batch_ingest(project_id=project.pk, spans=[*spans, far])
    again = span_batch_ingest(project_id=project.pk, spans=[*spans, far])
    assert (first.stored, again.stored, again.duplicates) == (6, 0, 6)
    assert Span.objects.count() == 6
    assert Trace.objects.get(trace_id=spans[0].trace_id).span_count == 5


def test_the_system_check_warns_when_rollups_go_before_spans(settings):
    settings.SPAN_RETENTION_DAYS = 30
    settings.ROLLUP_RETENTION_DAYS = 10
    assert [w.id for w in retention.check_rollup_retention()] == ["traces.W010"]
    settings.ROLLUP_RETENTION_DAYS = 400
    assert retention.check_rollup_retention() == []
    ProjectFactory(slug="long", retention_days=500)
    warnings = retention.check_project_retention(databases=["default"])
    assert [w.id for w in warnings] == ["traces.W011"]
    assert "long" in warnings[0].msg


def test_createproject_takes_a_retention():
    call_command("createproject", "kept-short", "--retention-days", "14", stdout=StringIO())
    assert Project.objects.get(slug="kept-short").retention_days == 14


# ------------------------------------------------------------------ PostgreSQL partitions


@postgres_only
def test_partitions_exist_ahead(settings):
    settings.SPAN_PARTITION_AHEAD_DAYS = 7
    ensure_partitions(now=NOW)
    for i in range(1, 8):
        day = TODAY + timedelta(days=i)
        assert table_exists(f"traces_span_p{day:%Y%m%d}")
        assert table_exists(f"controls_contractcheck_p{day:%Y%m%d}")
    assert ensure_partitions(now=NOW) == []  # idempotent


@postgres_only
def test_a_whole_expired_partition_is_dropped_not_deleted(keep_everything, daily_only):
    project = ProjectFactory()
    ensure_partitions(now=days_ago(40))  # days 40 … 33 ago
    ensure_partitions(now=days_ago(5))
    old, kept = run(project, days_ago(40)), run(project, days_ago(5))
    old_span = Span.objects.filter(trace_id=old).first()
    expired = f"traces_span_p{days_ago(40):%Y%m%d}"
    assert partition_of(old_span) == expired

    keep_everything.SPAN_RETENTION_DAYS = 30
    dry = enforce_retention(now=NOW, dry_run=True)
    # the day's spans are counted once, as a partition to drop, not also as rows
    assert (expired, 4, "spans") in dry.dropped
    assert all(what != "spans" for what, _, _ in dry.deleted)
    assert table_exists(expired)

    report = enforce_retention(now=NOW)

    assert not table_exists(expired)
    assert expired in [name for name, *_ in report.dropped]
    assert all(what != "spans" for what, _, _ in report.deleted)  # no row deletes needed
    assert not Span.objects.filter(trace_id=old).exists()
    assert Span.objects.filter(trace_id=kept).count() == 4
    assert table_exists(f"traces_span_p{days_ago(5):%Y%m%d}")
    # autovacuum never analyzes the partitioned parent: the run that changed its days did
    assert report.analyzed
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stats WHERE tablename = 'traces_span' AND inherited"
        )
        assert cursor.fetchone()[0] > 0


@postgres_only
def test_contract_checks_are_partitioned_like_spans_and_go_with_their_day(
    keep_everything, daily_only
):
    project = ProjectFactory()
    ensure_partitions(now=days_ago(40))
    ensure_partitions(now=days_ago(5))
    old, kept = run(project, days_ago(40), tools=2), run(project, days_ago(5), tools=2)
    assert contract_checks_run() == 4
    # A checked span is not checked again: the anti-join matches the check's start too.
    assert contract_checks_run() == 0
    old_check = ContractCheck.objects.filter(trace_id=old).first()
    expired = f"controls_contractcheck_p{days_ago(40):%Y%m%d}"
    assert partition_of(old_check) == expired
    assert partitions.is_partitioned("controls_contractcheck")

    keep_everything.SPAN_RETENTION_DAYS = 30
    dry = enforce_retention(now=NOW, dry_run=True)
    assert (expired, 2, "contract checks") in dry.dropped
    assert all(what != "contract checks" for what, _, _ in dry.deleted)

    report = enforce_retention(now=NOW)

    assert not table_exists(expired)
    assert (expired, "contract checks") in [(name, noun) for name, _, noun in report.dropped]
    assert all(what != "contract checks" for what, _, _ in report.deleted)  # no row deletes
    assert not ContractCheck.objects.filter(trace_id=old).exists()
    assert ContractCheck.objects.filter(trace_id=kept).count() == 2
    assert f"drop partition {expired}" in "\n".join(report.lines())
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stats WHERE tablename = 'controls_contractcheck' AND inherited"
        )
        assert cursor.fetchone()[0] > 0  # the parent analyzed as well


@postgres_only
def test_a_shorter_retention_deletes_contract_checks_of_a_kept_partition(
    keep_everything, daily_only
):
    short, other = ProjectFactory(), ProjectFactory()
    ensure_partitions(now=days_ago(10))
    gone, stays = run(short, days_ago(10)), run(other, days_ago(10))
    contract_checks_run()
    keep_everything.SPAN_RETENTION_DAYS = 30
    short.retention_days = 3
    short.save()
    report = enforce_retention(now=NOW)
    assert table_exists(f"controls_contractcheck_p{days_ago(10):%Y%m%d}")
    assert ("contract checks", short.slug, 1) in report.deleted
    assert not ContractCheck.objects.filter(trace_id=gone).exists()
    assert ContractCheck.objects.filter(trace_id=stays).count() == 1


@postgres_only
def test_the_contract_check_migration_goes_back_and_forth_keeping_every_check():
    migration = importlib.import_module("controls.migrations.0009_contractcheck_partitions")
    editor = SimpleNamespace(connection=connection)
    project = ProjectFactory()
    trace_id, span_id = new_trace_id(), new_span_id()

    def check(span: str, start: datetime) -> ContractCheck:
        return ContractCheck.objects.create(
            project=project,
            trace_id=trace_id,
            span_id=span,
            tool_name="refund",
            outcome="ok",
            span_started_at=start,
        )

    check(span_id, days_ago(3))
    check(span_id, days_ago(3, hour=13))  # one span stored with two starts
    check(new_span_id(), days_ago(1))

    def kind() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'controls_contractcheck'")
            return cursor.fetchone()[0]

    migration.backward(None, editor)
    assert kind() == "r"
    assert ContractCheck.objects.count() == 2  # the old key had no start: the earliest stays
    assert ContractCheck.objects.get(span_id=span_id).span_started_at == days_ago(3)

    migration.forward(None, editor)
    assert kind() == "p"
    assert ContractCheck.objects.count() == 2
    # The key holds the start again; a check for the same span and start is refused.
    with pytest.raises(IntegrityError), transaction.atomic():
        check(span_id, days_ago(3))


@postgres_only
def test_a_day_whose_drop_is_locked_out_waits_for_the_next_run_whole(
    keep_everything, daily_only, monkeypatch
):
    """Ingest held the table's lock past LOCK_TIMEOUT: the day is skipped, and its rows
    are not deleted one by one meanwhile; the next run drops it."""
    project = ProjectFactory()
    ensure_partitions(now=days_ago(40))
    old = run(project, days_ago(40))
    expired = f"traces_span_p{days_ago(40):%Y%m%d}"
    real = partitions._detach_and_drop

    def locked(t, p):
        raise OperationalError("canceling statement due to lock timeout")

    monkeypatch.setattr(partitions, "_detach_and_drop", locked)
    keep_everything.SPAN_RETENTION_DAYS = 30
    report = enforce_retention(now=NOW)

    assert expired in report.skipped
    assert all(what != "spans" for what, _, _ in report.deleted)
    assert Span.objects.filter(trace_id=old).count() == 4
    assert f"skipped partition {expired} (locked; next run)" in report.lines()

    monkeypatch.setattr(partitions, "_detach_and_drop", real)
    assert expired in [name for name, *_ in enforce_retention(now=NOW).dropped]
    assert not Span.objects.filter(trace_id=old).exists()


@postgres_only
def test_a_shorter_retention_deletes_rows_of_a_kept_partition(keep_everything, daily_only):
    short, other = ProjectFactory(), ProjectFactory()
    ensure_partitions(now=days_ago(10))
    gone, stays = run(short, days_ago(10)), run(other, days_ago(10))
    keep_everything.SPAN_RETENTION_DAYS = 30
    short.retention_days = 3
    short.save()
    enforce_retention(now=NOW)
    assert table_exists(f"traces_span_p{days_ago(10):%Y%m%d}")
    assert not Span.objects.filter(trace_id=gone).exists()
    assert Span.objects.filter(trace_id=stays).count() == 4


@postgres_only
def test_rows_waiting_in_default_move_into_a_new_partition(keep_everything, daily_only):
    project = ProjectFactory()
    trace_id = run(project, days_ago(4))
    span = Span.objects.filter(trace_id=trace_id).first()
    assert partition_of(span) == "traces_span_default"

    created = ensure_partitions(now=NOW)

    day = f"traces_span_p{days_ago(4):%Y%m%d}"
    assert day in created
    assert partition_of(span) == day
    assert Span.objects.filter(trace_id=trace_id).count() == 4
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM traces_span_default")
        assert cursor.fetchone()[0] == 0
    # A re-sent copy of those spans lands in the new partition and conflicts there.
    spans = [
        raw_span(
            trace_id=s.trace_id,
            span_id=s.span_id,
            parent_span_id=s.parent_span_id,
            start=s.started_at,
        )
        for s in Span.objects.filter(trace_id=trace_id)
    ]
    assert span_batch_ingest(project_id=project.pk, spans=spans).stored == 0
    assert Span.objects.filter(trace_id=trace_id).count() == 4


@postgres_only
def test_default_partition_rows_past_retention_are_deleted(keep_everything, daily_only):
    project = ProjectFactory()
    old = run(project, days_ago(50))  # no partition for that day: DEFAULT
    keep_everything.SPAN_RETENTION_DAYS = 30
    enforce_retention(now=NOW)
    assert not Span.objects.filter(trace_id=old).exists()


@postgres_only
def test_the_migration_partitions_a_table_holding_spans():
    migration = importlib.import_module("traces.migrations.0011_span_retention")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE conv_span (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
            "project_id bigint NOT NULL, trace_id varchar(32) NOT NULL, "
            "span_id varchar(16) NOT NULL, started_at timestamptz NOT NULL, batch_id bigint, "
            "kind smallint NOT NULL CHECK (kind >= 0), "
            "CONSTRAINT conv_span_unique UNIQUE (project_id, trace_id, span_id))"
        )
        cursor.execute("CREATE INDEX conv_span_batch ON conv_span (batch_id)")
        cursor.execute(
            "INSERT INTO conv_span (project_id, trace_id, span_id, started_at, kind) "
            "SELECT 1, md5(g::text), left(md5(g::text), 16), now() - g * interval '1 hour', 0 "
            "FROM generate_series(-50, 2000) g"
        )
        cursor.execute("SELECT count(*), max(id) FROM conv_span")
        count, max_id = cursor.fetchone()

        assert migration.partition_span_table(
            cursor, table="conv_span", unique="conv_span_unique_start", today=TODAY, ahead_days=3
        )
        assert not migration.partition_span_table(cursor, table="conv_span")  # once

        cursor.execute("SELECT count(*) FROM conv_span")
        assert cursor.fetchone()[0] == count
        cursor.execute(
            "SELECT tableoid::regclass::text, count(*) FROM conv_span GROUP BY 1 ORDER BY 1"
        )
        where = dict(cursor.fetchall())
        tomorrow = f"conv_span_p{TODAY + timedelta(days=1):%Y%m%d}"
        ahead = {f"conv_span_p{TODAY + timedelta(days=i):%Y%m%d}" for i in (2, 3)}
        assert set(where) <= {"conv_span_legacy", tomorrow, "conv_span_default", *ahead}
        assert where[tomorrow] > 0  # tomorrow's rows left the old table
        assert where["conv_span_legacy"] >= 2000
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'conv_span'")
        assert cursor.fetchone()[0] == "p"
        # New rows get ids after the old ones; the key now holds the start.
        cursor.execute(
            "INSERT INTO conv_span (project_id, trace_id, span_id, started_at, kind) "
            "VALUES (1, 'x', 'y', now(), 0) RETURNING id"
        )
        assert cursor.fetchone()[0] > max_id
        cursor.execute(
            "INSERT INTO conv_span (project_id, trace_id, span_id, started_at, kind) "
            "VALUES (1, 'x', 'y', now() - interval '1 second', 0) "
            "ON CONFLICT (project_id, trace_id, span_id, started_at) DO NOTHING RETURNING id"
        )
        assert cursor.fetchone() is not None
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'conv_span_batch'")
        assert "public.conv_span USING" in cursor.fetchone()[0]

        # And back (the migration's reverse), every row kept.
        assert migration.unpartition_span_table(
            cursor, table="conv_span", unique="conv_span_unique_start", old_unique="conv_old"
        )
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'conv_span'")
        assert cursor.fetchone()[0] == "r"
        cursor.execute("SELECT count(*) FROM conv_span")
        assert cursor.fetchone()[0] == count + 1  # the span stored with two starts: once


def test_partitions_module_does_nothing_without_partitions():
    if connection.vendor == "postgresql":
        assert partitions.is_partitioned()
        assert [t.table for t in partitions.daily_tables()] == [
            "traces_span",
            "controls_contractcheck",
        ]
    else:
        assert not partitions.is_partitioned()
        assert partitions.daily_tables() == []
        assert ensure_partitions(now=NOW) == []


def test_the_admin_shows_each_projects_retention_and_the_default_in_days(settings, admin_client):
    settings.SPAN_RETENTION_DAYS, settings.ROLLUP_RETENTION_DAYS = 45, 500
    retention.retention_cache_clear()
    ProjectFactory(slug="default-kept")
    ProjectFactory(slug="short-kept", retention_days=7)

    listing = admin_client.get("/admin/traces/project/").content.decode()
    assert "45 days (default)" in listing and "7 days" in listing

    page = admin_client.get("/admin/traces/project/add/").content.decode()
    assert "Blank: 45 days (SPAN_RETENTION_DAYS)" in page
    assert "kept 500 days (ROLLUP_RETENTION_DAYS)" in page
