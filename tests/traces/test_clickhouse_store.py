"""The ClickHouse span store, for real, on chDB (the ClickHouse engine in process) driven
through clickhouse-connect: the same client API and SQL as a ClickHouse server.

chDB allows one engine (one data path) per process, so one store on one temporary
path serves the whole session (`ch_store`, tests/conftest.py); each test writes under a
project id of its own.
"""

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from traces.spanstore import span_store
from traces.spanstore.clickhouse import ClickHouseSpanStore, parse_url

T0 = datetime(2031, 1, 31, 23, 0, tzinfo=UTC)  # months boundary in the middle of the data
RETENTION = 3650
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
_projects = itertools.count(1000, 2)  # a test may also write to its pid + 1


@pytest.fixture
def pid():
    return next(_projects)


@pytest.fixture(params=["clickhouse", "relational"])
def store_pid(request, db):
    """The same calls on both stores: chDB, and traces.Span on this run's database
    (PostgreSQL or SQLite). Batch tokens are numeric, as IngestBatch ids are."""
    if request.param == "clickhouse":
        return request.getfixturevalue("ch_store"), next(_projects), next(_projects)
    from tests.factories import ProjectFactory
    from traces.spanstore.relational import RelationalSpanStore

    return RelationalSpanStore(), ProjectFactory().pk, ProjectFactory().pk


def span(i, trace=TRACE, **kw):
    start = T0 + timedelta(minutes=10 * i)
    row = {
        "trace_id": trace,
        "span_id": f"{i + 1:016x}",
        "parent_span_id": "" if i == 0 else f"{1:016x}",
        "name": f"step {i}",
        "started_at": start,
        "ended_at": start + timedelta(seconds=2),
        "duration_ms": 2000.0,
        "status": "ok",
        "step": "llm",
        "agent": "triage",
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": 100 * (i + 1),
        "output_tokens": 10 * (i + 1),
        "cost_usd": Decimal("0.0012345678") * (i + 1),
        "cost_source": "price_data",
        "attributes": {"gen_ai.request.model": "gpt-4o", "i": i},
        "received_at": T0,
    }
    row.update(kw)
    return row


def test_it_creates_the_schema_twice_without_error(ch_store):
    ch_store.ensure_schema()
    ch_store.ensure_schema()
    engine = ch_store.client.command(
        "SELECT engine_full FROM system.tables WHERE database = {d:String} AND name = 'spans'",
        parameters={"d": ch_store.database},
    )
    assert "ReplacingMergeTree(version)" in engine
    assert "TTL expires_at" in engine
    assert "non_replicated_deduplication_window" in engine


def test_a_retried_batch_is_stored_once_before_any_merge(ch_store, pid):
    rows = [span(i) for i in range(12)]  # 23:00 … 00:50: two partitions, two parts
    assert ch_store.insert_spans(pid, rows, "batch-1", retention_days=RETENTION) == 12
    ch_store.insert_spans(pid, rows, "batch-1", retention_days=RETENTION)
    ch_store.insert_spans(pid, rows, "batch-1", retention_days=RETENTION)
    # without FINAL too: the retried inserts were dropped whole, not merged away later
    assert ch_store.count(pid, final=False) == 12
    assert ch_store.count(pid) == 12
    total = sum(r["cost_usd"] for r in rows)
    cost = ch_store.cost_by(pid, T0 - timedelta(days=1), T0 + timedelta(days=1), final=False)
    assert sum(r["cost_usd"] for r in cost) == total


def test_a_span_resent_in_another_batch_keeps_its_first_copy(store_pid):
    store, pid, _other = store_pid
    first = [span(i) for i in range(3)]
    store.insert_spans(pid, first, "1", retention_days=RETENTION)
    # the exporter re-sends span 1 (changed) with a new span 3, as a new request
    again = [span(1, name="resent", cost_usd=Decimal(5)), span(3)]
    store.insert_spans(pid, again, "2", retention_days=RETENTION)

    assert store.count(pid) == 4
    folded_first = store.batch_spans(pid, ["1"], ["span_id", "name"])
    folded_second = store.batch_spans(pid, ["2"], ["span_id", "name"])
    assert [r["span_id"] for r in folded_first] == [f"{i:016x}" for i in (1, 2, 3)]
    assert [r["name"] for r in folded_first] == ["step 0", "step 1", "step 2"]
    assert folded_second == [{"span_id": f"{4:016x}", "name": "step 3"}]
    # folding both batches together still counts every span once
    assert len(store.batch_spans(pid, ["1", "2"], ["span_id"])) == 4
    kept = store.trace_spans(pid, TRACE, columns=["span_id", "name", "cost_usd"])
    assert kept[1] == {"span_id": f"{2:016x}", "name": "step 1", "cost_usd": first[1]["cost_usd"]}


