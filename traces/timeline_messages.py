"""The input and output messages of a span, for display (the timeline and span detail).

extract_messages(attributes: dict, events: list[dict]) -> Messages
    Normalised to [{"role": str, "content": str, "tool_calls": [...]}, ...], plus the
    system instructions and finish reasons, from whichever shape the span carries
    (docs/semconv-mapping.md §9). Never raises on odd payloads. Not on the ingest path:
    called only for the spans a page shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from traces.conventions.values import text as _text


@dataclass(slots=True)
class Messages:
    input: list[dict[str, Any]] = field(default_factory=list)
    output: list[dict[str, Any]] = field(default_factory=list)
    system: str = ""
    finish_reasons: list[str] = field(default_factory=list)


def extract_messages(attributes: dict[str, Any], events: list[dict[str, Any]]) -> Messages:
    """Input/output messages of a span for display, from whichever shape it carries."""
    try:
        return _extract(
            attributes if isinstance(attributes, dict) else {},
            events if isinstance(events, list) else [],
        )
    except (RecursionError, MemoryError):  # a pathologically nested payload
        return Messages()


def _loads(v: Any) -> Any:
    """A JSON string → its value; anything else (or invalid JSON) unchanged."""
    if type(v) is str and v[:1] in ("[", "{"):
        try:
            return orjson.loads(v)
        except orjson.JSONDecodeError:
            return v
    return v


_MEDIA_PARTS = frozenset({"blob", "file", "uri", "image", "image_url", "input_audio", "audio"})


def _parts_text(parts: list[Any], calls: list[dict[str, Any]]) -> str:
    """OTel message parts / OpenAI or Anthropic content blocks → text; tool calls to `calls`."""
    texts = []
    for p in parts:
        if type(p) is str:
            texts.append(p)
            continue
        if type(p) is not dict:
            continue
        ptype = p.get("type")
        if ptype in ("tool_call", "tool_use", "function_call"):
            calls.append(
                _tool_call(
                    p.get("id") or p.get("call_id"),
                    p.get("name"),
                    p.get("arguments", p.get("input")),
                )
            )
        elif ptype in ("tool_call_response", "tool_result", "function_call_output"):
            resp = p.get("response", p.get("content", p.get("output")))
            texts.append(_content(resp, calls) if isinstance(resp, list) else _text(resp))
        elif ptype in ("reasoning", "thinking"):
            continue
        elif ptype in _MEDIA_PARTS:  # base64 or references: not text to show
            texts.append(f"[{ptype}]")
        else:
            t = p.get("content", p.get("text"))
            if t is not None:
                texts.append(_text(t))
    return "\n".join(texts)


def _content(v: Any, calls: list[dict[str, Any]]) -> str:
    if type(v) is str:
        return v
    if isinstance(v, list):
        return _parts_text(v, calls)
    return _text(v)


def _tool_call(cid: Any, name: Any, args: Any) -> dict[str, Any]:
    return {"id": _text(cid), "name": _text(name), "arguments": _text(args)}


def _openai_tool_calls(v: Any, calls: list[dict[str, Any]]) -> None:
    v = _loads(v)
    if not isinstance(v, list):
        return
    for tc in v:
        if type(tc) is not dict:
            continue
        fn = tc.get("function")
        if type(fn) is dict:
            calls.append(_tool_call(tc.get("id"), fn.get("name"), fn.get("arguments")))
        else:
            calls.append(_tool_call(tc.get("id"), tc.get("name"), tc.get("arguments")))


def _message(m: Any, default_role: str) -> dict[str, Any] | None:
    """One message of any known shape → {"role", "content", "tool_calls"}."""
    if type(m) is not dict:
        if m is None or m == "":
            return None
        return {"role": default_role, "content": _text(m), "tool_calls": []}
    calls: list[dict[str, Any]] = []
    role = m.get("role")
    if "parts" in m:  # OTel GenAI
        parts = m.get("parts")
        content = _parts_text(parts, calls) if isinstance(parts, list) else _text(parts)
    else:  # OpenAI / Anthropic / deprecated OTel event bodies
        content = _content(m.get("content", m.get("text")), calls)
        _openai_tool_calls(m.get("tool_calls"), calls)
    return {
        "role": role if type(role) is str and role else default_role,
        "content": content,
        "tool_calls": calls,
    }


def _is_message(m: Any) -> bool:
    return type(m) is dict and ("role" in m or "parts" in m or "content" in m)


def _as_text_message(v: Any, role: str) -> list[dict[str, Any]]:
    text = _text(v)
    return [{"role": role, "content": text, "tool_calls": []}] if text else []


def _messages(v: Any, default_role: str, finish: list[str] | None = None) -> list[dict]:
    """A message list, a single message, an OpenAI request/response body, or any other
    value, which becomes one message holding the value's text as it was sent."""
    parsed = _loads(v)
    if type(parsed) is dict:
        if isinstance(parsed.get("messages"), list):  # request bodies (OpenInference)
            parsed = parsed["messages"]
        elif isinstance(parsed.get("choices"), list):  # OpenAI response bodies
            out = []
            for c in parsed["choices"]:
                if type(c) is dict:
                    if finish is not None and type(c.get("finish_reason")) is str:
                        finish.append(c["finish_reason"])
                    msg = _message(c.get("message", c.get("text")), default_role)
                    if msg:
                        out.append(msg)
            return out
        elif _is_message(parsed):
            parsed = [parsed]
    if isinstance(parsed, list) and any(_is_message(m) for m in parsed):
        out = []
        for m in parsed:
            if finish is not None and type(m) is dict and type(m.get("finish_reason")) is str:
                finish.append(m["finish_reason"])
            msg = _message(m, default_role)
            if msg:
                out.append(msg)
        return out
    return _as_text_message(v, default_role)


