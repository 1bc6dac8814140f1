"""Retention on the ClickHouse span store (chDB): TTL expires a span by the retention it
was stored with, and the retention task applies a project's retention changed since —
spans past a shortened one are deleted, spans a lengthened one keeps get a later expiry."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import ProjectFactory
from tests.traces.test_clickhouse_store import span
from traces import retention
from traces.partitions import enforce_retention

NOW = datetime.now(UTC).replace(microsecond=0)
_tokens = itertools.count(1)


@pytest.fixture
def clean(ch_store):
    """Project ids whose spans are deleted from the session's chDB store before and after
    the test (SQLite hands the same project ids out again in other tests)."""
    used: list[int] = []

    def use(*project_ids: int) -> None:
        for project_id in project_ids:
            ch_store.delete_project(project_id)
            used.append(project_id)

    yield use
    for project_id in used:
        ch_store.delete_project(project_id)


def days_ago(n: int) -> datetime:
    d = NOW.date() - timedelta(days=n)
    return datetime(d.year, d.month, d.day, 12, tzinfo=UTC)


def store_spans(store, pid, ages: list[int], *, retention_days: int) -> None:
    rows = [
        span(i, started_at=days_ago(n), ended_at=days_ago(n), received_at=NOW)
        for i, n in enumerate(ages)
    ]
    store.insert_spans(pid, rows, f"ret-{next(_tokens)}", retention_days=retention_days)


def stored(store, pid) -> list[datetime]:
    return sorted(r["started_at"] for r in store.select_spans(pid, columns=["started_at"]))


def expiries(store, pid) -> list[datetime]:
    rows = store.client.query(
        f"SELECT expires_at FROM {store.table} WHERE project_id = {{p:UInt64}} ORDER BY 1",
        parameters={"p": pid},
    ).result_rows
    return [r[0].replace(tzinfo=UTC) if r[0].tzinfo is None else r[0] for r in rows]


def expected_expiry(age: int, days: int) -> datetime:
    d = NOW.date() - timedelta(days=age)
    return datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(days=days + 1)


def test_a_shortened_retention_deletes_what_it_no_longer_keeps(ch_store, clean):
    pid = 900_001
    clean(pid)
    store_spans(ch_store, pid, [10, 1], retention_days=30)

    plan = [(pid, "spans", 1), (pid, "expiries", 1)]
    assert ch_store.apply_retention({pid: 3}, now=NOW, dry_run=True) == plan
    assert len(stored(ch_store, pid)) == 2  # a dry run deletes nothing

    assert ch_store.apply_retention({pid: 3}, now=NOW) == plan
    assert stored(ch_store, pid) == [days_ago(1)]
    # the span kept gets the new retention's expiry: TTL takes it then, no delete needed
    assert expiries(ch_store, pid) == [expected_expiry(1, 3)]
    assert ch_store.apply_retention({pid: 3}, now=NOW) == []  # done: nothing more


def test_a_lengthened_retention_moves_the_expiry_before_ttl_takes_the_spans(ch_store, clean):
    pid = 900_003
    clean(pid)
    store_spans(ch_store, pid, [10, 1], retention_days=15)
    assert expiries(ch_store, pid) == [expected_expiry(10, 15), expected_expiry(1, 15)]

    assert ch_store.apply_retention({pid: 60}, now=NOW) == [(pid, "expiries", 2)]

    assert expiries(ch_store, pid) == [expected_expiry(10, 60), expected_expiry(1, 60)]
    assert len(stored(ch_store, pid)) == 2
    assert ch_store.apply_retention({pid: 60}, now=NOW) == []


def test_spans_whose_expiry_is_due_are_left_to_ttl_and_others_untouched(ch_store, clean):
    pid, other = 900_005, 900_006
    clean(pid, other)
    store_spans(ch_store, pid, [10], retention_days=5)  # expired 4 days ago: TTL's
    store_spans(ch_store, other, [10], retention_days=30)
    assert ch_store.apply_retention({pid: 5, other: 30}, now=NOW) == []
    assert expiries(ch_store, other) == [expected_expiry(10, 30)]


@pytest.mark.django_db
def test_the_retention_task_applies_a_projects_new_retention_on_clickhouse(
    ch_store, settings, clean
):
    settings.SPAN_STORE_URL = ch_store.url
    settings.SPAN_RETENTION_DAYS = 30
    retention.retention_cache_clear()
    shortened = ProjectFactory(slug="shortened")
    lengthened = ProjectFactory(slug="lengthened")
    clean(shortened.pk, lengthened.pk)
    store_spans(ch_store, shortened.pk, [10, 1], retention_days=30)
    store_spans(ch_store, lengthened.pk, [10], retention_days=30)
    shortened.retention_days = 3
    shortened.save()
    lengthened.retention_days = 90
    lengthened.save()

    report = enforce_retention(now=NOW)

    assert ("spans", "shortened", 1) in report.deleted
    assert sorted(report.extended) == [("lengthened", 1), ("shortened", 1)]
    assert "move the expiry of 1 spans of project lengthened" in "\n".join(report.lines())
    assert stored(ch_store, shortened.pk) == [days_ago(1)]
    assert expiries(ch_store, lengthened.pk) == [expected_expiry(10, 90)]
    assert enforce_retention(now=NOW).extended == []


@pytest.mark.django_db
def test_one_projects_failing_statement_does_not_stop_the_others(
    ch_store, settings, clean, monkeypatch
):
    settings.SPAN_STORE_URL = ch_store.url
    settings.SPAN_RETENTION_DAYS = 30
    retention.retention_cache_clear()
    broken, fine = ProjectFactory(slug="broken"), ProjectFactory(slug="fine")
    clean(broken.pk, fine.pk)
    for project in (broken, fine):
        store_spans(ch_store, project.pk, [10, 1], retention_days=30)
        project.retention_days = 3
        project.save()
    real = type(ch_store.client).command

    def command(client, sql, *args, parameters=None, **kwargs):
        if (parameters or {}).get("p") == broken.pk:
            raise ValueError("a statement this project's rows make fail")
        return real(client, sql, *args, parameters=parameters, **kwargs)

    monkeypatch.setattr(type(ch_store.client), "command", command)
    report = enforce_retention(now=NOW)
    monkeypatch.undo()  # before `clean` deletes the projects' spans

    assert report.failed == ["broken"]
    assert ("spans", "fine", 1) in report.deleted
    assert stored(ch_store, fine.pk) == [days_ago(1)]
    assert len(stored(ch_store, broken.pk)) == 2  # untouched; the next run retries