def test_both_copies_are_stored_until_a_merge_keeps_the_first(ch_store, pid):
    ch_store.insert_spans(pid, [span(0), span(1)], "first", retention_days=RETENTION)
    ch_store.insert_spans(pid, [span(1, name="resent")], "second", retention_days=RETENTION)
    assert ch_store.count(pid, final=False) == 3
    assert ch_store.batch_spans(pid, ["second"]) == []
    ch_store.optimize()
    assert ch_store.count(pid, final=False) == 2
    names = [r["name"] for r in ch_store.trace_spans(pid, TRACE, columns=["name"])]
    assert names == ["step 0", "step 1"]
    assert ch_store.batch_spans(pid, ["second"]) == []


def test_async_inserts_wait_for_the_rows_and_still_drop_a_retried_batch(ch_store, pid):
    # What a server URL does by default: the server gathers concurrent inserts into one
    # part; the insert returns once the rows are stored, and a retry is still dropped.
    sent = []

    class Recording:  # the real client, noting the settings of each insert
        def __getattr__(self, name):
            return getattr(ch_store.client, name)

        def insert(self, *args, settings=None, **kwargs):
            sent.append(settings)
            return ch_store.client.insert(*args, settings=settings, **kwargs)

    store = ClickHouseSpanStore(f"{ch_store.url}?async_insert=1", client=Recording())
    assert store.async_insert and not ch_store.async_insert
    rows = [span(i) for i in range(3)]
    for _ in range(3):
        store.insert_spans(pid, rows, "async-1", retention_days=RETENTION)
        assert store.count(pid, final=False) == 3  # readable as soon as it returns
    store.insert_spans(pid, [span(3)], "async-2", retention_days=RETENTION)
    assert store.count(pid, final=False) == 4
    assert all(s["async_insert"] == s["wait_for_async_insert"] == 1 for s in sent)
    assert {s["insert_deduplication_token"] for s in sent} == {f"{pid}:async-1", f"{pid}:async-2"}


def test_insert_tokens_are_scoped_by_project(ch_store, pid):
    ch_store.insert_spans(pid, [span(0)], "same", retention_days=RETENTION)
    ch_store.insert_spans(pid + 1, [span(0)], "same", retention_days=RETENTION)
    assert ch_store.count(pid, final=False) == ch_store.count(pid + 1, final=False) == 1


def test_a_discarded_batch_leaves_the_next_copy_to_count(ch_store, pid):
    ch_store.insert_spans(pid, [span(0)], "orphan", retention_days=RETENTION)
    ch_store.insert_spans(pid, [span(0, name="retry")], "retry", retention_days=RETENTION)
    assert ch_store.batch_spans(pid, ["retry"], ["name"]) == []
    ch_store.discard_batch(pid, "orphan")
    assert ch_store.batch_spans(pid, ["retry"], ["name"]) == [{"name": "retry"}]
    assert ch_store.count(pid) == 1


def test_trace_spans_returns_the_trace_in_start_order(store_pid):
    store, pid, _other = store_pid
    rows = [span(i) for i in (3, 0, 2, 1)]
    store.insert_spans(pid, rows, "11", retention_days=RETENTION)
    store.insert_spans(pid, [span(0, trace="f" * 32)], "12", retention_days=RETENTION)
    got = store.trace_spans(pid, TRACE)
    assert [r["name"] for r in got] == ["step 0", "step 1", "step 2", "step 3"]
    assert got[0]["started_at"] == T0 and got[0]["started_at"].tzinfo is not None
    assert got[0]["attributes"] == {"gen_ai.request.model": "gpt-4o", "i": 0}
    assert got[2]["cost_usd"] == Decimal("0.0037037034")
    # bounded by the trace's time range, as the timeline will ask
    window = store.trace_spans(
        pid, TRACE, T0 + timedelta(minutes=5), T0 + timedelta(minutes=25), ["name"]
    )
    assert window == [{"name": "step 1"}, {"name": "step 2"}]
    # another project's trace of the same id is not seen
    assert store.trace_spans(pid + 100_000, TRACE) == []


