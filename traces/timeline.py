"""Reads behind the trace timeline: the span tree, waterfall rows, storyline, span details.

The timeline page must stay fast for traces of thousands of spans, so it is built
from two queries whatever the trace size:

1. the waterfall columns of every span (`WATERFALL_FIELDS`, no JSON blobs);
2. the attributes and events of a *bounded* set of spans the storyline quotes
   (root, first and last model calls, the steps it shows).

A span's full attributes, events and messages are read only when it is selected
(`span_detail`, one span at a time).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import (
    Count,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    Max,
    Min,
    QuerySet,
    Sum,
    Value,
)

from traces import display
from traces.annotations import SpanBadge, span_badges
from traces.models import STEP_ROLES, CostSource, Project, Span, SpanStatus, Step, StepRole, Trace
from traces.selectors import span_list_for_trace
from traces.timeline_messages import Messages, extract_messages

# Columns the waterfall and the storyline's structure need; nothing unbounded.
WATERFALL_FIELDS = (
    "span_id",
    "parent_span_id",
    "name",
    "step",
    "role",
    "status",
    "start",  # started_at, or its offset from the trace start (see _start_column)
    "duration_ms",
    "model",
    "tool_name",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "cost_source",
    "error_type",
)

# Flags of a waterfall row, packed in one integer to keep the page payload small.
FLAG_ORPHAN = 1
FLAG_ERROR = 2
FLAG_UNPRICED = 4

# Longest text a page shows for one value; the rest is counted, not sent.
MAX_TEXT = 20_000
PREVIEW = 240

# Plain strings for the hot loops: an enum attribute lookup is slow next to a str compare,
# and these run once per span per pass over a trace of thousands.
LLM = str(Step.LLM.value)
INTENT, PLAN, FINAL = (str(r.value) for r in (StepRole.INTENT, StepRole.PLAN, StepRole.FINAL))
TOOL, RESULT = str(StepRole.TOOL.value), str(StepRole.RESULT.value)
# Roles shown as steps between the intent and the final state.
_STEP_KINDS = STEP_ROLES - {INTENT, FINAL}
_INTENT_FINAL = frozenset({INTENT, FINAL})
_GATE_ROLES = frozenset(str(r.value) for r in (StepRole.POLICY, StepRole.ESCALATION))
ERROR = str(SpanStatus.ERROR.value)
UNPRICED = str(CostSource.UNPRICED.value)
_TOOLISH = frozenset({Step.TOOL.value, Step.RETRIEVAL.value})
_GATES = frozenset({Step.POLICY.value, Step.ESCALATION.value})
TOOL_FINISH_REASONS = frozenset({"tool_calls", "tool_call", "tool_use", "function_call"})
STOP_FINISH_REASONS = frozenset(
    {"stop", "end_turn", "end", "complete", "completed", "stop_sequence", "eos"}
)


@dataclass(slots=True)
class Node:
    """One span as the waterfall and storyline see it."""

    span_id: str
    parent_span_id: str = ""
    name: str = ""
    step: str = Step.OTHER
    role: str = ""
    status: str = SpanStatus.UNSET
    start_ms: float = 0.0  # offset from the trace's first span
    duration_ms: float = 0.0
    model: str = ""
    tool_name: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal | None = None
    cost_source: str = ""
    error_type: str = ""
    # Set by span_tree:
    depth: int = 0
    orphan: bool = False  # its parent never arrived
    parent_index: int = -1  # position of the parent in span_tree's output
    size: int = 1  # rows in its subtree, itself included

    @property
    def is_error(self) -> bool:
        return self.status == ERROR

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


# ------------------------------------------------------------------ loading


def _start_column(trace: Trace):
    """A span's start as the database returns it fastest.

    psycopg parses a timestamptz in ~8 µs, a third of a 2,000-span page; an interval
    from the trace start costs a tenth of that. SQLite computes intervals in a Python
    function, slower than reading its own timestamps, so it returns started_at.
    Either way span_nodes_load subtracts the smallest value.
    """
    if connection.vendor == "postgresql":
        return ExpressionWrapper(
            F("started_at") - Value(trace.started_at, output_field=DateTimeField()),
            output_field=DurationField(),
        )
    return F("started_at")


def span_nodes_load(*, trace: Trace) -> list[Node]:
    """Every span of the trace as a Node, in start order, timed from the first span."""
    rows = list(
        span_list_for_trace(trace=trace)
        .annotate(start=_start_column(trace))
        .values_list(*WATERFALL_FIELDS)
    )
    if not rows:
        return []
    t0: datetime | timedelta = min(r[6] for r in rows)
    nodes = []
    for (
        span_id,
        parent_span_id,
        name,
        step,
        role,
        status,
        start,
        duration_ms,
        model,
        tool_name,
        input_tokens,
        output_tokens,
        cost_usd,
        cost_source,
        error_type,
    ) in rows:
        nodes.append(
            Node(
                span_id=span_id,
                parent_span_id=parent_span_id,
                name=name,
                step=step,
                role=role,
                status=status,
                start_ms=(start - t0).total_seconds() * 1000,
                duration_ms=duration_ms,
                model=model,
                tool_name=tool_name,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=cost_usd,
                cost_source=cost_source,
                error_type=error_type,
            )
        )
    return nodes


@dataclass(slots=True)
class SpanText:
    """What the storyline quotes from one span."""

    messages: Messages
    tool_arguments: str = ""
    tool_result: str = ""
    status_message: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)


def span_texts_load(*, trace: Trace, span_ids: list[str]) -> dict[str, SpanText]:
    """Messages and tool payloads of a few spans, in one query."""
    if not span_ids:
        return {}
    rows = (
        span_list_for_trace(trace=trace)
        .filter(span_id__in=span_ids)
        .values_list(
            "span_id", "attributes", "events", "tool_arguments", "tool_result", "status_message"
        )
    )
    out = {}
    for span_id, attributes, events, args, result, status_message in rows:
        attributes = attributes if isinstance(attributes, dict) else {}
        out[span_id] = SpanText(
            messages=extract_messages(attributes, events if isinstance(events, list) else []),
            tool_arguments=args,
            tool_result=result,
            status_message=status_message,
            attributes={k: v for k, v in attributes.items() if k.startswith("agentops.")},
        )
    return out


# ------------------------------------------------------------------ tree


def span_tree(nodes: list[Node]) -> list[Node]:
    """The spans in display order: each followed by its subtree, children by start time.

    Sets depth, parent_index and size (so a subtree is rows[i : i + size]) and marks
    orphans, spans whose parent never arrived; they are shown at the top level. A
    parent cycle (bad data) is broken the same way, so every span is shown once.
    """
    ordered = sorted(nodes, key=lambda n: (n.start_ms, n.span_id))
    by_id = {n.span_id: n for n in ordered}
    children: dict[str, list[Node]] = defaultdict(list)
    top: list[Node] = []
    for n in ordered:
        n.orphan = False
        p = n.parent_span_id
        if p and p != n.span_id and p in by_id:
            children[p].append(n)
        else:
            n.orphan = bool(p)
            top.append(n)

    out: list[Node] = []
    seen: set[str] = set()

    def walk(roots: list[Node]) -> None:
        # Iterative: a chain of thousands of nested spans must not hit the recursion limit.
        stack = [(n, 0, -1) for n in reversed(roots)]
        while stack:
            n, depth, parent_index = stack.pop()
            if n.span_id in seen:
                continue
            seen.add(n.span_id)
            n.depth, n.parent_index, n.size = depth, parent_index, 1
            index = len(out)
            out.append(n)
            for child in reversed(children.get(n.span_id, ())):
                stack.append((child, depth + 1, index))

    walk(top)
    if len(out) < len(ordered):
        for n in ordered:
            if n.span_id not in seen:
                n.orphan = True
                walk([n])
    for i in range(len(out) - 1, 0, -1):
        p = out[i].parent_index
        if p >= 0:
            out[p].size += out[i].size
    return out


def trace_span_total_ms(nodes: list[Node]) -> float:
    """Length of the time axis: from the first span's start to the last span's end."""
    return max((n.start_ms + n.duration_ms for n in nodes), default=0.0)


def span_cost_text(node: Node) -> str:
    if node.cost_source == UNPRICED:
        return "unpriced"
    if node.cost_usd is None:
        return ""
    return display.usd(node.cost_usd)


def waterfall_payload(tree: list[Node]) -> dict[str, Any]:
    """Compact rows for the page's script to draw (json_script), one list per span.

    Rows are positional lists rather than objects: a 2,000-span trace is ~40% smaller.
    """
    rows = []
    for n in tree:
        flags = (
            (FLAG_ORPHAN if n.orphan else 0)
            | (FLAG_ERROR if n.status == ERROR else 0)
            | (FLAG_UNPRICED if n.cost_source == UNPRICED else 0)
        )
        rows.append(
            [
                n.span_id,
                n.depth,
                n.parent_index,
                n.size,
                n.name,
                n.step,
                round(n.start_ms, 3),
                round(n.duration_ms, 3),
                n.model or n.tool_name,
                n.input_tokens + n.output_tokens,
                span_cost_text(n),
                flags,
                n.parent_span_id if n.orphan else "",
            ]
        )
    return {
        "fields": [
            "span_id",
            "depth",
            "parent",
            "size",
            "name",
            "step",
            "start_ms",
            "duration_ms",
            "detail",
            "tokens",
            "cost",
            "flags",
            "missing_parent",
        ],
        "total_ms": round(trace_span_total_ms(tree), 3),
        "rows": rows,
    }


# ------------------------------------------------------------------ storyline


@dataclass(slots=True)
class Beat:
    """One step of the storyline."""

    kind: str  # a StepRole value, or "gap" for the steps left out
    span_id: str = ""
    title: str = ""
    text: str = ""
    result: str = ""
    status: str = ""  # ok, error, unset; for final: the trace status
    note: str = ""  # secondary line: model, duration, decision
    tools: list[str] = field(default_factory=list)
    hidden: int = 0  # for a gap: how many steps it stands for
    count: int = 1  # consecutive calls of the same tool shown as one beat
    errors: int = 0


@dataclass(slots=True)
class Storyline:
    intent: Beat | None
    steps: list[Beat]
    final: Beat | None


MAX_STEPS = 10  # beats shown in full up to this many; beyond, the first and last few
HEAD_STEPS = 6
TAIL_STEPS = 3


def _clip(text: str, limit: int = PREVIEW) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_message(messages: list[dict[str, Any]], role: str | None = None) -> str:
    for m in messages:
        if (role is None or m.get("role") == role) and m.get("content"):
            return str(m["content"])
    return ""


def _last_message(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("content"):
            return str(m["content"])
    return ""


def _tool_calls(text: SpanText | None) -> list[str]:
    if text is None:
        return []
    return [c.get("name") or "?" for m in text.messages.output for c in m.get("tool_calls") or []]


def _chose_tools(text: SpanText | None) -> bool | None:
    """Whether a model call's recorded output asks for tools; None when nothing was recorded.

    Message content is off by default in OTel GenAI instrumentations, so finish reasons
    (always recorded) count too, and the caller falls back to the span structure.
    """
    if text is None:
        return None
    reasons = {r.lower() for r in text.messages.finish_reasons}
    if _tool_calls(text) or reasons & TOOL_FINISH_REASONS:
        return True
    if text.messages.output or reasons:
        return False
    return None


def _kind(n: Node) -> str:
    if n.role in STEP_ROLES:
        return n.role
    if n.step == LLM:
        return LLM
    if n.step in _TOOLISH:
        return TOOL
    if n.step in _GATES:
        return n.step
    return ""


def _tools_after(ordered: list[Node]) -> dict[str, list[Node]]:
    """For each model call, the tool calls that started after it and before the next one."""
    out: dict[str, list[Node]] = {}
    current: Node | None = None
    for n in ordered:
        kind = _kind(n)
        if kind == LLM or (n.step == LLM and kind == PLAN):
            current = n
            out[n.span_id] = []
        elif kind == TOOL and current is not None:
            out[current.span_id].append(n)
    return out


def _root(ordered: list[Node], root_span_id: str) -> Node | None:
    for n in ordered:
        if n.span_id == root_span_id:
            return n
    for n in ordered:
        if not n.parent_span_id:
            return n
    return ordered[0] if ordered else None


def _final_llm(llms: list[Node], texts: dict[str, SpanText], after: dict[str, list[Node]]):
    """The model call that gave the final answer: the last that stopped without tools."""
    for n in reversed(llms):
        t = texts.get(n.span_id)
        if t is None:
            continue
        reasons = {r.lower() for r in t.messages.finish_reasons}
        if reasons & STOP_FINISH_REASONS or _chose_tools(t) is False:
            return n
    if llms and not after.get(llms[-1].span_id):
        return llms[-1]  # nothing recorded, but no tool followed it
    return None


def _is_plan(n: Node, texts: dict[str, SpanText], after: dict[str, list[Node]]) -> bool:
    if n.role == PLAN:
        return True
    recorded = _chose_tools(texts.get(n.span_id))
    return recorded if recorded is not None else bool(after.get(n.span_id))


def _step_nodes(
    ordered: list[Node], texts: dict[str, SpanText], exclude: set[str]
) -> tuple[list[Node], dict[str, list[Node]]]:
    after = _tools_after(ordered)
    steps = []
    for n in ordered:
        if n.span_id in exclude:
            continue
        kind = _kind(n)
        if kind in _STEP_KINDS or (kind == LLM and _is_plan(n, texts, after)):
            steps.append(n)
    return steps, after


def _tool_label(n: Node) -> str:
    return n.tool_name or n.name


def _grouped(steps: list[Node]) -> list[list[Node]]:
    """Consecutive calls of the same tool (a retry loop, a batch) become one group."""
    groups: list[list[Node]] = []
    for n in steps:
        last = groups[-1][0] if groups else None
        if (
            last is not None
            and _kind(n) == TOOL
            and _kind(last) == TOOL
            and _tool_label(n) == _tool_label(last)
        ):
            groups[-1].append(n)
        else:
            groups.append([n])
    return groups


Groups = list[list[Node]]


def _shown(groups: Groups) -> tuple[Groups, list[Node], Groups]:
    """The first groups shown, the steps the gap between them stands for, the last groups."""
    if len(groups) <= MAX_STEPS:
        return groups, [], []
    hidden = [n for g in groups[HEAD_STEPS:-TAIL_STEPS] for n in g]
    return groups[:HEAD_STEPS], hidden, groups[-TAIL_STEPS:]


def storyline_span_ids(nodes: list[Node], *, root_span_id: str) -> list[str]:
    """Spans whose text the storyline may quote: at most ~30, whatever the trace size."""
    ordered = sorted(nodes, key=lambda n: (n.start_ms, n.span_id))
    ids: list[str] = []
    root = _root(ordered, root_span_id)
    if root:
        ids.append(root.span_id)
    llms = [n for n in ordered if n.step == LLM]
    ids += [n.span_id for n in llms[:1] + llms[-3:]]
    roled = [n for n in ordered if n.role in _INTENT_FINAL]
    ids += [n.span_id for n in roled[:2] + roled[-2:]]
    steps, _ = _step_nodes(ordered, {}, set())
    head, _, tail = _shown(_grouped(steps))
    for group in head + tail:
        ids.append(group[0].span_id)
        ids += [n.span_id for n in group if n.is_error][:1]
    return list(dict.fromkeys(ids))


def _step_beat(n: Node, texts: dict[str, SpanText], after: dict[str, list[Node]]) -> Beat:
    t = texts.get(n.span_id)
    kind = _kind(n)
    if kind == LLM:
        kind = PLAN
    beat = Beat(kind=kind, span_id=n.span_id, title=n.name, status=n.status)
    timing = display.duration(n.duration_ms)
    if kind == PLAN:
        beat.title = n.model or n.name
        beat.tools = _tool_calls(t) or [m.tool_name or m.name for m in after.get(n.span_id, [])]
        if t:
            beat.text = _clip(_last_message(t.messages.output))
        beat.note = timing
    elif kind in (TOOL, RESULT):
        beat.title = n.tool_name or n.name
        if t:
            args = t.tool_arguments or _first_message(t.messages.input)
            result = t.tool_result or _last_message(t.messages.output)
            beat.text = _clip(args)
            beat.result = _clip(t.status_message if n.is_error and not result else result)
        beat.note = timing
    elif kind in _GATE_ROLES:
        attrs = t.attributes if t else {}
        beat.title = str(attrs.get("agentops.policy.name") or n.name)
        decision = attrs.get("agentops.policy.decision")
        beat.note = str(decision) if decision else timing
        if t and t.status_message:
            beat.text = _clip(t.status_message)
    if n.is_error and not beat.result and t and t.status_message:
        beat.result = _clip(t.status_message)
    if n.is_error and not beat.result and n.error_type:
        beat.result = n.error_type
    return beat


def storyline_build(
    *, nodes: list[Node], texts: dict[str, SpanText], root_span_id: str, trace_status: str
) -> Storyline:
    """intent → plan → tool calls and their results → final state.

    A span's explicit role (agentops.step) wins over everything inferred. Otherwise the
    intent is the first user message of the root or the first model call; plans are
    model calls whose output asks for tools (or, when content was not recorded, that
    tool calls followed); the final answer is the last model call that stopped, or
    the root's output.
    """
    ordered = sorted(nodes, key=lambda n: (n.start_ms, n.span_id))
    root = _root(ordered, root_span_id)
    llms = [n for n in ordered if n.step == LLM and (not n.role or n.role == PLAN)]

    # ---- intent
    intent: Beat | None = None
    explicit = [n for n in ordered if n.role == INTENT]
    if explicit:
        n = explicit[0]
        t = texts.get(n.span_id)
        text = ""
        if t:
            text = (
                _first_message(t.messages.input, "user")
                or _first_message(t.messages.input)
                or t.tool_arguments
                or _last_message(t.messages.output)
            )
        intent = Beat(kind=INTENT, span_id=n.span_id, title=n.name, text=_clip(text, 600))
    else:
        for n in [x for x in (root, llms[0] if llms else None) if x is not None]:
            t = texts.get(n.span_id)
            text = _first_message(t.messages.input, "user") if t else ""
            if text:
                intent = Beat(kind=INTENT, span_id=n.span_id, title=n.name, text=_clip(text, 600))
                break
        if intent is None and root is not None:
            t = texts.get(root.span_id)
            text = _first_message(t.messages.input) if t else ""
            intent = Beat(kind=INTENT, span_id=root.span_id, title=root.name, text=_clip(text, 600))

    # ---- final
    final: Beat | None = None
    explicit = [n for n in ordered if n.role == FINAL]
    steps_exclude = {n.span_id for n in ordered if n.role in _INTENT_FINAL}
    after = _tools_after(ordered)
    if explicit:
        n = explicit[-1]
        t = texts.get(n.span_id)
        text = (_last_message(t.messages.output) or t.tool_result) if t else ""
        final = Beat(kind=FINAL, span_id=n.span_id, title=n.name, text=_clip(text, 600))
    else:
        n = _final_llm([x for x in llms if x.role != PLAN], texts, after)
        t = texts.get(n.span_id) if n else None
        text = _last_message(t.messages.output) if t else ""
        if not text and root is not None:
            rt = texts.get(root.span_id)
            root_text = _last_message(rt.messages.output) if rt else ""
            if root_text or n is None:
                n, text = root, root_text
        if n is not None:
            final = Beat(
                kind=FINAL, span_id=n.span_id, title=n.model or n.name, text=_clip(text, 600)
            )
            if n.step == LLM:
                steps_exclude.add(n.span_id)
    if final is not None:
        final.status = trace_status

    # ---- the steps between
    steps, after = _step_nodes(ordered, texts, steps_exclude)
    head, hidden, tail = _shown(_grouped(steps))
    beats = [_group_beat(g, texts, after) for g in head]
    if hidden:
        errors = sum(1 for n in hidden if n.is_error)
        title = f"{len(hidden):,} more steps" + (f", {errors:,} with errors" if errors else "")
        beats.append(Beat(kind="gap", hidden=len(hidden), errors=errors, title=title))
    beats += [_group_beat(g, texts, after) for g in tail]
    return Storyline(intent=intent, steps=beats, final=final)


def _group_beat(group: list[Node], texts: dict[str, SpanText], after) -> Beat:
    beat = _step_beat(group[0], texts, after)
    if len(group) == 1:
        beat.errors = int(group[0].is_error)
        return beat
    failed = [n for n in group if n.is_error]
    beat.count, beat.errors = len(group), len(failed)
    beat.note = f"\u00d7{len(group)} · {display.duration(sum(n.duration_ms for n in group))}"
    ok = len(group) - len(failed)
    if failed:
        first = _step_beat(failed[0], texts, after)
        beat.status = SpanStatus.ERROR
        beat.result = f"{len(failed)} failed, {ok} ok" + (
            f" · {first.result}" if first.result else ""
        )
    else:
        beat.result = f"all {len(group)} ok"
    return beat


# ------------------------------------------------------------------ the whole page


@dataclass(slots=True)
class Timeline:
    tree: list[Node]
    payload: dict[str, Any]
    storyline: Storyline
    orphan_count: int


def timeline_build(*, trace: Trace) -> Timeline:
    """Everything the timeline page shows, in two queries plus one per badge provider."""
    nodes = span_nodes_load(trace=trace)
    tree = span_tree(nodes)
    payload = waterfall_payload(tree)
    payload["badges"] = {
        span_id: [b.row() for b in badges] for span_id, badges in span_badges(trace=trace).items()
    }
    ids = storyline_span_ids(nodes, root_span_id=trace.root_span_id)
    texts = span_texts_load(trace=trace, span_ids=ids)
    story = storyline_build(
        nodes=nodes, texts=texts, root_span_id=trace.root_span_id, trace_status=trace.status
    )
    return Timeline(
        tree=tree,
        payload=payload,
        storyline=story,
        orphan_count=sum(1 for n in tree if n.orphan),
    )


# ------------------------------------------------------------------ one span's details


def clip_text(text: str, limit: int = MAX_TEXT) -> tuple[str, int]:
    """The text cut to `limit` characters, and how many were cut."""
    if len(text) <= limit:
        return text, 0
    return text[:limit], len(text) - limit


def pretty(value: Any) -> str:
    """JSON (or JSON text) indented for reading; other text as it is."""
    if isinstance(value, str):
        s = value.strip()
        if s[:1] in ("{", "[") and s[-1:] in ("}", "]"):
            try:
                value = json.loads(s)
            except ValueError:
                return value
        else:
            return value
    try:
        return _dumps(value, "")
    except (TypeError, ValueError, RecursionError):
        return str(value)


INLINE_WIDTH = 72


def _dumps(value: Any, pad: str) -> str:
    """Indented JSON that keeps short arrays and objects of scalars on one line."""
    flat = json.dumps(value, ensure_ascii=False, default=str)
    if not isinstance(value, dict | list) or not value:
        return flat
    scalars = all(
        not isinstance(v, dict | list)
        for v in (value.values() if isinstance(value, dict) else value)
    )
    # The top-level object is always opened up: its keys are what one reads first.
    top_object = not pad and isinstance(value, dict)
    if scalars and not top_object and len(flat) + len(pad) <= INLINE_WIDTH:
        return flat
    inner = pad + "  "
    if isinstance(value, dict):
        items = [
            f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_dumps(v, inner)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    items = [inner + _dumps(v, inner) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + pad + "]"


@dataclass(slots=True)
class Text:
    """A value prepared for a <pre>: pretty-printed, clipped, with what was left out."""

    text: str
    cut: int = 0
    is_json: bool = False

    @classmethod
    def of(cls, value: Any) -> Text:
        p = pretty(value)
        is_json = not isinstance(value, str) or p is not value
        text, cut = clip_text(p)
        return cls(text=text, cut=cut, is_json=is_json)


@dataclass(slots=True)
class MessageView:
    role: str
    content: Text
    tool_calls: list[dict[str, Any]]  # {"id", "name", "arguments": Text}


@dataclass(slots=True)
class EventView:
    name: str
    offset_ms: float | None
    attributes: list[tuple[str, Text]]


@dataclass(slots=True)
class ExceptionView:
    type: str
    message: str
    stacktrace: Text | None


@dataclass(slots=True)
class SpanDetail:
    span: Span
    start_offset_ms: float
    system: Text | None
    input: list[MessageView]
    output: list[MessageView]
    finish_reasons: list[str]
    tool_arguments: Text | None
    tool_result: Text | None
    cost_text: str
    cost_source_label: str
    attributes: list[tuple[str, Text]]
    resource: list[tuple[str, Text]]
    scope: list[tuple[str, Text]]
    events: list[EventView]
    links: list[dict[str, Any]]
    exception: ExceptionView | None
    badges: list[SpanBadge] = field(default_factory=list)


def _messages_view(messages: list[dict[str, Any]]) -> list[MessageView]:
    out = []
    for m in messages:
        calls = [
            {
                "id": c.get("id", ""),
                "name": c.get("name", ""),
                "arguments": Text.of(c.get("arguments", "")),
            }
            for c in m.get("tool_calls") or []
        ]
        out.append(
            MessageView(
                role=m.get("role", ""), content=Text.of(m.get("content", "")), tool_calls=calls
            )
        )
    return out


def _pairs(d: Any) -> list[tuple[str, Text]]:
    if not isinstance(d, dict):
        return []
    return [(str(k), Text.of(v)) for k, v in sorted(d.items(), key=lambda kv: str(kv[0]))]


def _cost_source_label(source: str) -> str:
    if not source:
        return ""
    try:
        return CostSource(source).label
    except ValueError:
        return source


def span_get_for_trace(*, trace: Trace, span_id: str) -> Span | None:
    return span_list_for_trace(trace=trace).filter(span_id=span_id.lower()).first()


def span_detail(*, span: Span, trace: Trace) -> SpanDetail:
    """Everything the side panel shows about one span."""
    attributes = span.attributes if isinstance(span.attributes, dict) else {}
    events = span.events if isinstance(span.events, list) else []
    messages = extract_messages(attributes, events)
    span_start_ns = int(span.started_at.timestamp()) * 10**9 + span.started_at.microsecond * 1000

    exception = None
    event_views = []
    for ev in events:
        if not isinstance(ev, dict):
            continue
        ea = ev.get("attributes") if isinstance(ev.get("attributes"), dict) else {}
        t = ev.get("time_unix_nano")
        offset = (t - span_start_ns) / 1e6 if isinstance(t, int) and t else None
        if ev.get("name") == "exception" and exception is None:
            trace_text = ea.get("exception.stacktrace")
            exception = ExceptionView(
                type=str(ea.get("exception.type") or span.error_type or ""),
                message=str(ea.get("exception.message") or span.status_message or ""),
                stacktrace=Text.of(str(trace_text)) if trace_text else None,
            )
        event_views.append(
            EventView(name=str(ev.get("name", "")), offset_ms=offset, attributes=_pairs(ea))
        )
    if (
        exception is None
        and span.status == SpanStatus.ERROR
        and (span.error_type or span.status_message)
    ):
        exception = ExceptionView(
            type=span.error_type, message=span.status_message, stacktrace=None
        )

    if span.cost_source == CostSource.UNPRICED:
        cost_text = "unpriced"
    else:
        cost_text = display.usd(span.cost_usd) if span.cost_usd is not None else "—"
    return SpanDetail(
        span=span,
        start_offset_ms=(span.started_at - trace.started_at).total_seconds() * 1000,
        system=Text.of(messages.system) if messages.system else None,
        input=_messages_view(messages.input),
        output=_messages_view(messages.output),
        finish_reasons=messages.finish_reasons,
        tool_arguments=Text.of(span.tool_arguments) if span.tool_arguments else None,
        tool_result=Text.of(span.tool_result) if span.tool_result else None,
        cost_text=cost_text,
        cost_source_label=_cost_source_label(span.cost_source),
        attributes=_pairs(attributes),
        resource=_pairs(span.resource),
        scope=_pairs(span.scope),
        events=event_views,
        links=[lk for lk in (span.links or []) if isinstance(lk, dict)],
        exception=exception,
        badges=span_badges(trace=trace, span_ids=[span.span_id]).get(span.span_id, []),
    )


# ------------------------------------------------------------------ sessions


@dataclass(slots=True)
class SessionTotals:
    trace_count: int = 0
    span_count: int = 0
    error_count: int = 0
    llm_call_count: int = 0
    tool_call_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced_count: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def cost_text(self) -> str:
        return display.cost_with_unpriced(self.cost_usd, self.unpriced_count)

    @property
    def duration_ms(self) -> float:
        if self.started_at is None or self.ended_at is None:
            return 0.0
        return (self.ended_at - self.started_at).total_seconds() * 1000


def session_trace_list(*, project: Project, session_id: str) -> QuerySet[Trace]:
    """The traces of one session of a project, oldest first (the order it happened in)."""
    return (
        Trace.objects.filter(project=project, session_id=session_id)
        .select_related("project")
        .order_by("started_at", "id")
    )


def session_totals(*, project: Project, session_id: str) -> SessionTotals:
    agg = Trace.objects.filter(project=project, session_id=session_id).aggregate(
        trace_count=Count("id"),
        span_count=Sum("span_count"),
        error_count=Sum("error_count"),
        llm_call_count=Sum("llm_call_count"),
        tool_call_count=Sum("tool_call_count"),
        input_tokens=Sum("input_tokens"),
        output_tokens=Sum("output_tokens"),
        cost_usd=Sum("cost_usd"),
        unpriced_count=Sum("unpriced_count"),
        started_at=Min("started_at"),
        ended_at=Max("ended_at"),
    )
    defaults = SessionTotals()
    return SessionTotals(
        **{k: (v if v is not None else getattr(defaults, k)) for k, v in agg.items()}
    )
