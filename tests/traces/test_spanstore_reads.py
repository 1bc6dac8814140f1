"""The general span read, `select_spans` and `sum_spans`, on both stores with the same
assertions: chDB (the ClickHouse engine in process) and traces.Span on this run's
database (SQLite or PostgreSQL)."""

import itertools
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client

from budgets.evaluate import budget_evaluate
from budgets.models import BudgetEnvelope
from controls.models import ContractCheck
from tests.factories import ProjectFactory, UserFactory
from tests.otlp_client import protobuf_body, record, simple_run
from tests.traces.test_clickhouse_ingest import RUN_COST, accepted, ch, post  # noqa: F401 (ch: a fixture)
from tests.traces.test_clickhouse_store import T0, TRACE, span
from traces.models import ModelPriceOverride, Span, Trace
from traces.rollups import rollup_pending
from traces.spanstore import query
from traces.spanstore.clickhouse import SPAN_COLUMNS
from traces.spanstore.relational import _FIELDS, RelationalSpanStore

pytestmark = pytest.mark.django_db
OTHER = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"


@pytest.fixture(params=["clickhouse", "relational"])
def store(request):
    if request.param == "clickhouse":
        return request.getfixturevalue("ch_store")
    return RelationalSpanStore()


@pytest.fixture
def pid(store):
    project = ProjectFactory()
    store.delete_project(project.pk)  # SQLite hands the same ids out again
    yield project.pk
    store.delete_project(project.pk)


_tokens = itertools.count(int(time.time() * 1000))


def write(store, pid, rows):
    """A fresh numeric token each time (IngestBatch ids are numbers on the relational
    store; ClickHouse remembers insert tokens, and SQLite hands the same project ids out
    again in every test)."""
    store.insert_spans(pid, rows, str(next(_tokens)), retention_days=3650)


def sample():
    return [
        span(0, step="agent", agent="triage"),
        span(1, step="llm", model="gpt-4o"),
        span(
            2,
            step="tool",
            tool_name="refund",
            model="",
            attributes={"agentops.contract.name": "refund"},
        ),
        span(3, step="tool", tool_name="lookup", model="", agent=""),
        span(4, trace=OTHER, step="policy", model="", attributes={"agentops.decision": "allow"}),
        span(5, trace=OTHER, step="llm", model="claude", received_at=T0 + timedelta(hours=2)),
    ]


def ids(rows):
    return [r["span_id"] for r in rows]


def test_both_stores_read_the_same_columns():
    assert set(query.COLUMNS) == set(SPAN_COLUMNS) == set(_FIELDS)


def test_filters_and_order(store, pid):
    write(store, pid, sample())
    every = store.select_spans(pid, columns=["span_id", "trace_id", "step", "attributes"])
    assert ids(every) == [f"{i + 1:016x}" for i in range(6)]
    assert every[2]["attributes"] == {"agentops.contract.name": "refund"}

    window = store.select_spans(
        pid, columns=["span_id"], started=(T0 + timedelta(minutes=10), T0 + timedelta(minutes=40))
    )
    assert ids(window) == [f"{i:016x}" for i in (2, 3, 4)]  # [lo, hi)
    tools = store.select_spans(pid, columns=["span_id", "tool_name"], equals={"step": "tool"})
    assert [r["tool_name"] for r in tools] == ["refund", "lookup"]
    some = store.select_spans(
        [pid], columns=["span_id"], equals={"step": ["llm", "policy"]}, trace_ids=[OTHER]
    )
    assert ids(some) == [f"{i:016x}" for i in (5, 6)]
    named = store.select_spans(
        pid, columns=["span_id"], equals={"step": "tool"}, nonempty=["agent"]
    )
    assert ids(named) == [f"{3:016x}"]
    late = store.select_spans(pid, columns=["span_id"], received=(T0 + timedelta(hours=1), None))
    assert ids(late) == [f"{6:016x}"]
    by_trace = store.select_spans(
        pid, columns=["span_id"], order=["trace_id", "started_at"], limit=3
    )
    assert ids(by_trace) == [f"{i:016x}" for i in (1, 2, 3)]
    assert store.select_spans(pid + 1, columns=["span_id"]) == []


def test_attribute_keys(store, pid):
    write(store, pid, sample())
    either = store.select_spans(
        pid,
        columns=["span_id"],
        any_of=[
            {"equals": {"step": "policy"}},
            {"equals": {"step": "tool"}, "has_key": "agentops.contract.name"},
            {"has_key": "no.such.key"},
        ],
    )
    assert ids(either) == [f"{i:016x}" for i in (3, 5)]
    without = store.select_spans(
        pid, columns=["span_id"], lacks_keys=["agentops.contract.name", "agentops.decision"]
    )
    assert ids(without) == [f"{i:016x}" for i in (1, 2, 4, 6)]
    assert store.select_spans(pid, columns=["span_id"], any_of=[]) == []