def test_cost_by_matches_a_hand_computation(store_pid):
    store, pid, _other = store_pid
    rows = [
        span(0, model="gpt-4o", agent="triage", cost_usd=Decimal("0.5")),
        span(1, model="gpt-4o", agent="refunds", cost_usd=Decimal("0.25")),
        span(2, model="claude", agent="triage", cost_usd=Decimal("1.125")),
        span(3, model="claude", agent="triage", cost_usd=None, step="tool"),
        # the next day (T0 is 23:00): 600 minutes later
        span(60, model="gpt-4o", agent="triage", cost_usd=Decimal("2")),
        # outside the window
        span(-300, model="gpt-4o", cost_usd=Decimal("100")),
    ]
    store.insert_spans(pid, rows, "21", retention_days=RETENTION)
    store.insert_spans(pid, rows[:2], "22", retention_days=RETENTION)
    start, end = T0 - timedelta(hours=1), T0 + timedelta(days=2)

    by_model = store.cost_by(pid, start, end, group="model", bucket="day")
    day0, day1 = datetime(2031, 1, 31, tzinfo=UTC), datetime(2031, 2, 1, tzinfo=UTC)
    assert [(r["bucket"], r["key"], r["cost_usd"], r["spans"]) for r in by_model] == [
        (day0, "claude", Decimal("1.125"), 2),
        (day0, "gpt-4o", Decimal("0.75"), 2),
        (day1, "gpt-4o", Decimal("2"), 1),
    ]
    assert by_model[1]["input_tokens"] == 100 + 200
    by_agent = store.cost_by(pid, start, end, group="agent", bucket="hour")
    assert {(r["key"], r["cost_usd"]) for r in by_agent} == {
        ("triage", Decimal("1.625")),
        ("refunds", Decimal("0.25")),
        ("triage", Decimal("2")),
    }
    assert sum(r["spans"] for r in by_agent) == 5


def test_expiry_is_the_start_day_plus_the_retention_in_whole_utc_days(ch_store, pid):
    # as traces/retention.py counts it: kept while it starts on or after 00:00 UTC
    # `retention` days before today, i.e. until the day after its start day + retention
    ch_store.insert_spans(pid, [span(0)], "r", retention_days=90)  # 2031-01-31 23:00
    (row,) = ch_store.trace_spans(pid, TRACE, columns=["started_at", "expires_at"])
    assert row["expires_at"] == datetime(2031, 5, 2, tzinfo=UTC)  # Jan 31 + 91 days


def test_spans_past_their_retention_are_not_kept(ch_store, pid):
    old = span(0, started_at=datetime(2020, 1, 1, tzinfo=UTC))
    ch_store.insert_spans(pid, [old, span(1)], "old", retention_days=30)
    ch_store.optimize()  # TTL is applied on merge (and at insert)
    assert [r["name"] for r in ch_store.trace_spans(pid, TRACE, columns=["name"])] == ["step 1"]


def test_hostile_values_round_trip(ch_store, pid):
    nasty = "'; DROP TABLE spans; --\n\r\t\\\"{x:String}\x00 é ✓ 🦜 \u202e"
    huge = "x" * 2_000_000
    row = span(
        0,
        name=nasty,
        status_message=nasty,
        tool_arguments=huge,
        agent=nasty,
        attributes={"k": nasty, nasty: [nasty]},
        events=[{"name": nasty}],
    )
    ch_store.insert_spans(pid, [row], "h'\n{t:String}", retention_days=RETENTION)
    (got,) = ch_store.trace_spans(pid, TRACE)
    assert got["name"] == got["status_message"] == got["agent"] == nasty
    assert got["tool_arguments"] == huge
    assert got["attributes"] == {"k": nasty, nasty: [nasty]}
    assert got["events"] == [{"name": nasty}]
    assert ch_store.batch_spans(pid, ["h'\n{t:String}"], ["name"]) == [{"name": nasty}]