def _system_text(v: Any) -> str:
    v = _loads(v)
    if isinstance(v, list):  # gen_ai.system_instructions: a list of parts
        return _parts_text(v, [])
    return _text(v)


def _indexed(attributes: dict[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    """`prefix.N.rest` attributes → {N: {rest: value}}."""
    out: dict[int, dict[str, Any]] = {}
    plen = len(prefix)
    for k, v in attributes.items():
        if type(k) is str and k.startswith(prefix):
            num, _, rest = k[plen:].partition(".")
            if num.isdigit() and rest:
                out.setdefault(int(num), {})[rest] = v
    return out


def _flat_tool_calls(
    fields: dict[str, Any], prefix: str, id_key: str, name_key: str, args_key: str
):
    calls = []
    for _, tc in sorted(_indexed(fields, prefix).items()):
        calls.append(_tool_call(tc.get(id_key), tc.get(name_key), tc.get(args_key)))
    return calls


def _openinference(attributes: dict[str, Any], prefix: str, role: str) -> list[dict]:
    out = []
    for _, f in sorted(_indexed(attributes, prefix).items()):
        content = f.get("message.content")
        if content is None:  # multimodal: message.contents.N.message_content.text
            texts = [
                _text(c.get("message_content.text"))
                for _, c in sorted(_indexed(f, "message.contents.").items())
                if c.get("message_content.text") is not None
            ]
            content = "\n".join(texts)
        r = f.get("message.role")
        out.append(
            {
                "role": r if type(r) is str and r else role,
                "content": _text(content),
                "tool_calls": _flat_tool_calls(
                    f,
                    "message.tool_calls.",
                    "tool_call.id",
                    "tool_call.function.name",
                    "tool_call.function.arguments",
                ),
            }
        )
    return out


def _legacy(attributes: dict[str, Any], prefix: str, role: str, finish: list[str]) -> list[dict]:
    out = []
    for _, f in sorted(_indexed(attributes, prefix).items()):
        if type(f.get("finish_reason")) is str:
            finish.append(f["finish_reason"])
        calls = _flat_tool_calls(f, "tool_calls.", "id", "name", "arguments")
        content = f.get("content")
        if not calls and type(content) is str and content[:1] == "[":
            inner: list[dict[str, Any]] = []
            text = _content(_loads(content), inner)
            if inner or text != content:
                content, calls = text, inner
        r = f.get("role")
        out.append(
            {
                "role": r if type(r) is str and r else role,
                "content": _text(content),
                "tool_calls": calls,
            }
        )
    return out


_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def _event_message(ea: dict[str, Any], role: str) -> dict[str, Any]:
    calls: list[dict[str, Any]] = []
    content = _loads(ea.get("content"))
    text = _parts_text(content, calls) if isinstance(content, list) else _text(content)
    _openai_tool_calls(ea.get("tool_calls"), calls)
    r = ea.get("role")
    return {"role": r if type(r) is str and r else role, "content": text, "tool_calls": calls}


def _extract(a: dict[str, Any], events: list[Any]) -> Messages:
    m = Messages()
    finish: list[str] = []

    # 1. Current OTel GenAI attributes.
    if a.get("gen_ai.input.messages") is not None:
        m.input = _messages(a["gen_ai.input.messages"], "user")
    if a.get("gen_ai.output.messages") is not None:
        m.output = _messages(a["gen_ai.output.messages"], "assistant", finish)
    if a.get("gen_ai.system_instructions") is not None:
        m.system = _system_text(a["gen_ai.system_instructions"])

    # 2. Events: the current inference details event, or the deprecated per-message ones.
    ev_in: list[dict[str, Any]] = []
    ev_out: list[dict[str, Any]] = []
    for ev in events:
        if type(ev) is not dict:
            continue
        name = ev.get("name")
        ea = ev.get("attributes")
        if type(ea) is not dict:
            continue
        if name == "gen_ai.client.inference.operation.details":
            if not m.input and ea.get("gen_ai.input.messages") is not None:
                m.input = _messages(ea["gen_ai.input.messages"], "user")
            if not m.output and ea.get("gen_ai.output.messages") is not None:
                m.output = _messages(ea["gen_ai.output.messages"], "assistant", finish)
            if not m.system and ea.get("gen_ai.system_instructions") is not None:
                m.system = _system_text(ea["gen_ai.system_instructions"])
        elif name in _EVENT_ROLES:
            ev_in.append(_event_message(ea, _EVENT_ROLES[name]))
        elif name == "gen_ai.choice":
            if type(ea.get("finish_reason")) is str:
                finish.append(ea["finish_reason"])
            msg = _loads(ea.get("message"))
            if type(msg) is dict:
                msg = _message(msg, "assistant")
                if msg:
                    ev_out.append(msg)
            else:
                ev_out.append(_event_message(ea, "assistant"))
    if not m.input and ev_in:
        m.input = ev_in
    if not m.output and ev_out:
        m.output = ev_out

    # 3. Flattened and vendor attributes, only where nothing better was found.
    if not m.input or not m.output:
        if _has_prefix(a, "llm.input_messages.") or _has_prefix(a, "llm.output_messages."):
            if not m.input:
                m.input = _openinference(a, "llm.input_messages.", "user")
            if not m.output:
                m.output = _openinference(a, "llm.output_messages.", "assistant")
        if not m.input:
            m.input = _legacy(a, "gen_ai.prompt.", "user", [])
        if not m.output:
            m.output = _legacy(a, "gen_ai.completion.", "assistant", finish)
        for in_key, out_key in (
            ("gen_ai.prompt", "gen_ai.completion"),
            ("input.value", "output.value"),
            ("traceloop.entity.input", "traceloop.entity.output"),
            ("langfuse.observation.input", "langfuse.observation.output"),
            ("langfuse.trace.input", "langfuse.trace.output"),
        ):
            if not m.input and a.get(in_key) not in (None, ""):
                m.input = _messages(a[in_key], "user")
            if not m.output and a.get(out_key) not in (None, ""):
                m.output = _messages(a[out_key], "assistant", finish)

    # System instructions sent as messages (OpenAI shape, deprecated events) are moved
    # out of the input; OpenLIT sends them both ways, so a copy is not repeated.
    systems = [x["content"] for x in m.input if x["role"] in ("system", "developer")]
    if systems:
        m.input = [x for x in m.input if x["role"] not in ("system", "developer")]
        extra = [t for t in systems if t and t not in m.system]
        if extra:
            m.system = "\n".join([m.system, *extra] if m.system else extra)

    reasons = a.get("gen_ai.response.finish_reasons")
    if reasons is None:
        reasons = a.get("llm.finish_reason")  # OpenInference
    reasons = _loads(reasons)  # Logfire sends the list as a JSON string
    if isinstance(reasons, list) and reasons:
        m.finish_reasons = [_text(r) for r in reasons]
    elif type(reasons) is str and reasons:
        m.finish_reasons = [reasons]
    else:
        m.finish_reasons = finish
    return m


def _has_prefix(a: dict[str, Any], prefix: str) -> bool:
    return any(type(k) is str and k.startswith(prefix) for k in a)
