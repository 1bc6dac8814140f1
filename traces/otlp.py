"""OTLP/HTTP trace bodies → plain Python spans.

Both encodings end in the same `RawSpan` records so the rest of the pipeline does
not care which one a client used:

- protobuf (`application/x-protobuf`): decoded with the `opentelemetry-proto`
  messages (upb, C speed);
- OTLP/JSON (`application/json`): parsed with orjson and walked directly. The
  protobuf JSON mapper cannot read OTLP/JSON as exporters send it (ids are hex, not
  base64, int64 may come as a number or a string), and walking the dicts is faster.

Nothing here touches the database. Errors raise `OTLPError` with the HTTP status to
answer and a message that says what is wrong.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class OTLPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class RawSpan:
    """One span as the client sent it, ids as lowercase hex ('' when absent)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    links: list[dict[str, Any]]
    status_code: int
    status_message: str
    resource: dict[str, Any]
    scope: dict[str, Any]
    flags: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    # Why the span cannot be stored (a malformed id), found while decoding; the ingest
    # step rejects it alone and reports the reason.
    invalid: str | None = None


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` → `application/json`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def decompress(body: bytes, encoding: str | None, *, limit: int) -> bytes:
    """Undo Content-Encoding, refusing to inflate beyond `limit` bytes (gzip bombs)."""
    encoding = (encoding or "").strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise OTLPError(413, f"Request body is larger than the {limit}-byte limit.")
        return body
    if encoding not in ("gzip", "deflate"):
        raise OTLPError(
            415, f"Content-Encoding {encoding!r} is not supported; use gzip or no encoding."
        )
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise OTLPError(
                413, f"Decompressed request body is larger than the {limit}-byte limit."
            )
        if not inflater.eof:
            raise OTLPError(400, f"The {encoding} body is truncated.")
    except zlib.error as exc:
        raise OTLPError(400, f"The body is not valid {encoding}: {exc}.") from None
    return out


# ---------------------------------------------------------------- limits
#
# What one request may carry, applied while decoding so that a hostile body costs no
# more than a legitimate one of the same size: only the first N attributes, events and
# links are ever turned into Python objects, long strings are cut before they are
# copied anywhere else, and nested values stop at a fixed depth (which also keeps every
# stored JSON value far inside orjson's serialisation depth of 254).

TRUNCATED = "…[truncated]"
# NUL cannot be stored by PostgreSQL (text or jsonb, even escaped); U+FFFD is what a
# decoder puts in place of what it cannot represent.
NUL = "\x00"
REPLACEMENT = "\ufffd"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1
MAX_SPAN_KIND = 5  # SPAN_KIND_CONSUMER
MAX_STATUS_CODE = 2  # STATUS_CODE_ERROR


@dataclass(slots=True)
class Limits:
    """Per-request bounds (settings `OTLP_MAX_*`; README "Limits"). Decoding works on a
    copy of its own (`nested_left` counts down)."""

    spans: int = 10_000
    attributes: int = 128  # per span, resource and scope (the OTel SDK's default)
    events: int = 128
    links: int = 128
    event_attributes: int = 128
    link_attributes: int = 128
    value_length: int = 65_536  # characters of one string value or key
    depth: int = 16  # nested array/kvlist levels inside one attribute value
    # Values inside arrays and kvlists, all spans of the request together: neither has
    # a count limit of its own (an embedding vector is one array of 1,536 floats), and
    # millions of tiny nested values are the most Python objects a body can ask for.
    nested_values: int = 100_000
    nested_left: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.nested_left = self.nested_values

    @classmethod
    def from_settings(cls) -> Limits:
        from django.conf import settings

        return cls(
            spans=settings.OTLP_MAX_SPANS_PER_REQUEST,
            attributes=settings.OTLP_MAX_ATTRIBUTES_PER_SPAN,
            events=settings.OTLP_MAX_EVENTS_PER_SPAN,
            links=settings.OTLP_MAX_LINKS_PER_SPAN,
            event_attributes=settings.OTLP_MAX_ATTRIBUTES_PER_EVENT,
            link_attributes=settings.OTLP_MAX_ATTRIBUTES_PER_LINK,
            value_length=settings.OTLP_MAX_VALUE_LENGTH,
            depth=settings.OTLP_MAX_VALUE_DEPTH,
            nested_values=settings.OTLP_MAX_NESTED_VALUES_PER_REQUEST,
        )


class SpanBatch(list):
    """The decoded spans, plus what the limits took out of the request as a whole.

    `over_limit`: spans beyond `Limits.spans`, not decoded (reported as rejected);
    `limited`: {what: count} of attributes, events, links dropped, values truncated or
    cut at the depth limit, and field values out of range (reported in the message).
    Each span's own share is in its `dropped` dict as well."""

    over_limit: int = 0
    limited: dict[str, int]
    limits: Limits

    def __init__(self, limits: Limits) -> None:
        super().__init__()
        self.limited = {}
        self.limits = limits


def _note(counts: dict[str, int], what: str, n: int = 1) -> None:
    counts[what] = counts.get(what, 0) + n


def _clean(s: str, limits: Limits, dropped: dict[str, int]) -> str:
    """The slow path of a string: cut to the length limit, NUL replaced."""
    if len(s) > limits.value_length:
        s = s[: limits.value_length] + TRUNCATED
        _note(dropped, "truncated")
    if NUL in s:
        s = s.replace(NUL, REPLACEMENT)
    return s


def _text_field(s: str, limits: Limits, dropped: dict[str, int]) -> str:
    """Names, messages and other single strings of a span (not on the per-attribute path)."""
    if NUL in s or len(s) > limits.value_length:
        return _clean(s, limits, dropped)
    return s


def _deep_marker(limits: Limits, dropped: dict[str, int]) -> str:
    _note(dropped, "depth")
    return f"[nested deeper than {limits.depth} levels]"


def _take_nested(items: Any, limits: Limits, dropped: dict[str, int]) -> Any:
    """The items of an array or kvlist that the request's nested-value budget allows."""
    n = len(items)
    if n > limits.nested_left:
        _note(dropped, "nested", n - limits.nested_left)
        items = items[: limits.nested_left]
        n = limits.nested_left
    limits.nested_left -= n
    return items


def _merge(into: dict[str, int], dropped: dict[str, int]) -> None:
    for what, n in dropped.items():
        into[what] = into.get(what, 0) + n


# ---------------------------------------------------------------- protobuf


def _any_value_pb(v: Any, limits: Limits, dropped: dict[str, int], depth: int) -> Any:
    which = v.WhichOneof("value")
    if which == "string_value":
        s = v.string_value
        return _clean(s, limits, dropped) if NUL in s or len(s) > limits.value_length else s
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value" or which == "kvlist_value":
        if depth >= limits.depth:
            return _deep_marker(limits, dropped)
        items = v.array_value.values if which == "array_value" else v.kvlist_value.values
        items = _take_nested(items, limits, dropped)
        if which == "array_value":
            return [_any_value_pb(x, limits, dropped, depth + 1) for x in items]
        return _attrs_pb(items, limits, dropped, None, depth + 1)
    if which == "bytes_value":
        raw = v.bytes_value
        if len(raw) * 4 // 3 > limits.value_length:
            _note(dropped, "truncated")
            return base64.b64encode(raw[: limits.value_length * 3 // 4]).decode() + TRUNCATED
        return base64.b64encode(raw).decode()
    return None


def _attrs_pb(
    kvs: Any, limits: Limits, dropped: dict[str, int], limit: int | None, depth: int = 0
) -> dict[str, Any]:
    """KeyValues → dict. `limit` bounds a span's, event's or link's attributes (the
    dropped ones are counted as `what`); nested kvlists are bounded by the body size."""
    if limit is not None and len(kvs) > limit:
        _note(dropped, "attributes", len(kvs) - limit)
        kvs = kvs[:limit]
    out = {}
    maxlen = limits.value_length
    for kv in kvs:
        key = kv.key
        if NUL in key or len(key) > maxlen:
            key = _clean(key, limits, dropped)
        v = kv.value
        # The common case, a short clean string, takes no other branch.
        if v.WhichOneof("value") == "string_value":
            s = v.string_value
            if NUL in s or len(s) > maxlen:
                s = _clean(s, limits, dropped)
            out[key] = s
        else:
            out[key] = _any_value_pb(v, limits, dropped, depth)
    return out


def _pb_id(value: bytes) -> str:
    # A link's id is only shown; an overlong one is cut, not trusted.
    return value[:16].hex()


def _pb_event(e: Any, limits: Limits, dropped: dict[str, int]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    out = {
        "name": _text_field(e.name, limits, dropped),
        "time_unix_nano": e.time_unix_nano,
        "attributes": _attrs_pb(e.attributes, limits, counts, limits.event_attributes),
    }
    _merge_sub(dropped, counts, "event_attributes")
    return out


def _pb_link(link: Any, limits: Limits, dropped: dict[str, int]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    out = {
        "trace_id": _pb_id(link.trace_id),
        "span_id": _pb_id(link.span_id),
        "attributes": _attrs_pb(link.attributes, limits, counts, limits.link_attributes),
    }
    _merge_sub(dropped, counts, "link_attributes")
    return out


def _merge_sub(dropped: dict[str, int], counts: dict[str, int], attributes_as: str) -> None:
    """An event's or link's counts into its span's, its dropped attributes renamed."""
    for what, n in counts.items():
        _note(dropped, attributes_as if what == "attributes" else what, n)


def decode_protobuf(body: bytes, limits: Limits | None = None) -> SpanBatch:
    limits = replace(limits or Limits.from_settings())
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        hint = (
            " (values are nested too deep for the protobuf parser)" if "Depth" in str(exc) else ""
        )
        raise OTLPError(
            400, f"The body is not a valid protobuf ExportTraceServiceRequest{hint}: {exc}"
        ) from None
    batch = SpanBatch(limits)
    limited = batch.limited
    for rs in request.resource_spans:
        if len(batch) >= limits.spans:
            batch.over_limit += sum(len(ss.spans) for ss in rs.scope_spans)
            continue
        shared: dict[str, int] = {}  # resource and scope: counted once, not per span
        resource = _attrs_pb(rs.resource.attributes, limits, shared, limits.attributes)
        for ss in rs.scope_spans:
            room = limits.spans - len(batch)
            if room <= 0:
                batch.over_limit += len(ss.spans)
                continue
            scope = {
                "name": _text_field(ss.scope.name, limits, shared),
                "version": _text_field(ss.scope.version, limits, shared),
            }
            if ss.scope.attributes:
                scope["attributes"] = _attrs_pb(
                    ss.scope.attributes, limits, shared, limits.attributes
                )
            scope_spans = ss.spans
            if len(scope_spans) > room:
                batch.over_limit += len(scope_spans) - room
                scope_spans = scope_spans[:room]
            for s in scope_spans:
                dropped: dict[str, int] = {}
                attributes = _attrs_pb(s.attributes, limits, dropped, limits.attributes)
                events = s.events
                if events:
                    if len(events) > limits.events:
                        _note(dropped, "events", len(events) - limits.events)
                        events = events[: limits.events]
                    events = [_pb_event(e, limits, dropped) for e in events]
                else:
                    events = []
                links = s.links
                if links:
                    if len(links) > limits.links:
                        _note(dropped, "links", len(links) - limits.links)
                        links = links[: limits.links]
                    links = [_pb_link(li, limits, dropped) for li in links]
                else:
                    links = []
                name = s.name
                if NUL in name or len(name) > limits.value_length:
                    name = _clean(name, limits, dropped)
                status = s.status
                message = status.message
                if message:
                    message = _text_field(message, limits, dropped)
                kind = s.kind
                if not 0 <= kind <= MAX_SPAN_KIND:
                    _note(dropped, "kind")
                    kind = 0
                code = status.code
                if not 0 <= code <= MAX_STATUS_CODE:
                    _note(dropped, "status.code")
                    code = 0
                if dropped:
                    _merge(limited, dropped)
                # What the client itself dropped is part of the span's record too.
                if s.dropped_attributes_count:
                    _note(dropped, "attributes", s.dropped_attributes_count)
                if s.dropped_events_count:
                    _note(dropped, "events", s.dropped_events_count)
                if s.dropped_links_count:
                    _note(dropped, "links", s.dropped_links_count)
                batch.append(
                    RawSpan(
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        name=name,
                        kind=kind,
                        start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano,
                        attributes=attributes,
                        events=events,
                        links=links,
                        status_code=code,
                        status_message=message,
                        resource=resource,
                        scope=scope,
                        flags=s.flags,
                        dropped=dropped,
                    )
                )
        if shared:
            _merge(limited, shared)
    return batch


# ---------------------------------------------------------------- OTLP/JSON


def _as_int(value: Any, where: str) -> int:
    """int64 fields: the spec says string, the Node exporter sends numbers; accept both."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise OTLPError(400, f"{where} must be an integer, not a boolean.")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and len(value) <= 64:
        try:
            return int(value)
        except ValueError:
            pass
    raise OTLPError(
        400, f"{where} must be an integer (number or decimal string), got {_show(value)}."
    )


def _show(value: Any) -> str:
    """A client's value quoted in an error message, short and printable."""
    text = repr(value) if isinstance(value, str | int | float | bool) else type(value).__name__
    return text[:80].replace(NUL, "\\x00")


def _json_id(value: Any, where: str) -> tuple[str, str | None]:
    """OTLP/JSON ids are hex strings: (lowercase id, None), or for a malformed id (the
    text as sent, cut short, the reason). The ingest step rejects such spans one by one
    (partial success), not the whole body."""
    if not value:
        return "", None
    if not isinstance(value, str):
        raise OTLPError(400, f"{where} must be a hex string.")
    shown = value[:32].replace(NUL, REPLACEMENT)
    if len(value) > 32:
        return shown, f"{where} is longer than 16 bytes"
    try:
        bytes.fromhex(value)
    except ValueError:
        return shown, f"{where} is not a hex string"
    return value.lower(), None


_ENUM_NAMES = {
    # Some hand-written JSON uses enum names; the spec says integers. Accept both.
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
    "STATUS_CODE_UNSET": 0,
    "STATUS_CODE_OK": 1,
    "STATUS_CODE_ERROR": 2,
}


def _enum(value: Any, where: str, top: int, dropped: dict[str, int], what: str) -> int:
    """An enum as an integer or its name; a number outside the enum is unspecified (0)."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= top:
            return value
        _note(dropped, what)
        return 0
    if isinstance(value, str) and value in _ENUM_NAMES:
        return _ENUM_NAMES[value]
    raise OTLPError(400, f"{where} must be an enum integer, got {_show(value)}.")


def _str_json(value: Any, where: str, limits: Limits, dropped: dict[str, int]) -> str:
    if value is None:
        return ""
    if type(value) is not str:
        raise OTLPError(400, f"{where} must be a string, got {_show(value)}.")
    if NUL in value or len(value) > limits.value_length:
        return _clean(value, limits, dropped)
    return value


def _obj(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if type(value) is not dict:
        raise OTLPError(400, f"{where} must be an object.")
    return value


def _any_value_json(v: Any, where: str, limits: Limits, dropped: dict[str, int], depth: int) -> Any:
    if type(v) is not dict:
        raise OTLPError(400, f"{where} must be an AnyValue object.")
    if "stringValue" in v:
        return _str_json(v["stringValue"], f"{where}.stringValue", limits, dropped)
    if "intValue" in v:
        n = _as_int(v["intValue"], where)
        if INT64_MIN <= n <= INT64_MAX:
            return n
        # Not an int64, so not a valid OTLP integer; kept as the text that was sent
        # (no JSON column or JSON encoder here holds it as a number).
        _note(dropped, "out-of-range integers")
        return str(n)
    if "doubleValue" in v:
        d = v["doubleValue"]
        if type(d) is float:
            return d
        if type(d) is int or type(d) is str:  # "NaN", "Infinity" are legal proto3 JSON
            try:
                return float(d)
            except (ValueError, OverflowError):
                raise OTLPError(400, f"{where}.doubleValue is not a number.") from None
        raise OTLPError(400, f"{where}.doubleValue is not a number.")
    if "boolValue" in v:
        b = v["boolValue"]
        if type(b) is not bool:
            raise OTLPError(400, f"{where}.boolValue must be true or false.")
        return b
    if "arrayValue" in v or "kvlistValue" in v:
        if depth >= limits.depth:
            return _deep_marker(limits, dropped)
        if "arrayValue" in v:
            values = _obj(v["arrayValue"], f"{where}.arrayValue").get("values")
            if values is None:
                return []
            if type(values) is not list:
                raise OTLPError(400, f"{where}.arrayValue.values must be a list.")
            values = _take_nested(values, limits, dropped)
            return [_any_value_json(x, where, limits, dropped, depth + 1) for x in values]
        values = _obj(v["kvlistValue"], f"{where}.kvlistValue").get("values")
        if type(values) is list:
            values = _take_nested(values, limits, dropped)
        return _attrs_json(values, where, limits, dropped, None, depth + 1)
    if "bytesValue" in v:
        return _str_json(v["bytesValue"], f"{where}.bytesValue", limits, dropped)
    return None


def _attrs_json(
    kvs: Any,
    where: str,
    limits: Limits,
    dropped: dict[str, int],
    limit: int | None,
    depth: int = 0,
) -> dict[str, Any]:
    if not kvs:
        return {}
    if type(kvs) is not list:
        raise OTLPError(400, f"{where} must be a list of key/value objects.")
    if limit is not None and len(kvs) > limit:
        _note(dropped, "attributes", len(kvs) - limit)
        kvs = kvs[:limit]
    out = {}
    maxlen = limits.value_length
    for kv in kvs:
        if type(kv) is not dict or type(kv.get("key")) is not str:
            raise OTLPError(400, f"{where} has an entry without a string key.")
        key = kv["key"]
        if NUL in key or len(key) > maxlen:
            key = _clean(key, limits, dropped)
        v = kv.get("value")
        if type(v) is dict and len(v) == 1 and type(v.get("stringValue")) is str:
            s = v["stringValue"]  # the common case, checked inline
            if NUL in s or len(s) > maxlen:
                s = _clean(s, limits, dropped)
            out[key] = s
        else:
            out[key] = _any_value_json(v or {}, f"{where}[{key[:80]!r}]", limits, dropped, depth)
    return out


def _list(obj: dict, key: str, where: str) -> list:
    value = obj.get(key)
    if value is None:
        return []
    if type(value) is not list:
        raise OTLPError(400, f"{where}.{key} must be a list.")
    return value


def _json_event(e: Any, where: str, limits: Limits, dropped: dict[str, int]) -> dict[str, Any]:
    e = _obj(e, f"{where}.events[]")
    counts: dict[str, int] = {}
    time_ns = _as_int(e.get("timeUnixNano"), f"{where}.events.timeUnixNano")
    if not 0 <= time_ns <= UINT64_MAX:  # a fixed64: nothing beyond it is a time
        _note(dropped, "event time")
        time_ns = 0
    out = {
        "name": _str_json(e.get("name"), f"{where}.events.name", limits, dropped),
        "time_unix_nano": time_ns,
        "attributes": _attrs_json(
            e.get("attributes"), f"{where}.events", limits, counts, limits.event_attributes
        ),
    }
    _merge_sub(dropped, counts, "event_attributes")
    return out


def _json_link(li: Any, where: str, limits: Limits, dropped: dict[str, int]) -> dict[str, Any]:
    li = _obj(li, f"{where}.links[]")
    counts: dict[str, int] = {}
    out = {
        # A link's ids are only shown: a malformed one is kept as sent, not refused.
        "trace_id": _json_id(li.get("traceId"), f"{where}.links.traceId")[0],
        "span_id": _json_id(li.get("spanId"), f"{where}.links.spanId")[0],
        "attributes": _attrs_json(
            li.get("attributes"), f"{where}.links", limits, counts, limits.link_attributes
        ),
    }
    _merge_sub(dropped, counts, "link_attributes")
    return out


def decode_json(body: bytes, limits: Limits | None = None) -> SpanBatch:
    limits = replace(limits or Limits.from_settings())
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        hint = " (nested too deep)" if "depth" in str(exc) else ""
        raise OTLPError(400, f"The body is not valid JSON{hint}: {exc}") from None
    if type(doc) is not dict:
        raise OTLPError(400, "The body must be a JSON object with resourceSpans.")
    batch = SpanBatch(limits)
    limited = batch.limited
    for i, rs in enumerate(_list(doc, "resourceSpans", "body")):
        where_rs = f"resourceSpans[{i}]"
        rs = _obj(rs, where_rs)
        scope_spans = _list(rs, "scopeSpans", where_rs)
        shared: dict[str, int] = {}
        resource = _attrs_json(
            _obj(rs.get("resource"), f"{where_rs}.resource").get("attributes"),
            f"{where_rs}.resource",
            limits,
            shared,
            limits.attributes,
        )
        for j, ss in enumerate(scope_spans):
            where_ss = f"{where_rs}.scopeSpans[{j}]"
            ss = _obj(ss, where_ss)
            spans = _list(ss, "spans", where_ss)
            room = limits.spans - len(batch)
            if len(spans) > room:
                batch.over_limit += len(spans) - room
                spans = spans[:room]
            if not spans:
                continue
            sc = _obj(ss.get("scope"), f"{where_ss}.scope")
            scope = {
                "name": _str_json(sc.get("name"), f"{where_ss}.scope.name", limits, shared),
                "version": _str_json(
                    sc.get("version"), f"{where_ss}.scope.version", limits, shared
                ),
            }
            if sc.get("attributes"):
                scope["attributes"] = _attrs_json(
                    sc["attributes"], f"{where_ss}.scope", limits, shared, limits.attributes
                )
            for k, s in enumerate(spans):
                where = f"{where_ss}.spans[{k}]"
                s = _obj(s, where)
                dropped: dict[str, int] = {}
                status = _obj(s.get("status"), f"{where}.status")
                events = _list(s, "events", where)
                if len(events) > limits.events:
                    _note(dropped, "events", len(events) - limits.events)
                    events = events[: limits.events]
                links = _list(s, "links", where)
                if len(links) > limits.links:
                    _note(dropped, "links", len(links) - limits.links)
                    links = links[: limits.links]
                trace_id, bad_trace = _json_id(s.get("traceId"), f"{where}.traceId")
                span_id, bad_span = _json_id(s.get("spanId"), f"{where}.spanId")
                parent_id, bad_parent = _json_id(s.get("parentSpanId"), f"{where}.parentSpanId")
                span = RawSpan(
                    trace_id=trace_id,
                    span_id=span_id,
                    parent_span_id=parent_id,
                    invalid=bad_trace or bad_span or bad_parent,
                    name=_str_json(s.get("name"), f"{where}.name", limits, dropped),
                    kind=_enum(s.get("kind"), f"{where}.kind", MAX_SPAN_KIND, dropped, "kind"),
                    start_ns=_as_int(s.get("startTimeUnixNano"), f"{where}.startTimeUnixNano"),
                    end_ns=_as_int(s.get("endTimeUnixNano"), f"{where}.endTimeUnixNano"),
                    attributes=_attrs_json(
                        s.get("attributes"),
                        f"{where}.attributes",
                        limits,
                        dropped,
                        limits.attributes,
                    ),
                    events=[_json_event(e, where, limits, dropped) for e in events],
                    links=[_json_link(li, where, limits, dropped) for li in links],
                    status_code=_enum(
                        status.get("code"),
                        f"{where}.status.code",
                        MAX_STATUS_CODE,
                        dropped,
                        "status.code",
                    ),
                    status_message=_str_json(
                        status.get("message"), f"{where}.status.message", limits, dropped
                    ),
                    resource=resource,
                    scope=scope,
                    flags=_flags(s.get("flags"), where, dropped),
                    dropped=dropped,
                )
                if dropped:
                    _merge(limited, dropped)
                for what, key in (
                    ("attributes", "droppedAttributesCount"),
                    ("events", "droppedEventsCount"),
                    ("links", "droppedLinksCount"),
                ):
                    if s.get(key):
                        n = _as_int(s[key], f"{where}.{key}")
                        if n > 0:
                            _note(dropped, what, min(n, UINT64_MAX))
                batch.append(span)
        if shared:
            _merge(limited, shared)
    return batch


def _flags(value: Any, where: str, dropped: dict[str, int]) -> int:
    flags = _as_int(value, f"{where}.flags")
    if 0 <= flags < 2**32:  # a fixed32
        return flags
    _note(dropped, "flags")
    return 0


def decode(body: bytes, content_type: str, limits: Limits | None = None) -> SpanBatch:
    """Decode a request body within `limits` (the settings when not given)."""
    if content_type == PROTOBUF:
        return decode_protobuf(body, limits)
    if content_type == JSON:
        return decode_json(body, limits)
    raise OTLPError(
        415,
        f"Content-Type {content_type or '(none)'!r} is not supported; send {PROTOBUF} or {JSON}.",
    )


def encode_response(content_type: str, *, rejected: int = 0, message: str = "") -> bytes:
    """ExportTraceServiceResponse in the request's encoding."""
    if content_type == JSON:
        if not rejected and not message:
            return b"{}"
        return orjson.dumps(
            {"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": message}}
        )
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return response.SerializeToString()


def describe_limited(limited: dict[str, int], limits: Limits) -> list[str]:
    """`SpanBatch.limited` as sentences for the partial-success message."""
    phrases = {
        "attributes": f"attribute(s) beyond the {limits.attributes} allowed per span, "
        "resource or scope dropped",
        "events": f"event(s) beyond the {limits.events} allowed per span dropped",
        "links": f"link(s) beyond the {limits.links} allowed per span dropped",
        "event_attributes": f"event attribute(s) beyond the {limits.event_attributes} "
        "allowed per event dropped",
        "link_attributes": f"link attribute(s) beyond the {limits.link_attributes} "
        "allowed per link dropped",
        "truncated": f"value(s) truncated to {limits.value_length} characters",
        "depth": f"value(s) nested deeper than {limits.depth} levels cut",
        "nested": f"array or kvlist item(s) beyond the {limits.nested_values} nested values "
        "allowed per request dropped",
        "out-of-range integers": "integer value(s) beyond int64 kept as text",
    }
    out = []
    for what, n in sorted(limited.items()):
        phrase = phrases.get(what, f"{what} value(s) out of range cleared")
        out.append(f"{n} {phrase}")
    return out
