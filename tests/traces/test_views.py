"""Pages: trace list, trace timeline, span detail partial, session view."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from tests.factories import agent_run, llm_attrs, new_span_id, new_trace_id, raw_span
from traces.ingest import span_batch_ingest
from traces.models import Trace

START = datetime(2025, 3, 10, 10, 30, tzinfo=UTC)


def timeline_url(project, trace_id):
    return reverse("trace-timeline", args=[project.slug, trace_id])


def span_url(project, trace_id, span_id):
    return reverse("span-detail", args=[project.slug, trace_id, span_id])


XHR = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}  # what the timeline's script sends


def listed(response) -> list[str]:
    """Trace ids shown in the list, in order."""
    return [t.trace_id for t in response.context["page"].object_list]


def waterfall(response) -> list[dict]:
    payload = response.context["timeline"].payload
    return [dict(zip(payload["fields"], row, strict=True)) for row in payload["rows"]]


def rich_run(project, *, error=False):
    """A run with messages, a tool call and, optionally, a failing tool with an exception."""
    trace_id, root = new_trace_id(), new_span_id()
    tool_events = []
    if error:
        tool_events = [
            {
                "name": "exception",
                "time_unix_nano": 0,
                "attributes": {
                    "exception.type": "httpx.ReadTimeout",
                    "exception.message": "carrier API did not answer",
                    "exception.stacktrace": 'Traceback (most recent call last):\n  File "t.py"',
                },
            }
        ]
    plan_output = [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Checking the carrier."},
                {"type": "tool_call", "id": "c1", "name": "track_parcel", "arguments": {"n": 7}},
            ],
        }
    ]
    question = [{"role": "user", "parts": [{"type": "text", "content": "Where is parcel 7?"}]}]
    answer = [{"role": "assistant", "parts": [{"type": "text", "content": "It is in Leipzig."}]}]
    at = lambda ms: START + timedelta(milliseconds=ms)  # noqa: E731
    spans = [
        raw_span(
            trace_id=trace_id,
            span_id=root,
            name="invoke_agent courier",
            start=at(0),
            duration_ms=900,
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "courier"},
            status_code=2 if error else 1,
        ),
        raw_span(
            trace_id=trace_id,
            parent_span_id=root,
            name="chat gpt-4o",
            start=at(10),
            duration_ms=300,
            kind=3,
            attributes=llm_attrs(
                "gpt-4o",
                **{
                    "gen_ai.input.messages": json.dumps(question),
                    "gen_ai.output.messages": json.dumps(plan_output),
                    "gen_ai.response.finish_reasons": ["tool_calls"],
                },
            ),
        ),
        tool := raw_span(
            trace_id=trace_id,
            parent_span_id=root,
            name="execute_tool track_parcel",
            start=at(320),
            duration_ms=200,
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "track_parcel",
                "gen_ai.tool.call.arguments": '{"parcel": 7, "carrier": "DHL"}',
                "gen_ai.tool.call.result": '{"hub": "Leipzig"}',
            },
            events=tool_events,
            status_code=2 if error else 0,
        ),
        raw_span(
            trace_id=trace_id,
            parent_span_id=tool.span_id,
            name="GET carrier",
            start=at(330),
            duration_ms=150,
        ),
        raw_span(
            trace_id=trace_id,
            parent_span_id=root,
            name="chat gpt-4o",
            start=at(600),
            duration_ms=250,
            kind=3,
            attributes=llm_attrs(
                "gpt-4o",
                **{
                    "gen_ai.output.messages": json.dumps(answer),
                    "gen_ai.response.finish_reasons": ["stop"],
                },
            ),
        ),
    ]
    span_batch_ingest(project_id=project.pk, spans=spans)
    return trace_id, {"root": root, "plan": spans[1].span_id, "tool": tool.span_id}


def bulk_runs(project, n, **kw):
    """n runs ingested in one batch, one minute apart, newest last."""
    spans, ids = [], []
    for i in range(n):
        trace_id, run = agent_run(
            project=project, start=START + timedelta(minutes=i), store=False, **kw
        )
        spans += run
        ids.append(trace_id)
    span_batch_ingest(project_id=project.pk, spans=spans)
    return ids


def big_trace(project, spans: int) -> str:
    trace_id, root = new_trace_id(), new_span_id()
    rows = [raw_span(trace_id=trace_id, span_id=root, name="root", start=START, duration_ms=9e3)]
    for i in range(spans - 1):
        rows.append(
            raw_span(
                trace_id=trace_id,
                parent_span_id=root,
                name=f"execute_tool t{i}",
                start=START + timedelta(milliseconds=i),
                attributes={"gen_ai.tool.name": f"t{i}", "gen_ai.tool.call.arguments": "{}"},
            )
        )
    span_batch_ingest(project_id=project.pk, spans=rows)
    return trace_id


# ------------------------------------------------------------------ access


def test_home_redirects_to_the_overview(client_logged_in):
    response = client_logged_in.get("/")
    assert response.status_code == 302 and response.url == reverse("overview")


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/traces/",
        "/p/acme-support/traces/0123456789abcdef0123456789abcdef/",
        "/p/acme-support/traces/0123456789abcdef0123456789abcdef/spans/0123456789abcdef/",
        "/p/acme-support/sessions/s-1/",
    ],
)
def test_pages_require_login(client, project, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login") + "?next=")


def test_outsider_gets_404_on_another_projects_timeline_span_and_session(outsider_client, project):
    trace_id, ids = rich_run(project)
    Trace.objects.filter(trace_id=trace_id).update(session_id="s-1")
    for path in (
        timeline_url(project, trace_id),
        span_url(project, trace_id, ids["tool"]),
        reverse("session-detail", args=[project.slug, "s-1"]),
    ):
        assert outsider_client.get(path).status_code == 404, path


def test_the_list_shows_the_users_traces_and_not_another_projects(
    client_logged_in, project, other_project
):
    mine = bulk_runs(project, 2)
    theirs = bulk_runs(other_project, 1)
    response = client_logged_in.get("/traces/")
    assert response.status_code == 200
    assert set(listed(response)) == set(mine)
    assert theirs[0] not in response.content.decode()


def test_the_list_is_newest_first_and_links_rows_to_their_timeline(client_logged_in, project):
    ids = bulk_runs(project, 3)
    response = client_logged_in.get("/traces/")
    assert listed(response) == ids[::-1]
    assert timeline_url(project, ids[0]) in response.content.decode()


def test_the_nav_has_a_post_logout_form_and_admin_only_for_staff(client_logged_in, user):
    html = client_logged_in.get("/traces/").content.decode()
    assert f'action="{reverse("logout")}"' in html and 'method="post"' in html
    assert "csrfmiddlewaretoken" in html
    assert reverse("admin:index") not in html
    user.is_staff = True
    user.save()
    assert reverse("admin:index") in client_logged_in.get("/traces/").content.decode()


def test_the_login_page_logs_in_through_its_form(client, user):
    page = client.get(reverse("login"))
    assert page.status_code == 200 and b'name="password"' in page.content
    response = client.post(
        reverse("login"), {"username": "ada", "password": "pw-for-tests-1", "next": "/traces/"}
    )
    assert response.status_code == 302 and response.url == "/traces/"


# ------------------------------------------------------------------ filters


def test_filter_by_project(client_logged_in, user, project, other_project):
    from tests.factories import MembershipFactory

    MembershipFactory(project=other_project, user=user)
    mine = bulk_runs(project, 1)
    other = bulk_runs(other_project, 1)
    assert listed(client_logged_in.get("/traces/?project=other-team")) == other
    assert listed(client_logged_in.get("/traces/?project=acme-support")) == mine


def test_filter_by_agent(client_logged_in, project):
    support = bulk_runs(project, 1, agent="support")
    bulk_runs(project, 1, agent="billing")
    response = client_logged_in.get("/traces/?agent=support")
    assert listed(response) == support
    assert b"<option selected>support</option>" in response.content


def test_filter_by_status(client_logged_in, project):
    bulk_runs(project, 1)
    failed = bulk_runs(project, 1, error=True)
    assert listed(client_logged_in.get("/traces/?status=error")) == failed


def test_filter_by_time_range_in_the_users_time_zone(client_logged_in, project, settings):
    settings.TIME_ZONE = "Europe/Paris"
    [trace_id] = bulk_runs(project, 1)  # starts 10:30 UTC = 11:30 in Paris
    assert listed(client_logged_in.get("/traces/?since=2025-03-10T11:00")) == [trace_id]
    assert listed(client_logged_in.get("/traces/?since=2025-03-10T12:00")) == []
    assert listed(client_logged_in.get("/traces/?until=2025-03-10T12:00")) == [trace_id]
    assert listed(client_logged_in.get("/traces/?until=2025-03-10T11:00")) == []
    html = client_logged_in.get("/traces/?since=2025-03-10T11:00").content.decode()
    assert "2025-03-10 11:30:00" in html and "Europe/Paris" in html
    # The filter shows what was asked: a date and a 24-hour time.
    assert 'name="since" value="2025-03-10"' in html and 'name="since_time" value="11:00"' in html


def test_filter_by_session(client_logged_in, project):
    in_session = bulk_runs(project, 1, session_id="sess-42")
    bulk_runs(project, 1, session_id="sess-7")
    assert listed(client_logged_in.get("/traces/?session=sess-42")) == in_session


def test_filter_by_minimum_cost(client_logged_in, project):
    bulk_runs(project, 1, model="gpt-4o-mini")  # ~$0.00007
    dear = bulk_runs(project, 1, model="gpt-4o")  # ~$0.0012
    assert listed(client_logged_in.get("/traces/?min_cost=0.001")) == dear


def test_search_by_trace_id_prefix_or_name(client_logged_in, project):
    a, b = bulk_runs(project, 2)
    assert listed(client_logged_in.get(f"/traces/?q={a[:10]}")) == [a]
    Trace.objects.filter(trace_id=b).update(name="nightly reconciliation")
    assert listed(client_logged_in.get("/traces/?q=reconcil")) == [b]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=broken", "status must be one of"),
        ("since=yesterday", "since must be an ISO 8601"),
        ("until=31/02/2025", "until must be an ISO 8601"),
        ("min_cost=-1", "min_cost must be a non-negative"),
        ("min_cost=lots", "min_cost must be a non-negative"),
    ],
)
def test_a_bad_filter_value_shows_an_error_not_a_500(client_logged_in, project, query, message):
    bulk_runs(project, 1)
    response = client_logged_in.get(f"/traces/?{query}")
    assert response.status_code == 200
    assert message in response.content.decode()


def test_filters_matching_nothing_offer_to_clear_them(client_logged_in, project):
    bulk_runs(project, 1)
    html = client_logged_in.get("/traces/?agent=nobody").content.decode()
    assert "No traces match these filters" in html
    assert f'href="{reverse("trace-list")}"' in html and "Clear filters" in html
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" not in html


def test_an_empty_project_tells_how_to_point_an_exporter_at_the_console(client_logged_in, settings):
    settings.PUBLIC_URL = "https://agentops.example.com/"
    html = client_logged_in.get("/traces/").content.decode()
    assert "No traces yet" in html
    assert "https://agentops.example.com/v1/traces" in html
    assert "Authorization: Bearer &lt;key&gt;" in html
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://agentops.example.com/v1/traces" in html
    assert "OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20&lt;your key&gt;" in html
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in html
    assert "python manage.py createproject" in html and "Ingest keys" in html


# ------------------------------------------------------------------ pagination


def test_the_list_pages_by_50_and_keeps_filters_in_page_links(client_logged_in, project):
    ids = bulk_runs(project, 51, agent="pager")
    first = client_logged_in.get("/traces/?agent=pager")
    assert len(listed(first)) == 50 and listed(first)[0] == ids[-1]
    assert 'href="?agent=pager&amp;page=2"' in first.content.decode()
    second = client_logged_in.get("/traces/?agent=pager&page=2")
    assert listed(second) == [ids[0]]
    assert 'href="?agent=pager&amp;page=1"' in second.content.decode()


def test_a_page_number_out_of_range_shows_the_last_page(client_logged_in, project):
    bulk_runs(project, 2)
    response = client_logged_in.get("/traces/?page=999")
    assert response.status_code == 200 and len(listed(response)) == 2
    assert client_logged_in.get("/traces/?page=abc").status_code == 200


# ------------------------------------------------------------------ cost display


def test_an_unpriced_trace_shows_its_unpriced_calls_not_zero_dollars(client_logged_in, project):
    [trace_id] = bulk_runs(project, 1, model="acme-internal-llm")
    trace = Trace.objects.get(trace_id=trace_id)
    assert trace.unpriced_count == 2 and trace.cost_usd == 0
    listing = client_logged_in.get("/traces/").content.decode()
    assert "2 unpriced" in listing and "$0<" not in listing
    timeline = client_logged_in.get(timeline_url(project, trace_id))
    assert "2 unpriced" in timeline.content.decode()
    assert {row["cost"] for row in waterfall(timeline) if row["step"] == "llm"} == {"unpriced"}


def test_a_partly_priced_trace_shows_cost_plus_unpriced_calls(client_logged_in, project):
    [priced] = bulk_runs(project, 1)
    trace_id = new_trace_id()
    span_batch_ingest(
        project_id=project.pk,
        spans=[raw_span(trace_id=trace_id, attributes=llm_attrs("acme-internal-llm"), kind=3)],
    )
    Trace.objects.filter(trace_id=trace_id).update(
        cost_usd=Trace.objects.get(trace_id=priced).cost_usd
    )
    html = client_logged_in.get("/traces/").content.decode()
    assert "$0.0000735 + 1 unpriced" in html


# ------------------------------------------------------------------ timeline


def test_the_timeline_nests_spans_under_their_parents(client_logged_in, project):
    trace_id, ids = rich_run(project)
    response = client_logged_in.get(timeline_url(project, trace_id))
    assert response.status_code == 200
    rows = waterfall(response)
    by_name = {r["name"]: r for r in rows}
    assert [r["depth"] for r in rows] == [0, 1, 1, 2, 1]
    assert rows[0]["span_id"] == ids["root"] and rows[0]["size"] == 5
    assert by_name["GET carrier"]["depth"] == 2
    assert rows[by_name["GET carrier"]["parent"]]["span_id"] == ids["tool"]
    assert by_name["execute_tool track_parcel"]["start_ms"] == 320
    html = response.content.decode()
    assert 'id="waterfall-data"' in html and "traces/timeline.js" in html


def test_the_timeline_tells_the_runs_storyline(client_logged_in, project):
    trace_id, _ = rich_run(project)
    response = client_logged_in.get(timeline_url(project, trace_id))
    story = response.context["storyline"]
    assert story.intent.text == "Where is parcel 7?"
    assert [(b.kind, b.title) for b in story.steps] == [
        ("plan", "gpt-4o"),
        ("tool", "track_parcel"),
    ]
    assert story.steps[0].tools == ["track_parcel"]
    assert story.final.text == "It is in Leipzig."
    html = response.content.decode()
    for text in ("Where is parcel 7?", "track_parcel", "It is in Leipzig.", "Storyline"):
        assert text in html


def test_the_timeline_marks_errors_and_orphans(client_logged_in, project):
    trace_id, _ = rich_run(project, error=True)
    span_batch_ingest(
        project_id=project.pk,
        spans=[
            raw_span(
                trace_id=trace_id,
                parent_span_id="00000000000000aa",
                name="late callback",
                start=START + timedelta(milliseconds=50),
            )
        ],
    )
    response = client_logged_in.get(timeline_url(project, trace_id))
    rows = {r["name"]: r for r in waterfall(response)}
    assert rows["late callback"]["depth"] == 0 and rows["late callback"]["flags"] & 1
    assert rows["execute_tool track_parcel"]["flags"] & 2
    assert "1 without parent" in response.content.decode()
    tool_beat = next(b for b in response.context["storyline"].steps if b.kind == "tool")
    assert tool_beat.status == "error"


def test_the_timeline_of_an_unknown_trace_is_404(client_logged_in, project):
    response = client_logged_in.get(timeline_url(project, "0" * 32))
    assert response.status_code == 404


def test_the_span_partial_shows_messages(client_logged_in, project):
    trace_id, ids = rich_run(project)
    response = client_logged_in.get(span_url(project, trace_id, ids["plan"]), **XHR)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert "Where is parcel 7?" in html and "Checking the carrier." in html
    assert "track_parcel" in html and "tool_calls" in html
    assert "gpt-4o" in html and "Computed from price data" in html


def test_the_span_partial_shows_tool_arguments_and_result_pretty_printed(client_logged_in, project):
    trace_id, ids = rich_run(project)
    html = client_logged_in.get(span_url(project, trace_id, ids["tool"]), **XHR).content.decode()
    assert "&quot;carrier&quot;: &quot;DHL&quot;" in html
    assert '<pre class="tool-args">{\n  &quot;parcel&quot;: 7,' in html
    assert "&quot;hub&quot;: &quot;Leipzig&quot;" in html


def test_the_span_partial_shows_the_exception(client_logged_in, project):
    trace_id, ids = rich_run(project, error=True)
    html = client_logged_in.get(span_url(project, trace_id, ids["tool"])).content.decode()
    assert "httpx.ReadTimeout" in html and "carrier API did not answer" in html
    assert "Traceback (most recent call last):" in html


def test_a_span_opened_directly_gets_a_page_linking_back_to_its_timeline(client_logged_in, project):
    trace_id, ids = rich_run(project)
    html = client_logged_in.get(span_url(project, trace_id, ids["tool"])).content.decode()
    assert "<html" in html and "track_parcel" in html
    assert f"{timeline_url(project, trace_id)}#span-{ids['tool']}" in html


def test_a_span_of_another_trace_is_404(client_logged_in, project):
    _, ids = rich_run(project)
    second, _ = rich_run(project)
    assert client_logged_in.get(span_url(project, second, ids["tool"])).status_code == 404


# ------------------------------------------------------------------ sessions


def test_the_session_view_lists_its_traces_in_time_order_with_totals(client_logged_in, project):
    ids = bulk_runs(project, 3, session_id="sess-9")
    bulk_runs(project, 1, session_id="other")
    response = client_logged_in.get(reverse("session-detail", args=[project.slug, "sess-9"]))
    assert response.status_code == 200
    assert listed(response) == ids
    assert response.context["totals"].trace_count == 3
    assert response.context["totals"].span_count == 12
    html = response.content.decode()
    assert timeline_url(project, ids[0]) in html


def test_an_unknown_session_is_404(client_logged_in, project):
    url = reverse("session-detail", args=[project.slug, "nope"])
    assert client_logged_in.get(url).status_code == 404


def test_the_timeline_links_to_its_session(client_logged_in, project):
    [trace_id] = bulk_runs(project, 1, session_id="sess-3")
    html = client_logged_in.get(timeline_url(project, trace_id)).content.decode()
    assert reverse("session-detail", args=[project.slug, "sess-3"]) in html


# ------------------------------------------------------------------ query counts

# session + user, then the page's own reads; none grows with rows or spans.
LIST_QUERIES = 7  # + count, agents, nav projects, page of traces, firing-alert badge
TIMELINE_QUERIES = 10  # + project, trace, span columns, storyline texts, contract checks,
# tool spans with an approval id (their approvals only when there are some), nav projects,
# firing-alert badge


@pytest.mark.parametrize("traces", [1, 12])
def test_the_list_runs_a_fixed_number_of_queries(
    client_logged_in, project, django_assert_num_queries, traces
):
    bulk_runs(project, traces, session_id="s")
    with django_assert_num_queries(LIST_QUERIES):
        response = client_logged_in.get("/traces/")
    assert len(listed(response)) == traces


@pytest.mark.parametrize("spans", [5, 300])
def test_the_timeline_runs_a_fixed_number_of_queries(
    client_logged_in, project, django_assert_num_queries, spans
):
    trace_id = big_trace(project, spans)
    with django_assert_num_queries(TIMELINE_QUERIES):
        response = client_logged_in.get(timeline_url(project, trace_id))
    assert len(waterfall(response)) == spans


def test_the_trace_list_can_put_the_costliest_runs_first(client_logged_in, project):
    from decimal import Decimal

    from tests.factories import agent_run
    from traces.models import Trace

    newer, _ = agent_run(project=project)
    older, _ = agent_run(project=project, start=datetime.now(UTC) - timedelta(hours=2))
    Trace.objects.filter(trace_id=older).update(cost_usd=Decimal("5"))

    page = client_logged_in.get("/traces/?order=cost")

    ids = [t.trace_id for t in page.context["page"].object_list]
    assert ids == [older, newer]
    assert 'value="cost" selected' in page.content.decode()


def test_the_trace_list_offers_every_api_order_and_says_which_one_it_shows(
    client_logged_in, project
):
    from drf_spectacular.utils import OpenApiParameter

    from traces.api.views import FILTER_PARAMS
    from traces.selectors import TraceFilters

    small, _ = agent_run(project=project)
    big, _ = agent_run(project=project, start=datetime.now(UTC) - timedelta(hours=2))
    Trace.objects.filter(trace_id=big).update(input_tokens=90_000)
    (api_order,) = [
        p for p in FILTER_PARAMS if isinstance(p, OpenApiParameter) and p.name == "order"
    ]

    page = client_logged_in.get("/traces/")
    offered = [value for value, _ in page.context["orders"]]
    assert offered == list(TraceFilters.ORDERS) == api_order.enum
    assert "· newest first ·" in page.content.decode()

    by_tokens = client_logged_in.get("/traces/?order=tokens")
    html = by_tokens.content.decode()
    assert listed(by_tokens) == [big, small]
    assert 'value="tokens" selected' in html
    assert "· most input tokens first ·" in html and "newest first" not in html
    assert "· slowest first ·" in client_logged_in.get("/traces/?order=duration").content.decode()


def chat_run(project, *, session, minute, question, answer, on_root=True):
    """A run of `session` whose question and answer sit on its root span, or only on its
    model calls."""
    trace_id, root = new_trace_id(), new_span_id()
    asked = json.dumps([{"role": "user", "parts": [{"type": "text", "content": question}]}])
    said = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": answer}]}])
    start = START + timedelta(minutes=minute)
    common = {"session.id": session}
    root_attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "courier"}
    if on_root:
        root_attrs |= {"gen_ai.input.messages": asked, "gen_ai.output.messages": said}
    spans = [
        raw_span(
            trace_id=trace_id,
            span_id=root,
            name="invoke_agent courier",
            start=start,
            duration_ms=900,
            attributes={**root_attrs, **common},
        ),
        raw_span(
            trace_id=trace_id,
            parent_span_id=root,
            name="chat gpt-4o",
            start=start + timedelta(milliseconds=10),
            kind=3,
            attributes=llm_attrs("gpt-4o", **{"gen_ai.input.messages": asked}, **common),
        ),
        raw_span(
            trace_id=trace_id,
            parent_span_id=root,
            name="chat gpt-4o",
            start=start + timedelta(milliseconds=500),
            kind=3,
            attributes=llm_attrs("gpt-4o", **{"gen_ai.output.messages": said}, **common),
        ),
    ]
    span_batch_ingest(project_id=project.pk, spans=spans)
    return trace_id


def test_the_session_view_reads_as_a_conversation_linking_each_run(client_logged_in, project):
    first = chat_run(
        project,
        session="chat-1",
        minute=0,
        question="Where is parcel 7?",
        answer="It is in Leipzig.",
    )
    second = chat_run(
        project,
        session="chat-1",
        minute=5,
        question="When will it arrive?",
        answer="Tomorrow before noon.",
        on_root=False,
    )
    chat_run(project, session="other", minute=1, question="Unrelated", answer="Not shown")

    response = client_logged_in.get(reverse("session-detail", args=[project.slug, "chat-1"]))

    turns = [(t.trace.trace_id, t.asked, t.answered) for t in response.context["turns"]]
    assert turns == [
        (first, "Where is parcel 7?", "It is in Leipzig."),
        (second, "When will it arrive?", "Tomorrow before noon."),
    ]
    html = response.content.decode()
    transcript = html[html.index('id="conversation"') :]
    order = [
        transcript.index(text)
        for text in (
            "Where is parcel 7?",
            "It is in Leipzig.",
            "When will it arrive?",
            "Tomorrow before noon.",
        )
    ]
    assert order == sorted(order)
    assert timeline_url(project, second) in transcript
    assert "Unrelated" not in html


def test_a_long_session_conversation_is_paged(client_logged_in, project, monkeypatch):
    monkeypatch.setattr("traces.views.SESSION_PAGE_SIZE", 2)
    for i in range(3):
        chat_run(project, session="long", minute=i, question=f"question {i}", answer=f"answer {i}")
    url = reverse("session-detail", args=[project.slug, "long"])

    first, last = client_logged_in.get(url), client_logged_in.get(url + "?page=2")

    assert [t.asked for t in first.context["turns"]] == ["question 0", "question 1"]
    assert [t.asked for t in last.context["turns"]] == ["question 2"]
