"""The timeline's read functions: span tree, waterfall rows, storyline, span details."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.factories import agent_run, llm_attrs, new_span_id, new_trace_id, raw_span
from traces import display
from traces.ingest import span_batch_ingest
from traces.models import Span, Trace
from traces.timeline import (
    FLAG_ERROR,
    FLAG_ORPHAN,
    FLAG_UNPRICED,
    Node,
    SpanText,
    pretty,
    session_totals,
    span_detail,
    span_tree,
    storyline_build,
    storyline_span_ids,
    timeline_build,
    waterfall_payload,
)
from traces.timeline_messages import Messages

# ------------------------------------------------------------------ builders


def node(span_id, parent="", *, start=0.0, dur=10.0, step="other", **kw) -> Node:
    return Node(
        span_id=span_id,
        parent_span_id=parent,
        name=kw.pop("name", span_id),
        step=step,
        start_ms=start,
        duration_ms=dur,
        **kw,
    )


def msg(role, content="", calls=()) -> dict:
    return {
        "role": role,
        "content": content,
        "tool_calls": [{"id": f"c{i}", "name": n, "arguments": "{}"} for i, n in enumerate(calls)],
    }


def text(*, input=(), output=(), finish=(), args="", result="", attributes=None, error=""):
    return SpanText(
        messages=Messages(input=list(input), output=list(output), finish_reasons=list(finish)),
        tool_arguments=args,
        tool_result=result,
        status_message=error,
        attributes=attributes or {},
    )


def story(nodes, texts=None, root="root", status="ok"):
    return storyline_build(nodes=nodes, texts=texts or {}, root_span_id=root, trace_status=status)


def a_run():
    """root → llm (asks for lookup) → tool lookup → llm (answers)."""
    return [
        node("root", start=0, dur=100, step="agent", name="invoke_agent support"),
        node("plan", "root", start=1, dur=20, step="llm", model="gpt-4o"),
        node("look", "root", start=22, dur=5, step="tool", tool_name="lookup_order"),
        node("answer", "root", start=30, dur=20, step="llm", model="gpt-4o"),
    ]


# ------------------------------------------------------------------ span tree


def test_children_follow_their_parent_in_start_order():
    nodes = [
        node("b", "root", start=5),
        node("root", start=0, dur=50),
        node("a", "root", start=1),
        node("a1", "a", start=2),
    ]
    tree = span_tree(nodes)
    assert [(n.span_id, n.depth) for n in tree] == [("root", 0), ("a", 1), ("a1", 2), ("b", 1)]


def test_each_subtree_is_a_contiguous_range_of_rows():
    tree = span_tree(
        [
            node("root", start=0),
            node("a", "root", start=1),
            node("a1", "a", start=2),
            node("a2", "a", start=3),
            node("b", "root", start=4),
        ]
    )
    ids = [n.span_id for n in tree]
    a = ids.index("a")
    assert tree[a].size == 3
    assert ids[a : a + tree[a].size] == ["a", "a1", "a2"]
    assert tree[0].size == 5
    assert [tree[n.parent_index].span_id if n.parent_index >= 0 else None for n in tree] == [
        None,
        "root",
        "a",
        "a",
        "root",
    ]


def test_a_span_whose_parent_never_arrived_is_shown_at_the_top_level_marked_orphan():
    tree = span_tree(
        [node("root", start=0), node("late", "ffffffffffffffff", start=3), node("c", "root")]
    )
    late = next(n for n in tree if n.span_id == "late")
    assert late.depth == 0 and late.orphan
    assert not next(n for n in tree if n.span_id == "root").orphan


def test_a_parent_cycle_loses_no_span():
    tree = span_tree([node("root"), node("x", "y", start=1), node("y", "x", start=2)])
    assert sorted(n.span_id for n in tree) == ["root", "x", "y"]
    assert sum(n.size for n in tree if n.depth == 0) == 3


def test_a_chain_of_thousands_of_nested_spans_does_not_hit_the_recursion_limit():
    nodes = [node("s0")] + [node(f"s{i}", f"s{i - 1}", start=i) for i in range(1, 3000)]
    tree = span_tree(nodes)
    assert tree[-1].depth == 2999 and tree[0].size == 3000


# ------------------------------------------------------------------ waterfall rows


def test_waterfall_rows_carry_offsets_and_flags():
    nodes = [
        node("root", start=0, dur=100),
        node("err", "root", start=10, dur=5, status="error"),
        node("free", "root", start=20, dur=5, step="llm", cost_source="unpriced", model="m"),
        node("paid", "root", start=30, dur=5, step="llm", cost_usd=Decimal("0.0123"), model="m"),
        node("lost", "0000000000000001", start=40, dur=5),
    ]
    payload = waterfall_payload(span_tree(nodes))
    fields = payload["fields"]
    rows = {r[0]: dict(zip(fields, r, strict=True)) for r in payload["rows"]}
    assert payload["total_ms"] == 100
    assert rows["err"]["start_ms"] == 10 and rows["err"]["flags"] == FLAG_ERROR
    assert rows["free"]["flags"] == FLAG_UNPRICED and rows["free"]["cost"] == "unpriced"
    assert rows["paid"]["cost"] == "$0.0123"
    assert rows["lost"]["flags"] == FLAG_ORPHAN
    assert rows["lost"]["missing_parent"] == "0000000000000001"


# ------------------------------------------------------------------ storyline


def test_intent_is_the_first_user_message_of_the_root():
    s = story(
        a_run(),
        {"root": text(input=[msg("system", "be nice"), msg("user", "Where is order 42?")])},
    )
    assert s.intent.text == "Where is order 42?"
    assert s.intent.span_id == "root"


def test_intent_falls_back_to_the_first_model_call():
    s = story(a_run(), {"plan": text(input=[msg("user", "Cancel my plan")])})
    assert s.intent.text == "Cancel my plan" and s.intent.span_id == "plan"


def test_a_model_call_whose_output_asks_for_tools_is_a_plan():
    texts = {
        "plan": text(output=[msg("assistant", "Let me check.", calls=["lookup_order"])]),
        "answer": text(output=[msg("assistant", "It shipped.")], finish=["stop"]),
    }
    s = story(a_run(), texts)
    plan, tool = s.steps
    assert (plan.kind, plan.span_id, plan.tools) == ("plan", "plan", ["lookup_order"])
    assert plan.text == "Let me check."
    assert (tool.kind, tool.title) == ("tool", "lookup_order")


def test_without_recorded_content_a_model_call_followed_by_tools_is_a_plan():
    s = story(a_run())
    assert [b.kind for b in s.steps] == ["plan", "tool"]
    assert s.steps[0].tools == ["lookup_order"]


def test_a_tool_calls_finish_reason_marks_a_plan_even_without_tool_spans():
    nodes = [node("root", step="agent"), node("p", "root", start=1, step="llm")]
    nodes.append(node("f", "root", start=5, step="llm"))
    s = story(nodes, {"p": text(finish=["tool_calls"]), "f": text(finish=["stop"])})
    assert [b.span_id for b in s.steps] == ["p"]
    assert s.final.span_id == "f"


def test_tool_steps_show_arguments_result_and_errors():
    nodes = [*a_run(), node("boom", "root", start=25, step="tool", tool_name="refund")]
    nodes[-1].status = "error"
    texts = {
        "look": text(args='{"order_id": 42}', result='{"status": "shipped"}'),
        "boom": text(args='{"amount": 80}', error="limit exceeded"),
    }
    s = story(nodes, texts)
    look = next(b for b in s.steps if b.span_id == "look")
    boom = next(b for b in s.steps if b.span_id == "boom")
    assert look.text == '{"order_id": 42}' and look.result == '{"status": "shipped"}'
    assert boom.status == "error" and boom.result == "limit exceeded"


def test_the_final_state_is_the_last_model_call_that_stopped():
    texts = {"answer": text(output=[msg("assistant", "It shipped on Monday.")], finish=["stop"])}
    s = story(a_run(), texts, status="ok")
    assert s.final.span_id == "answer"
    assert s.final.text == "It shipped on Monday." and s.final.status == "ok"
    assert "answer" not in [b.span_id for b in s.steps]


def test_the_final_state_falls_back_to_the_roots_output():
    nodes = [node("root", step="agent"), node("t", "root", start=1, step="tool")]
    s = story(nodes, {"root": text(output=[msg("assistant", "Done: 3 invoices sent")])})
    assert s.final.span_id == "root" and s.final.text == "Done: 3 invoices sent"


def test_an_explicit_role_overrides_inference():
    nodes = [
        node("root", step="agent"),
        node("ask", "root", start=1, step="other", role="intent"),
        node("think", "root", start=2, step="llm", role="plan"),  # no tools follow
        node("out", "root", start=3, step="tool", role="final", tool_name="send_reply"),
        node("last", "root", start=4, step="llm"),  # would be the inferred final answer
    ]
    texts = {
        "ask": text(input=[msg("user", "Refund order 9")]),
        "out": text(result="Refund issued", output=[msg("assistant", "Refund issued")]),
        "last": text(output=[msg("assistant", "noise")], finish=["stop"]),
    }
    s = story(nodes, texts)
    assert s.intent.span_id == "ask" and s.intent.text == "Refund order 9"
    assert s.final.span_id == "out" and s.final.text == "Refund issued"
    assert [b.span_id for b in s.steps] == ["think"]
    assert s.steps[0].kind == "plan"


def test_policy_and_escalation_steps_appear_with_their_decision():
    nodes = [
        *a_run(),
        node("gate", "root", start=21, step="policy", name="policy check"),
        node("human", "root", start=28, step="escalation", name="ask a human"),
    ]
    texts = {
        "gate": text(
            attributes={"agentops.policy.name": "refund_limit", "agentops.policy.decision": "deny"}
        )
    }
    s = story(nodes, texts)
    kinds = [(b.kind, b.title) for b in s.steps]
    assert ("policy", "refund_limit") in kinds and ("escalation", "ask a human") in kinds
    assert next(b for b in s.steps if b.kind == "policy").note == "deny"


def test_consecutive_calls_of_one_tool_are_one_beat():
    nodes = [node("root", step="agent"), node("p", "root", start=1, step="llm")]
    for i in range(3):
        nodes.append(node(f"t{i}", "root", start=10 + i, step="tool", tool_name="search"))
    nodes[-1].status = "error"
    s = story(nodes)
    tool = s.steps[-1]
    assert (tool.kind, tool.count, tool.errors, tool.status) == ("tool", 3, 1, "error")
    assert tool.result.startswith("1 failed, 2 ok")


def test_a_long_run_is_cut_with_a_gap_that_counts_hidden_steps_and_errors():
    nodes = [node("root", step="agent", dur=10_000)]
    for i in range(200):
        nodes.append(node(f"p{i}", "root", start=i * 10, step="llm"))
        tool = node(f"t{i}", "root", start=i * 10 + 5, step="tool", tool_name=f"tool{i}")
        tool.status = "error" if i == 100 else "ok"
        nodes.append(tool)
    s = story(nodes)
    gaps = [b for b in s.steps if b.kind == "gap"]
    assert len(gaps) == 1 and len(s.steps) <= 10
    shown = sum(b.count for b in s.steps if b.kind != "gap")
    assert gaps[0].hidden + shown == 400
    assert gaps[0].errors == 1 and "1 with errors" in gaps[0].title


def test_the_storyline_reads_the_text_of_a_bounded_number_of_spans():
    nodes = [node("root", step="agent")]
    for i in range(1000):
        nodes.append(node(f"p{i}", "root", start=i * 2, step="llm"))
        nodes.append(node(f"t{i}", "root", start=i * 2 + 1, step="tool"))
    ids = storyline_span_ids(nodes, root_span_id="root")
    assert "root" in ids and "p0" in ids and "p999" in ids
    assert len(ids) <= 30


# ------------------------------------------------------------------ from the database


def ingest(project, spans):
    span_batch_ingest(project_id=project.pk, spans=spans)


def test_timeline_build_nests_an_ingested_run_and_tells_its_story(project):
    trace_id, _ = agent_run(project=project, tools=2)
    trace = Trace.objects.get(trace_id=trace_id)
    timeline = timeline_build(trace=trace)
    assert [n.depth for n in timeline.tree] == [0, 1, 1, 1, 1]
    assert timeline.tree[0].step == "agent" and timeline.tree[0].size == 5
    assert [b.kind for b in timeline.storyline.steps] == ["plan", "tool"]
    assert timeline.storyline.steps[1].count == 2
    assert timeline.storyline.final.status == "ok"


def test_span_detail_reads_the_exception_event(project):
    trace_id = new_trace_id()
    start = datetime(2025, 5, 1, 12, tzinfo=UTC)
    ingest(
        project,
        [
            raw_span(
                trace_id=trace_id,
                name="execute_tool charge",
                start=start,
                status_code=2,
                attributes={"gen_ai.tool.name": "charge", "gen_ai.tool.call.arguments": "{}"},
                events=[
                    {
                        "name": "exception",
                        "time_unix_nano": int(start.timestamp() * 1e9) + 5_000_000,
                        "attributes": {
                            "exception.type": "stripe.CardError",
                            "exception.message": "card declined",
                            "exception.stacktrace": "Traceback...\nstripe.CardError: card declined",
                        },
                    }
                ],
            )
        ],
    )
    span = Span.objects.get(trace_id=trace_id)
    detail = span_detail(span=span, trace=Trace.objects.get(trace_id=trace_id))
    assert detail.exception.type == "stripe.CardError"
    assert detail.exception.message == "card declined"
    assert "Traceback" in detail.exception.stacktrace.text
    assert detail.events[0].offset_ms == pytest.approx(5.0)


def test_span_detail_pretty_prints_json_and_names_the_cost_source(project):
    trace_id = new_trace_id()
    attrs = llm_attrs(
        "gpt-4o-mini",
        **{
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "hello"}]}]
            )
        },
    )
    ingest(project, [raw_span(trace_id=trace_id, attributes=attrs, kind=3)])
    span = Span.objects.get(trace_id=trace_id)
    detail = span_detail(span=span, trace=Trace.objects.get(trace_id=trace_id))
    assert detail.input[0].role == "user" and detail.input[0].content.text == "hello"
    assert detail.cost_source_label == "Computed from price data"
    assert pretty('{"a": 1}') == '{\n  "a": 1\n}'
    assert pretty("not json {") == "not json {"
    assert pretty('{"ids": [1, 2, 3]}') == '{\n  "ids": [1, 2, 3]\n}'  # short arrays stay inline


def test_session_totals_add_up_the_sessions_traces(project):
    start = datetime(2025, 5, 1, 12, tzinfo=UTC)
    agent_run(project=project, session_id="s-1", start=start)
    agent_run(project=project, session_id="s-1", start=start + timedelta(minutes=5), error=True)
    agent_run(project=project, session_id="s-2", start=start)
    totals = session_totals(project=project, session_id="s-1")
    assert totals.trace_count == 2 and totals.error_count >= 1
    assert totals.span_count == 8
    assert totals.started_at == start


def test_an_unpriced_span_is_shown_as_unpriced_not_zero(project):
    trace_id = new_trace_id()
    ingest(
        project,
        [
            raw_span(
                trace_id=trace_id,
                span_id=new_span_id(),
                attributes=llm_attrs("acme-internal-llm"),
                kind=3,
            )
        ],
    )
    trace = Trace.objects.get(trace_id=trace_id)
    assert trace.unpriced_count == 1
    row = timeline_build(trace=trace).payload["rows"][0]
    assert row[10] == "unpriced" and row[11] & FLAG_UNPRICED


# ------------------------------------------------------------------ figures


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "—"),
        (Decimal(0), "$0"),
        (Decimal("0.0000735"), "$0.0000735"),
        (Decimal("0.00999"), "$0.00999"),
        (Decimal("0.0123456"), "$0.0123"),
        (Decimal("0.1"), "$0.10"),
        (Decimal("12.345"), "$12.35"),
        (Decimal("1234.5"), "$1,234.50"),
        (Decimal("0.0000000004"), "<$0.000001"),
        # One rule across the whole range: three significant digits under $1, two
        # decimals from $1 on.
        (Decimal("0.1234"), "$0.123"),
        (Decimal("0.98765"), "$0.988"),
        (Decimal("0.9996"), "$1.00"),
        (Decimal("0.0100"), "$0.01"),
        (Decimal("0.009996"), "$0.01"),
        (Decimal("0.5"), "$0.50"),
        (Decimal("0.000001"), "$0.000001"),
        (0.25, "$0.25"),
        (Decimal("-0.1234"), "-$0.123"),
        (Decimal("1"), "$1.00"),
    ],
)
def test_costs_read_with_sensible_precision(value, shown):
    assert display.usd(value) == shown


def test_an_unpriced_call_never_reads_as_zero_dollars():
    assert display.cost_with_unpriced(Decimal("0.0123"), 2) == "$0.0123 + 2 unpriced"
    assert display.cost_with_unpriced(Decimal(0), 1) == "1 unpriced"
    assert display.cost_with_unpriced(Decimal(0), 0) == "$0"


@pytest.mark.parametrize(
    ("ms", "shown"),
    [
        (0.42, "0.42 ms"),
        (123.4, "123 ms"),
        (1240, "1.24 s"),
        (12345, "12.3 s"),
        (125_000, "2 min 05 s"),
        (3_725_000, "1 h 02 min"),
    ],
)
def test_durations_read_as_ms_s_or_min(ms, shown):
    assert display.duration(ms) == shown
