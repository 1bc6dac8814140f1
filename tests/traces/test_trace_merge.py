"""A trace summary depends on its spans only: not on how they are split into requests, nor
on the order the requests arrive in."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import ProjectFactory
from traces.ingest import span_batch_ingest
from traces.models import Trace
from traces.otlp import RawSpan

pytestmark = pytest.mark.django_db

T0 = 1_793_000_000 * 10**9  # 2026-10-26
RECEIVED = datetime(2026, 10, 26, 12, tzinfo=UTC)
# Every summary column; received times are equal because every batch is received at once.
COLUMNS = [f.name for f in Trace._meta.concrete_fields if f.name not in ("id", "project")]

_slugs = itertools.count()

few = st.sampled_from
span_shape = st.fixed_dictionaries(
    {
        "root": st.booleans(),
        # Few distinct starts, so ties are common and the span id has to break them.
        "start": st.integers(0, 3),
        "duration": st.integers(1, 5),
        "agent": few(["", "", "planner", "worker"]),
        "version": few(["", "v1", "v2"]),
        "phase": few(["", "shadow", "bounded", "expanded"]),
        "prompt": few(["", "p1", "p2"]),
        "session": few(["", "s1", "s2"]),
        "user": few(["", "u1", "u2"]),
        "service": few(["", "api", "batch"]),
        "error": st.booleans(),
        "llm": st.booleans(),
        "tool": st.booleans(),
        "tokens": st.integers(0, 10_000),
        # Binary fractions: exact in SQLite's floating-point decimals whatever the order.
        "cost": st.one_of(st.none(), st.integers(0, 6400).map(lambda k: Decimal(k) / 64)),
        "intervened": st.booleans(),
    }
)


def _span(trace_id: str, span_id: str, s: dict) -> RawSpan:
    a: dict = {}
    if s["agent"]:
        a["gen_ai.agent.name"] = s["agent"]
    if s["version"]:
        a["gen_ai.agent.version"] = s["version"]
    if s["phase"]:
        a["agentops.autonomy.phase"] = s["phase"]
    if s["prompt"]:
        a["agentops.prompt.version"] = s["prompt"]
    if s["session"]:
        a["session.id"] = s["session"]
    if s["user"]:
        a["user.id"] = s["user"]
    if s["intervened"]:
        a["agentops.human.intervened"] = True
    if s["llm"]:
        a |= {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "no-such-model",
            "gen_ai.usage.input_tokens": s["tokens"],
            "gen_ai.usage.output_tokens": s["tokens"] // 3,
        }
        if s["cost"] is not None:
            a["gen_ai.usage.cost"] = str(s["cost"])
    elif s["tool"]:
        a |= {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}
    start = T0 + s["start"] * 10**6
    return RawSpan(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id="" if s["root"] else "00000000000000aa",
        name=f"step {s['start']}",
        kind=1,
        start_ns=start,
        end_ns=start + s["duration"] * 10**6,
        attributes=a,
        events=[],
        links=[],
        status_code=2 if s["error"] else 1,
        status_message="",
        resource={"service.name": s["service"]} if s["service"] else {},
        scope={},
    )


@st.composite
def traces_and_batches(draw):
    spans = []
    for t in range(draw(st.integers(1, 3))):
        trace_id = f"{t + 1:032x}"
        shapes = draw(st.lists(span_shape, min_size=1, max_size=7))
        ids = draw(
            st.lists(st.integers(1, 2**32), min_size=len(shapes), max_size=len(shapes), unique=True)
        )
        spans += [_span(trace_id, f"{i:016x}", s) for i, s in zip(ids, shapes, strict=True)]
    order = draw(st.permutations(range(len(spans))))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(spans) - 1)), max_size=len(spans))))
    bounds = [0, *[c for c in cuts if c < len(spans)], len(spans)]
    batches = [[spans[i] for i in order[a:b]] for a, b in itertools.pairwise(bounds)]
    # A re-sent span changes nothing.
    if draw(st.booleans()):
        batches.append([spans[draw(st.integers(0, len(spans) - 1))]])
    return spans, batches


def _summaries(project) -> dict[str, dict]:
    return {
        row["trace_id"]: row
        for row in Trace.objects.filter(project=project).order_by("trace_id").values(*COLUMNS)
    }


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=traces_and_batches())
def test_a_summary_is_the_same_for_every_split_and_order_of_its_spans(case):
    spans, batches = case
    whole = ProjectFactory(slug=f"whole-{next(_slugs)}")
    split = ProjectFactory(slug=f"split-{next(_slugs)}")

    span_batch_ingest(project_id=whole.pk, spans=spans, received_at=RECEIVED)
    for batch in batches:
        span_batch_ingest(project_id=split.pk, spans=batch, received_at=RECEIVED)

    assert _summaries(split) == _summaries(whole)


def test_the_earliest_agent_span_names_the_run_whichever_request_brings_it(project):
    trace_id = "1" * 32
    planner = _span(trace_id, "0" * 15 + "1", {**_plain, "agent": "planner", "start": 0})
    worker = _span(trace_id, "0" * 15 + "2", {**_plain, "agent": "worker", "start": 1})

    span_batch_ingest(project_id=project.pk, spans=[worker])
    span_batch_ingest(project_id=project.pk, spans=[planner])

    assert Trace.objects.get().agent == "planner"


_plain = {
    "root": False,
    "start": 0,
    "duration": 1,
    "agent": "",
    "version": "",
    "phase": "",
    "prompt": "",
    "session": "",
    "user": "",
    "service": "",
    "error": False,
    "llm": False,
    "tool": False,
    "tokens": 0,
    "cost": None,
    "intervened": False,
}