def test_parameters_are_not_injectable(ch_store, pid):
    ch_store.insert_spans(pid, [span(0)], "p", retention_days=RETENTION)
    for trace_id in (f"{TRACE}' OR '1'='1", "' OR 1=1 --", "{p:UInt64}"):
        assert ch_store.trace_spans(pid, trace_id) == []
    assert ch_store.batch_spans(pid, ["p') OR (1=1"]) == []
    with pytest.raises(ValueError, match="group"):
        ch_store.cost_by(pid, T0, T0, group="model) FROM system.users --")
    with pytest.raises(ValueError, match="unknown span columns"):
        ch_store.trace_spans(pid, TRACE, columns=["name FROM system.users --"])
    assert ch_store.count(pid) == 1


def test_delete_project_removes_only_that_project(store_pid):
    store, pid, other = store_pid
    store.insert_spans(pid, [span(0), span(1)], "31", retention_days=RETENTION)
    store.insert_spans(other, [span(0)], "32", retention_days=RETENTION)
    store.delete_project(pid)
    assert store.count(pid) == 0
    assert store.count(other) == 1


def test_the_table_reports_its_size(ch_store, pid):
    ch_store.insert_spans(pid, [span(i) for i in range(50)], "s", retention_days=RETENTION)
    stats = ch_store.table_stats()
    assert stats["rows"] >= 50 and stats["bytes_on_disk"] > 0
    assert 0 < ch_store.bytes_per_span() < stats["bytes_on_disk"]


def test_span_store_urls_are_parsed():
    assert parse_url("clickhouse://app:p%40ss@ch.internal:8123/spans") == {
        "client": {
            "interface": "http",
            "host": "ch.internal",
            "port": 8123,
            "username": "app",
            "password": "p@ss",
        },
        "database": "spans",
        "async_insert": True,
    }
    assert parse_url("clickhouses://ch")["client"]["port"] == 8443
    assert parse_url("chdb:///var/lib/agentops/ch") == {
        "client": {"interface": "chdb", "path": "/var/lib/agentops/ch"},
        "database": "agentops",
        "async_insert": False,
    }
    assert parse_url("clickhouse://ch/db?async_insert=0")["async_insert"] is False
    assert parse_url("chdb:///x?async_insert=1")["async_insert"] is True
    with pytest.raises(ValueError, match="async_insert must be 0 or 1"):
        parse_url("clickhouse://ch/db?async_insert=yes")
    with pytest.raises(ValueError, match="unknown option"):
        parse_url("clickhouse://ch/db?secure=1")
    with pytest.raises(ValueError, match="plain database name"):
        parse_url("clickhouse://ch/db`; DROP")
    with pytest.raises(ValueError, match="unknown scheme"):
        parse_url("mysql://x/y")


def test_the_seam_selects_the_store_by_setting(settings, ch_store):
    settings.SPAN_STORE_URL = ""
    assert span_store().kind == "relational"
    settings.SPAN_STORE_URL = ch_store.url
    assert span_store() is ch_store
    assert isinstance(ch_store, ClickHouseSpanStore)


def test_the_span_store_command_creates_the_schema_and_reports_sizes(settings, ch_store, pid):
    from io import StringIO

    from django.core.management import call_command

    settings.SPAN_STORE_URL = ch_store.url
    ch_store.insert_spans(pid, [span(0)], "cmd", retention_days=RETENTION)
    out = StringIO()
    call_command("span_store", "--init", "--check", stdout=out)
    text = out.getvalue()
    assert f"chdb://{ch_store.url.removeprefix('chdb://')}" in text
    assert "bytes per span" in text and text.rstrip().endswith("OK")


def test_an_unusable_span_store_url_is_a_system_check_error(settings):
    from traces.spanstore import check_span_store_url

    settings.SPAN_STORE_URL = ""
    assert check_span_store_url() == []
    settings.SPAN_STORE_URL = "clickhouse://ch:8123/agentops?async_insert=1"
    assert check_span_store_url() == []
    settings.SPAN_STORE_URL = "mysql://x/y"
    [error] = check_span_store_url()
    assert error.id == "traces.E020" and "unknown scheme" in error.msg
    settings.SPAN_STORE_URL = "clickhouse://ch/db?async_insert=yes"
    assert check_span_store_url()[0].id == "traces.E020"


def test_the_module_imports_without_django_set_up():
    """The benches import it before django.setup() (its SQL and columns stand alone)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", "import traces.spanstore.clickhouse"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
