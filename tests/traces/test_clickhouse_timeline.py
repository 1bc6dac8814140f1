"""The trace timeline, its rows, the span detail and the session page with the spans in
ClickHouse (chDB, the engine in process), whatever the relational database of the run.

Spans are ingested through the real endpoint (POST /v1/traces, protobuf) with
SPAN_STORE_URL naming the store, so traces_span stays empty: every span the pages show
came from ClickHouse. A big trace is also ingested into the relational store, and both
pages must answer the same rows and storyline.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from opentelemetry import trace as otel
from opentelemetry.trace import Status, StatusCode

from tests.otlp_client import protobuf_body, record
from traces.models import Membership, Span, Trace
from traces.services import ingest_key_create
from traces.timeline import FLAG_ERROR, timeline_index_cache_clear

pytestmark = pytest.mark.django_db

PB = "application/x-protobuf"
SPANS = 120  # with the windows below, a big trace: 3 windows of 50 rows


@pytest.fixture(autouse=True)
def _small_windows(settings):
    settings.TIMELINE_FULL_ROWS = 60
    settings.TIMELINE_WINDOW_ROWS = 50


@pytest.fixture
def ch(ch_store, project, other_project, settings):
    """The ClickHouse span store selected for this test, with no spans of this test's
    projects (SQLite gives the same project ids again in every test)."""
    for p in (project, other_project):
        ch_store.delete_project(p.pk)
    settings.SPAN_STORE_URL = ch_store.url
    yield ch_store
    for p in (project, other_project):
        ch_store.delete_project(p.pk)


def post(spans, secret: str) -> None:
    response = Client().post(
        "/v1/traces",
        data=protobuf_body(spans),
        content_type=PB,
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert response.status_code == 200, response.content


def ns(t: datetime) -> int:
    return int(t.timestamp() * 1e9)


def messages(role: str, text: str, finish: str | None = None) -> str:
    m = {"role": role, "parts": [{"type": "text", "content": text}]}
    if finish:
        m["finish_reason"] = finish
    return json.dumps([m])


def agent_run(*, session: str, question: str, answer: str, start: datetime):
    """root → model call (asks for a tool) → the tool, which fails → model call (answers)."""

    def build(tracer):
        at = [start]

        def span(name, parent, attributes, ms=10, error=""):
            ctx = otel.set_span_in_context(parent) if parent else None
            s = tracer.start_span(name, context=ctx, attributes=attributes, start_time=ns(at[0]))
            at[0] += timedelta(milliseconds=ms)
            if error:
                s.set_status(Status(StatusCode.ERROR, error))
            return s

        root = span(
            "invoke_agent support-agent",
            None,
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "support-agent",
                "gen_ai.conversation.id": session,
                "gen_ai.input.messages": messages("user", question),
            },
            ms=1,
        )
        llm = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"}
        plan = span(
            "chat gpt-4o-mini",
            root,
            {**llm, "gen_ai.output.messages": messages("assistant", "", "tool_calls")},
        )
        plan.end(end_time=ns(at[0]))
        tool = span(
            "execute_tool lookup_order",
            root,
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "lookup_order",
                "gen_ai.tool.call.arguments": '{"order_id": 42}',
            },
            error="order 42 not found",
        )
        tool.end(end_time=ns(at[0]))
        final = span(
            "chat gpt-4o-mini",
            root,
            {**llm, "gen_ai.output.messages": messages("assistant", answer, "stop")},
        )
        final.end(end_time=ns(at[0]))
        root.end(end_time=ns(at[0]))

    return record(build)


def loop_run(*, start: datetime, errors=(75,)):
    """A root and SPANS-1 children one ms apart named "step i"; those at `errors` fail."""

    def build(tracer):
        root = tracer.start_span("root", start_time=ns(start))
        ctx = otel.set_span_in_context(root)
        for i in range(1, SPANS):
            t = start + timedelta(milliseconds=i)
            child = tracer.start_span(f"step {i}", context=ctx, start_time=ns(t))
            if i in errors:
                child.set_status(Status(StatusCode.ERROR, f"step {i} failed"))
            child.end(end_time=ns(t + timedelta(milliseconds=10)))
        root.end(end_time=ns(start + timedelta(seconds=9)))

    return record(build)


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def span_ids(spans) -> list[str]:
    """The span ids of SDK spans in start order (the display order of loop_run)."""
    ordered = sorted(spans, key=lambda s: s.start_time)
    return [hex_id(s.context.span_id, 16) for s in ordered]


def trace_id_of(spans) -> str:
    return hex_id(spans[0].context.trace_id, 32)


def page(client, project, trace_id):
    response = client.get(reverse("trace-timeline", args=[project.slug, trace_id]))
    assert response.status_code == 200
    return response


def rows(client, project, trace_id, **params):
    response = client.get(reverse("trace-timeline-rows", args=[project.slug, trace_id]), params)
    assert response.status_code == 200, response.content
    return response.json()


def detail(client, project, trace_id, span_id):
    return client.get(
        reverse("span-detail", args=[project.slug, trace_id, span_id]),
        HTTP_X_REQUESTED_WITH="XMLHttpRequest",
    )


def recent() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def test_the_timeline_of_a_run_shows_its_spans_and_story_from_the_store(
    ch, project, ingest_secret, client_logged_in
):
    run = agent_run(session="s-1", question="Where is my order?", answer="Shipped.", start=recent())
    post(run, ingest_secret)
    assert Span.objects.count() == 0 and ch.count(project.pk) == 4
    trace_id = trace_id_of(run)

    response = page(client_logged_in, project, trace_id)
    timeline = response.context["timeline"]
    payload = timeline.payload
    assert payload["windowed"] is False
    fields = payload["fields"]
    shown = [dict(zip(fields, r, strict=True)) for r in payload["rows"]]
    assert [(r["name"], r["depth"]) for r in shown] == [
        ("invoke_agent support-agent", 0),
        ("chat gpt-4o-mini", 1),
        ("execute_tool lookup_order", 1),
        ("chat gpt-4o-mini", 1),
    ]
    assert [bool(r["flags"] & FLAG_ERROR) for r in shown] == [False, False, True, False]
    story = timeline.storyline
    assert story.intent.text == "Where is my order?"
    assert story.final.text == "Shipped."
    tool = next(b for b in story.steps if b.kind == "tool")
    assert tool.status == "error" and tool.result == "order 42 not found"
    assert '{"order_id": 42}' in tool.text
    html = response.content.decode()
    assert "Where is my order?" in html and "Shipped." in html

    # The span detail opens for the failed tool call, read from the store.
    tool_id = shown[2]["span_id"]
    answer = detail(client_logged_in, project, trace_id, tool_id)
    assert answer.status_code == 200
    d = answer.context["detail"]
    assert d.span.span_id == tool_id and d.span.tool_name == "lookup_order"
    assert d.exception.message == "order 42 not found"
    assert "lookup_order" in answer.content.decode()
    assert detail(client_logged_in, project, trace_id, "f" * 16).status_code == 404


def test_a_big_trace_pages_through_its_rows_from_the_store(
    ch, project, ingest_secret, client_logged_in
):
    run = loop_run(start=recent())
    post(run, ingest_secret)
    assert Span.objects.count() == 0 and ch.count(project.pk) == SPANS
    trace_id, ids = trace_id_of(run), span_ids(run)
    timeline_index_cache_clear()  # the first view builds the index from the store

    payload = page(client_logged_in, project, trace_id).context["timeline"].payload
    assert payload["windowed"] is True and payload["count"] == SPANS
    assert [r[0] for r in payload["rows"]] == ids[:50]
    assert [r[4] for r in payload["rows"][1:4]] == ["step 1", "step 2", "step 3"]
    assert sum(c[0] for c in payload["density"]) == SPANS
    assert sum(c[1] for c in payload["density"]) == 1

    body = rows(client_logged_in, project, trace_id, offset=50)
    assert body["offset"] == 50 and body["count"] == SPANS
    assert [r[0] for r in body["rows"]] == ids[50:100]
    row = dict(zip(payload["fields"], body["rows"][25], strict=True))
    assert row["name"] == "step 75" and row["flags"] & FLAG_ERROR
    assert (row["depth"], row["parent"], row["start_ms"]) == (1, 0, 75)
    last = rows(client_logged_in, project, trace_id, offset=100)
    assert [r[4] for r in last["rows"]] == [f"step {i}" for i in range(100, SPANS)]
    found = rows(client_logged_in, project, trace_id, span=ids[110])
    assert found["offset"] == 100 and ids[110] in [r[0] for r in found["rows"]]
    nxt = client_logged_in.get(
        reverse("trace-timeline-next", args=[project.slug, trace_id]), {"kind": "error"}
    ).json()
    assert nxt["index"] == 75

    # The detail of a span of the big trace (its start known from the index).
    answer = detail(client_logged_in, project, trace_id, ids[75])
    assert answer.status_code == 200
    assert answer.context["detail"].span.name == "step 75"
    assert answer.context["detail"].span.status == "error"
    # … and without the index (another process): found by its start first.
    timeline_index_cache_clear()
    answer = detail(client_logged_in, project, trace_id, ids[99])
    assert answer.status_code == 200 and answer.context["detail"].span.name == "step 99"


def test_a_window_is_one_read_of_the_store(
    ch, project, ingest_secret, client_logged_in, monkeypatch
):
    """No primary keys in ClickHouse: a window's spans are found by their start times, in
    one read when few other spans started among them, not one per span or per gap."""
    run = loop_run(start=recent())
    post(run, ingest_secret)
    trace_id = trace_id_of(run)
    timeline_index_cache_clear()
    reads = []
    trace_spans = ch.trace_spans

    def counted(*args, **kwargs):
        found = trace_spans(*args, **kwargs)
        reads.append((kwargs["columns"], len(found)))
        return found

    monkeypatch.setattr(ch, "trace_spans", counted)
    page(client_logged_in, project, trace_id)
    # the skeleton of every span, the storyline's texts, the first window's columns
    assert len(reads) == 3 and reads[0][1] == SPANS
    assert "attributes" in reads[1][0] and "attributes" not in reads[2][0]
    reads.clear()
    body = rows(client_logged_in, project, trace_id, offset=50, limit=20)
    assert [r[4] for r in body["rows"]] == [f"step {i}" for i in range(50, 70)]
    assert len(reads) == 1 and reads[0][1] <= 22  # the window, give or take a millisecond


def test_both_stores_show_a_big_trace_alike(
    ch, project, other_project, ingest_secret, client_logged_in, settings, user
):
    """The same spans in traces_span (one project) and in ClickHouse (another): the same
    rows in every window, the same storyline."""

    Membership.objects.create(project=other_project, user=user, role=Membership.Role.ADMIN)
    run = loop_run(start=recent(), errors=(7, 75, 118))
    post(run, ingest_key_create(project=other_project).secret)  # into ClickHouse
    settings.SPAN_STORE_URL = ""
    post(run, ingest_secret)  # into traces_span
    assert Span.objects.filter(project=project).count() == SPANS
    assert ch.count(other_project.pk) == SPANS
    trace_id = trace_id_of(run)
    timeline_index_cache_clear()

    def everything(store_url: str, p) -> tuple:
        settings.SPAN_STORE_URL = store_url
        timeline = page(client_logged_in, p, trace_id).context["timeline"]
        windows = [rows(client_logged_in, p, trace_id, offset=o)["rows"] for o in (0, 50, 100)]
        story = timeline.storyline
        beats = [(b.kind, b.span_id, b.title, b.text, b.result, b.status) for b in story.steps]
        return windows, beats, story.final.span_id, timeline.payload["density"]

    relational = everything("", project)
    clickhouse = everything(ch.url, other_project)
    assert clickhouse == relational
    assert [r[4] for r in clickhouse[0][1][:2]] == ["step 50", "step 51"]


def test_the_session_page_lists_the_runs_and_their_conversation_from_the_store(
    ch, project, ingest_secret, client_logged_in
):
    start = recent()
    first = agent_run(session="s-42", question="Where is my order?", answer="Shipped.", start=start)
    second = agent_run(
        session="s-42",
        question="And the invoice?",
        answer="Sent by email.",
        start=start + timedelta(minutes=5),
    )
    post(first, ingest_secret)
    post(second, ingest_secret)
    assert Span.objects.count() == 0 and ch.count(project.pk) == 8

    response = client_logged_in.get(reverse("session-detail", args=[project.slug, "s-42"]))
    assert response.status_code == 200
    turns = response.context["turns"]
    assert [t.trace.trace_id for t in turns] == [trace_id_of(first), trace_id_of(second)]
    assert [(t.asked, t.answered) for t in turns] == [
        ("Where is my order?", "Shipped."),
        ("And the invoice?", "Sent by email."),
    ]
    html = response.content.decode()
    assert "And the invoice?" in html and "Sent by email." in html
    assert Trace.objects.get(trace_id=trace_id_of(second)).session_id == "s-42"


def test_a_store_outage_is_a_503_not_a_500(ch, project, ingest_secret, client_logged_in, settings):
    run = agent_run(session="s-9", question="Hello?", answer="Hi.", start=recent())
    post(run, ingest_secret)
    trace_id = trace_id_of(run)
    timeline_index_cache_clear()
    settings.SPAN_STORE_URL = "clickhouse://127.0.0.1:1/x"  # nothing listens there

    response = client_logged_in.get(reverse("trace-timeline", args=[project.slug, trace_id]))
    assert response.status_code == 503 and int(response["Retry-After"]) > 0
    response = client_logged_in.get(
        reverse("trace-timeline-rows", args=[project.slug, trace_id]),
        {"offset": 0},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 503 and "detail" in response.json()