def test_arrival_pages_every_span_once_and_skips_recorded_ones(store, pid):
    spans = [span(i) for i in range(7)]
    write(store, pid, spans)
    # A check is the span's: matched on (trace, span, start). One for span 5 with another
    # start belongs to another copy of it (a span re-sent with a new start is another row).
    for i, start in ((3, spans[2]["started_at"]), (4, spans[3]["started_at"]), (5, T0)):
        ContractCheck.objects.create(
            project_id=pid,
            trace_id=TRACE,
            span_id=f"{i:016x}",
            tool_name="t",
            outcome="ok",
            span_started_at=start,
        )
    seen, cursor = [], None
    for _ in range(10):
        rows = store.select_spans(
            pid,
            columns=["span_id"],
            absent_from=ContractCheck.objects.all(),
            order="arrival",
            after=cursor,
            limit=2,
        )
        if not rows:
            break
        assert len(rows) <= 2
        seen.extend(ids(rows))
        cursor = rows[-1][query.CURSOR]
    assert sorted(seen) == [f"{i:016x}" for i in (1, 2, 5, 6, 7)]


def test_a_span_sent_twice_is_read_once(store, pid):
    rows = [span(i) for i in range(3)]
    write(store, pid, rows)
    write(store, pid, rows[1:])
    assert len(store.select_spans(pid, columns=["span_id"])) == 3
    assert store.sum_spans(
        pid, group="trace_id", measure="tokens", started=(T0, T0 + timedelta(days=1))
    ) == [(TRACE, 100 + 10 + 200 + 20 + 300 + 30)]


def test_sum_spans_ranks_groups(store, pid):
    write(store, pid, sample())
    day = (T0, T0 + timedelta(days=1))
    cost = store.sum_spans(pid, group="trace_id", measure="cost_usd", started=day, limit=5)
    unit = Decimal("0.0012345678")
    assert cost == [(OTHER, unit * 11), (TRACE, unit * 10)]
    llm = store.sum_spans(
        pid, group="trace_id", measure="tokens", started=day, equals={"model": "claude"}
    )
    assert llm == [(OTHER, 600 + 60)]
    only = store.sum_spans(
        pid,
        group="trace_id",
        measure="tokens",
        started=day,
        trace_ids=Span.objects.none().values("trace_id") if store.kind == "relational" else [],
    )
    assert only == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"columns": ["span_id; DROP TABLE spans"]},
        {"columns": []},
        {"columns": ["span_id"], "equals": {"tool_arguments": "x"}},
        {"columns": ["span_id"], "equals": {"step": {"$gt": 1}}},
        {"columns": ["span_id"], "nonempty": ["attributes"]},
        {"columns": ["span_id"], "order": ["cost_usd"]},
        {"columns": ["span_id"], "order": "random"},
        {"columns": ["span_id"], "after": 5},
        {"columns": ["span_id"], "any_of": [{"where": "1"}]},
        {"columns": ["span_id"], "lacks_keys": [""]},
    ],
)
def test_names_outside_the_lists_are_refused(store, pid, kwargs):
    with pytest.raises(ValueError):
        store.select_spans(pid, **kwargs)


def test_values_are_bound_not_formatted(store, pid):
    write(store, pid, sample())
    hostile = "x' OR 1=1 --"
    assert store.select_spans(pid, columns=["span_id"], equals={"agent": hostile}) == []
    assert store.select_spans(pid, columns=["span_id"], any_of=[{"has_key": hostile}]) == []
    assert len(store.select_spans(pid, columns=["span_id"], lacks_keys=[hostile])) == 6


def test_the_schema_has_the_received_at_index(ch_store):
    ch_store.ensure_schema()  # idempotent, the ALTER included
    indexes = ch_store.client.query(
        "SELECT name, type FROM system.data_skipping_indices"
        " WHERE database = {d:String} AND table = 'spans'",
        parameters={"d": ch_store.database},
    ).result_rows
    assert ("received_at_minmax", "minmax") in indexes


# -- the readers on ClickHouse, through the real endpoints -----------------------------


