"""A big trace's timeline: the page holds the first window of rows, the others come by
offset from the rows endpoint (scoped, 400 on bad input), "next error" / "next slow span"
look rows up, the root row carries the trace's totals and the minimap its density."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from tests.factories import new_span_id, new_trace_id, raw_span
from traces.ingest import span_batch_ingest
from traces.models import Trace
from traces.timeline import (
    FLAG_ERROR,
    FLAG_SLOW,
    Node,
    span_tree,
    timeline_index,
    timeline_next,
)

START = datetime(2025, 3, 10, 10, 30, tzinfo=UTC)
SPANS = 120  # with the windows below, a "big" trace: 3 windows of 50 rows


@pytest.fixture(autouse=True)
def _small_windows(settings):
    settings.TIMELINE_FULL_ROWS = 60
    settings.TIMELINE_WINDOW_ROWS = 50


def loop_trace(project, spans: int = SPANS, *, errors=(), slow=()) -> tuple[str, list[str]]:
    """A root and spans-1 children one ms apart; the children at `errors` failed, those at
    `slow` took 5 s. Returns the trace id and the span ids in display order."""
    trace_id, root = new_trace_id(), new_span_id()
    ids = [root]
    rows = [raw_span(trace_id=trace_id, span_id=root, name="root", start=START, duration_ms=9e3)]
    for i in range(1, spans):
        ids.append(new_span_id())
        rows.append(
            raw_span(
                trace_id=trace_id,
                span_id=ids[-1],
                parent_span_id=root,
                name=f"step {i}",
                start=START + timedelta(milliseconds=i),
                duration_ms=5000 if i in slow else 10,
                status_code=2 if i in errors else 0,
            )
        )
    span_batch_ingest(project_id=project.pk, spans=rows)
    return trace_id, ids


def page_url(project, trace_id):
    return reverse("trace-timeline", args=[project.slug, trace_id])


def rows_url(project, trace_id):
    return reverse("trace-timeline-rows", args=[project.slug, trace_id])


def next_url(project, trace_id):
    return reverse("trace-timeline-next", args=[project.slug, trace_id])


def test_the_page_of_a_big_trace_holds_only_the_first_window(client_logged_in, project):
    trace_id, ids = loop_trace(project)
    response = client_logged_in.get(page_url(project, trace_id))
    payload = response.context["timeline"].payload
    assert payload["windowed"] is True and payload["count"] == SPANS
    assert payload["offset"] == 0 and [r[0] for r in payload["rows"]] == ids[:50]
    html = response.content.decode()
    assert ids[49] in html and ids[50] not in html and ids[-1] not in html
    # The minimap's density covers every span, loaded or not.
    assert sum(c[0] for c in payload["density"]) == SPANS


def test_a_small_trace_still_ships_every_row(client_logged_in, project):
    trace_id, ids = loop_trace(project, 40)
    payload = client_logged_in.get(page_url(project, trace_id)).context["timeline"].payload
    assert payload["windowed"] is False and [r[0] for r in payload["rows"]] == ids


def test_the_root_row_carries_the_traces_totals(client_logged_in, project):
    trace_id, ids = loop_trace(project)
    payload = client_logged_in.get(page_url(project, trace_id)).context["timeline"].payload
    trace = Trace.objects.get(trace_id=trace_id)
    assert payload["totals"]["span_id"] == ids[0] == payload["rows"][0][0]
    assert payload["totals"]["spans"] == SPANS
    assert payload["totals"]["duration_ms"] == pytest.approx(trace.duration_ms)


def test_the_rows_endpoint_returns_the_window_at_an_offset(client_logged_in, project):
    trace_id, ids = loop_trace(project, errors={75})
    response = client_logged_in.get(rows_url(project, trace_id), {"offset": 50})
    assert response.status_code == 200
    body = response.json()
    assert body["offset"] == 50 and body["count"] == SPANS
    assert [r[0] for r in body["rows"]] == ids[50:100]
    fields = client_logged_in.get(page_url(project, trace_id)).context["timeline"].payload["fields"]
    row = dict(zip(fields, body["rows"][25], strict=True))
    assert row["name"] == "step 75" and row["flags"] & FLAG_ERROR
    assert row["depth"] == 1 and row["parent"] == 0 and row["start_ms"] == 75
    # The last window is short; a limit narrows a window.
    last = client_logged_in.get(rows_url(project, trace_id), {"offset": 100}).json()
    assert len(last["rows"]) == 20
    small = client_logged_in.get(rows_url(project, trace_id), {"offset": 3, "limit": 2}).json()
    assert [r[0] for r in small["rows"]] == ids[3:5]


def test_the_rows_endpoint_finds_the_window_of_a_span(client_logged_in, project):
    trace_id, ids = loop_trace(project)
    body = client_logged_in.get(rows_url(project, trace_id), {"span": ids[110]}).json()
    assert body["offset"] == 100 and ids[110] in [r[0] for r in body["rows"]]
    missing = client_logged_in.get(rows_url(project, trace_id), {"span": "f" * 16})
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"offset": ""},
        {"offset": "-1"},
        {"offset": str(SPANS)},
        {"offset": "10000000000000000000000"},
        {"offset": "1" * 5000},
        {"offset": "abc"},
        {"offset": "1.5"},
        {"offset": "0", "limit": "0"},
        {"offset": "0", "limit": "100000"},
        {"offset": "0", "limit": "x"},
    ],
)
def test_bad_offsets_and_limits_are_a_400(client_logged_in, project, params):
    trace_id, _ = loop_trace(project)
    response = client_logged_in.get(rows_url(project, trace_id), params)
    assert response.status_code == 400
    assert response.json()["error"]


def test_the_endpoints_are_scoped_to_the_users_projects(outsider_client, client, project):
    trace_id, _ = loop_trace(project)
    for url in (rows_url(project, trace_id), next_url(project, trace_id)):
        assert outsider_client.get(url, {"offset": 0, "kind": "error"}).status_code == 404
        anonymous = client.get(url, {"offset": 0, "kind": "error"})
        assert anonymous.status_code == 302 and "/login" in anonymous.url


def test_next_error_and_next_slow_span_find_the_following_row(client_logged_in, project):
    trace_id, _ids = loop_trace(project, errors={7, 90}, slow={64})
    url = next_url(project, trace_id)

    def nxt(kind, after):
        response = client_logged_in.get(url, {"kind": kind, "after": after})
        assert response.status_code == 200
        return response.json()["index"]

    assert nxt("error", -1) == 7
    assert nxt("error", 7) == 90  # beyond the first window
    assert nxt("error", 90) == 7  # wraps round
    assert nxt("slow", 0) == 64
    assert nxt("slow", 64) == 64  # the only one: 1% of 119 leaves, slower than the median
    assert client_logged_in.get(url, {"kind": "nope"}).status_code == 400
    assert client_logged_in.get(url, {"kind": "error", "after": "-2"}).status_code == 400
    assert client_logged_in.get(url, {"kind": "error", "after": "x"}).status_code == 400


def test_next_error_and_slow_are_none_without_any(project):
    trace_id, _ = loop_trace(project, 70)
    index = timeline_index(trace=Trace.objects.get(trace_id=trace_id))
    assert timeline_next(index=index, kind="error", after=-1) is None
    # Equal spans: none is slower than the others.
    assert timeline_next(index=index, kind="slow", after=-1) is None


def test_the_index_is_cached_per_trace_version(project, django_assert_num_queries):
    trace_id, _ = loop_trace(project)
    trace = Trace.objects.get(trace_id=trace_id)
    timeline_index(trace=trace)
    with django_assert_num_queries(0):
        assert timeline_index(trace=trace).count == SPANS
    # A span that arrives later makes a new version.
    span_batch_ingest(
        project_id=project.pk,
        spans=[raw_span(trace_id=trace_id, name="late", start=START + timedelta(seconds=20))],
    )
    assert timeline_index(trace=Trace.objects.get(trace_id=trace_id)).count == SPANS + 1


def test_slow_spans_are_the_slowest_percent_of_leaves():
    nodes = [Node(span_id="root", duration_ms=10_000)]
    nodes += [
        Node(span_id=f"s{i:03d}", parent_span_id="root", start_ms=i, duration_ms=10 + i)
        for i in range(200)
    ]
    from traces.timeline import storyline_build, timeline_index_build

    tree = span_tree(nodes)
    story = storyline_build(nodes=nodes, texts={}, root_span_id="root", trace_status="ok")
    index = timeline_index_build(tree=tree, storyline=story)
    slow = [index.span_ids[i] for i, f in enumerate(index.flags) if f & FLAG_SLOW]
    # 1% of 200 leaves; the root lasts longest but is a parent.
    assert slow == ["s198", "s199"]
    assert index.slow_ms == 208
