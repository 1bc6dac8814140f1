"""The index of a big trace, read from the database with no object per span, is the one
built from Nodes (span_tree, storyline_build) for the same spans: same rows, offsets,
flags, minimap and storyline, whatever the shape (orphans, a span that is its own parent,
a parent cycle, equal start times, runs of one tool, explicit roles, errors)."""

from __future__ import annotations

import dataclasses
import gc
from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import llm_attrs, new_span_id, new_trace_id, raw_span
from traces.ingest import span_batch_ingest
from traces.models import Trace
from traces.timeline import (
    _index_load,
    span_nodes_load,
    span_texts_load,
    span_tree,
    storyline_build,
    storyline_span_ids,
    timeline_index_build,
    timeline_rows,
)

START = datetime(2025, 3, 10, 10, 30, tzinfo=UTC)


def a_messy_trace(project) -> Trace:
    """Model calls each followed by tool calls (a run of one tool, errors), a retry loop,
    explicit roles, orphans, a span that is its own parent, a two-span parent cycle and
    spans starting at the same microsecond."""
    trace_id, root = new_trace_id(), new_span_id()
    at = START
    spans = [
        raw_span(
            trace_id=trace_id,
            span_id=root,
            name="invoke_agent",
            start=at,
            duration_ms=60_000,
            attributes={"gen_ai.operation.name": "invoke_agent"},
        )
    ]

    def add(name, *, parent=root, attrs=None, ms=10.0, error=False, start=None):
        nonlocal at
        at += timedelta(microseconds=1_234)
        span_id = new_span_id()
        spans.append(
            raw_span(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=parent,
                name=name,
                start=start or at,
                duration_ms=ms,
                attributes=attrs or {},
                status_code=2 if error else 0,
                status_message="boom" if error else "",
            )
        )
        return span_id

    for i in range(40):
        add("chat", attrs=llm_attrs(), ms=800 + i)
        tool = "search" if i % 7 else "fetch"
        for k in range(1 + i % 3):
            call = add(
                f"execute_tool {tool}",
                attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool},
                ms=30 + k,
                error=(i + k) % 11 == 0,
            )
            add("GET", parent=call, ms=20)
    add("plan", attrs={"agentops.step": "plan"})
    add("check", attrs={"agentops.step": "policy", "agentops.policy.decision": "allow"})
    add("late orphan", parent=new_span_id())
    self_parent = new_span_id()
    spans.append(
        raw_span(trace_id=trace_id, span_id=self_parent, parent_span_id=self_parent, start=at)
    )
    a, b = new_span_id(), new_span_id()
    spans += [
        raw_span(trace_id=trace_id, span_id=a, parent_span_id=b, name="cycle a", start=at),
        raw_span(trace_id=trace_id, span_id=b, parent_span_id=a, name="cycle b", start=at),
    ]
    for _ in range(3):  # the same start: ordered by span id
        add("tie", start=at, ms=5)
    add("answer", attrs=llm_attrs(**{"gen_ai.response.finish_reasons": ["stop"]}))
    span_batch_ingest(project_id=project.pk, spans=spans)
    return Trace.objects.get(trace_id=trace_id)


def reference_index(trace: Trace):
    """The index as a small trace's page builds it: a Node per span."""
    nodes = span_nodes_load(trace=trace)
    root = trace.root_span_id
    texts = span_texts_load(trace=trace, span_ids=storyline_span_ids(nodes, root_span_id=root))
    story = storyline_build(nodes=nodes, texts=texts, root_span_id=root, trace_status=trace.status)
    return timeline_index_build(tree=span_tree(nodes), storyline=story)


@pytest.mark.django_db
def test_the_index_read_as_columns_is_the_one_built_from_nodes(project):
    trace = a_messy_trace(project)
    fast, reference = _index_load(trace=trace), reference_index(trace)
    got, want = dataclasses.asdict(fast), dataclasses.asdict(reference)
    for key in ("pks", "t0"):  # only the index read from the database has them
        got.pop(key)
        want.pop(key)
    assert got == want
    assert fast.count == trace.span_count
    # the orphan, the span that is its own parent, the cycle's first span (the other
    # hangs under it)
    assert fast.orphan_count == 3
    assert len(fast.storyline.steps) > 3


@pytest.mark.django_db
def test_every_window_of_rows_is_read_back_by_primary_key_and_start(project):
    trace = a_messy_trace(project)
    index = _index_load(trace=trace)
    assert index.t0 == trace.started_at
    seen = []
    for offset in range(0, index.count, 25):
        window = timeline_rows(trace=trace, index=index, offset=offset, limit=25)
        # a row whose span was not found would have no name
        assert all(row[4] for row in window["rows"])
        seen += [row[0] for row in window["rows"]]
    assert seen == index.span_ids


@pytest.mark.django_db
def test_building_the_index_makes_no_long_lived_object_per_span(project):
    """The index of a big trace is built with no container object per span alive across
    garbage collections: thousands of them would be promoted to the oldest generation
    and soon make the collector walk the whole process (tens of milliseconds in one the
    size of the console's)."""
    trace_id = new_trace_id()
    root = new_span_id()
    spans = [raw_span(trace_id=trace_id, span_id=root, start=START, duration_ms=9e6)]
    parents = [root]
    for i in range(6000):
        span_id = new_span_id()
        spans.append(
            raw_span(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=parents[i // 3],
                start=START + timedelta(milliseconds=i),
                attributes=llm_attrs() if i % 2 else {"gen_ai.tool.name": "t"},
            )
        )
        parents.append(span_id)
    for at in range(0, len(spans), 1000):
        span_batch_ingest(project_id=project.pk, spans=spans[at : at + 1000])
    trace = Trace.objects.get(trace_id=trace_id)
    _index_load(trace=trace)  # warm: queries compiled, modules loaded

    promoted = [0]

    def count(phase, info):  # objects in the oldest generation after each middle collection
        if phase == "stop" and info["generation"] == 1:
            promoted[0] = max(promoted[0], len(gc.get_objects(generation=2)))

    gc.collect()
    gc.freeze()  # what was there before is left out of the count
    threshold = gc.get_threshold()
    gc.set_threshold(700, 2, 1_000_000)  # a middle collection every 1,400 allocations
    gc.callbacks.append(count)
    try:
        index = _index_load(trace=trace)
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*threshold)
        gc.unfreeze()
    assert index.count == 6001
    assert promoted[0] < 600, promoted[0]