@pytest.mark.usefixtures("ch")
def test_the_trace_api_returns_the_spans_stored_in_clickhouse(
    project, ingest_secret, client_logged_in
):
    accepted(post(protobuf_body(record(simple_run)), ingest_secret))
    assert Span.objects.count() == 0
    trace = Trace.objects.get(project=project)

    body = client_logged_in.get(f"/api/traces/{trace.trace_id}/").json()

    spans = body["spans"]
    assert len(spans) == 4
    assert sorted(s["step"] for s in spans) == ["agent", "llm", "llm", "tool"]
    assert [s["started_at"] for s in spans] == sorted(s["started_at"] for s in spans)
    assert spans[0]["parent_span_id"] == ""
    assert sum(Decimal(s["cost_usd"]) for s in spans if s["cost_usd"]) == RUN_COST
    assert all(isinstance(s["attributes"], dict) for s in spans)
    assert {s["tool"] for s in spans if s["step"] == "tool"} != {""}
    # the same through a project key
    keyed = Client(HTTP_AUTHORIZATION=f"Bearer {ingest_secret}")
    assert len(keyed.get(f"/api/traces/{trace.trace_id}/").json()["spans"]) == 4


@pytest.fixture(params=["clickhouse", "relational"])
def either(request, project, settings):
    """Ingestion through POST /v1/traces into the store of the parameter; gpt-4o-mini
    priced at $1,000 per million tokens either way (the `ch` fixture's override)."""
    if request.param == "clickhouse":
        return request.getfixturevalue("ch")
    settings.SPAN_STORE_URL = ""
    ModelPriceOverride.objects.create(
        model="gpt-4o-mini",
        effective_from=project.created_at - timedelta(days=365),
        input_per_mtok=Decimal(1000),
        output_per_mtok=Decimal(1000),
    )
    return RelationalSpanStore()


def twice(tracer):
    """One trace with the simple run's spans twice: twice its cost."""
    with tracer.start_as_current_span("invoke_agent support-agent"):
        simple_run(tracer)
        simple_run(tracer)


def test_a_model_budget_alert_lists_the_traces_ranked_by_that_model(either, project, ingest_secret):
    envelope = BudgetEnvelope.objects.create(
        project=project,
        name="Mini on support",
        metric=BudgetEnvelope.Metric.COST,
        model="gpt-4o-mini",
        agent="support-agent",
        limit=Decimal("0.50"),
        period=BudgetEnvelope.Period.DAY,
        timezone="UTC",
        thresholds=[100],
        forecast=False,
    )
    runs = {
        "once": record(simple_run),
        "twice": record(twice),
        "other agent": record(lambda t: simple_run(t, agent="billing-agent")),
        "other model": record(lambda t: simple_run(t, model="gpt-4o")),
    }
    for spans in runs.values():
        accepted(post(protobuf_body(spans), ingest_secret))
    assert (Span.objects.count() == 0) == (either.kind == "clickhouse")
    ids = {name: f"{spans[0].context.trace_id:032x}" for name, spans in runs.items()}
    first = Trace.objects.filter(project=project).order_by("started_at").first()
    BudgetEnvelope.objects.filter(pk=envelope.pk).update(
        created_at=first.started_at - timedelta(days=2)
    )
    envelope.refresh_from_db()
    rollup_pending()

    evaluation = budget_evaluate(envelope=envelope, now=Trace.objects.latest("ended_at").ended_at)

    (alert,) = evaluation.alerts
    assert evaluation.value == RUN_COST * 3
    # ranked by the spans of this model in this agent's runs: not the other agent's run,
    # not the run on another model
    assert alert.trace_ids == [ids["twice"], ids["once"]]


def test_attribute_values_come_back_as_text(store, pid):
    attrs = {"s": "text", "n": 0.4, "z": None, "o": {"x": 1}}
    write(store, pid, [span(0, attributes=attrs)])
    (row,) = store.select_spans(
        pid,
        columns=["span_id"],
        keys={"a_s": "s", "a_n": "n", "a_z": "z", "a_missing": "m", "a_dotted": "agentops.x"},
    )
    assert row["a_s"] == "text"
    assert str(row["a_n"]) == "0.4"  # SQLite gives the number, the others its text
    assert row["a_missing"] is None and row["a_dotted"] is None
    # a JSON null: NULL, but the text "null" from SQLite's ->>
    assert row["a_z"] is None or (store.kind == "relational" and connection.vendor == "sqlite")
    with pytest.raises(ValueError):
        store.select_spans(pid, columns=["span_id"], keys={"span_id": "s"})
    with pytest.raises(ValueError):
        store.select_spans(pid, columns=["span_id"], keys={"a; DROP": "s"})


def test_the_span_admin_says_where_the_spans_are(settings, ch_store):
    staff = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    settings.SPAN_STORE_URL = ""
    page = client.get("/admin/traces/span/")
    assert page.status_code == 200
    assert b"Spans are stored in ClickHouse" not in page.content

    settings.SPAN_STORE_URL = ch_store.url
    page = client.get("/admin/traces/span/")
    assert page.status_code == 200
    assert b"Spans are stored in ClickHouse" in page.content
    assert b"/api/traces/&lt;trace id&gt;/" in page.content
