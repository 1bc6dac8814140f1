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
from dataclasses import dataclass, field
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


# ---------------------------------------------------------------- protobuf


def _any_value_pb(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        return [_any_value_pb(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _any_value_pb(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return None


def _attrs_pb(kvs: Any) -> dict[str, Any]:
    out = {}
    for kv in kvs:
        # The common case, a string, skips the generic dispatch.
        v = kv.value
        if v.WhichOneof("value") == "string_value":
            out[kv.key] = v.string_value
        else:
            out[kv.key] = _any_value_pb(v)
    return out


def decode_protobuf(body: bytes) -> list[RawSpan]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OTLPError(
            400, f"The body is not a valid protobuf ExportTraceServiceRequest: {exc}"
        ) from None
    spans: list[RawSpan] = []
    for rs in request.resource_spans:
        resource = _attrs_pb(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope = {"name": ss.scope.name, "version": ss.scope.version}
            if ss.scope.attributes:
                scope["attributes"] = _attrs_pb(ss.scope.attributes)
            for s in ss.spans:
                events = [
                    {
                        "name": e.name,
                        "time_unix_nano": e.time_unix_nano,
                        "attributes": _attrs_pb(e.attributes),
                    }
                    for e in s.events
                ]
                links = [
                    {
                        "trace_id": link.trace_id.hex(),
                        "span_id": link.span_id.hex(),
                        "attributes": _attrs_pb(link.attributes),
                    }
                    for link in s.links
                ]
                dropped = {}
                if s.dropped_attributes_count:
                    dropped["attributes"] = s.dropped_attributes_count
                if s.dropped_events_count:
                    dropped["events"] = s.dropped_events_count
                spans.append(
                    RawSpan(
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        name=s.name,
                        kind=s.kind,
                        start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano,
                        attributes=_attrs_pb(s.attributes),
                        events=events,
                        links=links,
                        status_code=s.status.code,
                        status_message=s.status.message,
                        resource=resource,
                        scope=scope,
                        flags=s.flags,
                        dropped=dropped,
                    )
                )
    return spans


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
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise OTLPError(400, f"{where} must be an integer (number or decimal string), got {value!r}.")


def _json_id(value: Any, where: str) -> str:
    """OTLP/JSON ids are hex strings. Returns '' for an empty or malformed id; the
    ingest step rejects such spans one by one (partial success), not the whole body."""
    if not value:
        return ""
    if not isinstance(value, str):
        raise OTLPError(400, f"{where} must be a hex string.")
    value = value.lower()
    try:
        bytes.fromhex(value)
    except ValueError:
        return "!" + value[:64]  # marked invalid, reported per span
    return value


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


def _enum(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _ENUM_NAMES:
        return _ENUM_NAMES[value]
    raise OTLPError(400, f"{where} must be an enum integer, got {value!r}.")


def _any_value_json(v: Any, where: str) -> Any:
    if not isinstance(v, dict):
        raise OTLPError(400, f"{where} must be an AnyValue object.")
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return _as_int(v["intValue"], where)
    if "doubleValue" in v:
        d = v["doubleValue"]
        if isinstance(d, str):  # "NaN", "Infinity" are legal proto3 JSON
            try:
                return float(d)
            except ValueError:
                raise OTLPError(400, f"{where}.doubleValue is not a number.") from None
        return d
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        values = (v["arrayValue"] or {}).get("values") or []
        return [_any_value_json(x, where) for x in values]
    if "kvlistValue" in v:
        return _attrs_json((v["kvlistValue"] or {}).get("values"), where)
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def _attrs_json(kvs: Any, where: str) -> dict[str, Any]:
    if not kvs:
        return {}
    if not isinstance(kvs, list):
        raise OTLPError(400, f"{where} must be a list of key/value objects.")
    out = {}
    for kv in kvs:
        if not isinstance(kv, dict) or "key" not in kv:
            raise OTLPError(400, f"{where} has an entry without a key.")
        out[kv["key"]] = _any_value_json(kv.get("value") or {}, f"{where}[{kv['key']!r}]")
    return out


def _list(obj: dict, key: str, where: str) -> list:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise OTLPError(400, f"{where}.{key} must be a list.")
    return value


def decode_json(body: bytes) -> list[RawSpan]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OTLPError(400, f"The body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise OTLPError(400, "The body must be a JSON object with resourceSpans.")
    spans: list[RawSpan] = []
    for i, rs in enumerate(_list(doc, "resourceSpans", "body")):
        where_rs = f"resourceSpans[{i}]"
        if not isinstance(rs, dict):
            raise OTLPError(400, f"{where_rs} must be an object.")
        resource = _attrs_json((rs.get("resource") or {}).get("attributes"), f"{where_rs}.resource")
        for j, ss in enumerate(_list(rs, "scopeSpans", where_rs)):
            where_ss = f"{where_rs}.scopeSpans[{j}]"
            if not isinstance(ss, dict):
                raise OTLPError(400, f"{where_ss} must be an object.")
            sc = ss.get("scope") or {}
            scope = {"name": sc.get("name", ""), "version": sc.get("version", "")}
            if sc.get("attributes"):
                scope["attributes"] = _attrs_json(sc["attributes"], f"{where_ss}.scope")
            for k, s in enumerate(_list(ss, "spans", where_ss)):
                where = f"{where_ss}.spans[{k}]"
                if not isinstance(s, dict):
                    raise OTLPError(400, f"{where} must be an object.")
                status = s.get("status") or {}
                events = [
                    {
                        "name": e.get("name", ""),
                        "time_unix_nano": _as_int(e.get("timeUnixNano"), f"{where}.events"),
                        "attributes": _attrs_json(e.get("attributes"), f"{where}.events"),
                    }
                    for e in _list(s, "events", where)
                ]
                links = [
                    {
                        "trace_id": _json_id(li.get("traceId"), f"{where}.links.traceId"),
                        "span_id": _json_id(li.get("spanId"), f"{where}.links.spanId"),
                        "attributes": _attrs_json(li.get("attributes"), f"{where}.links"),
                    }
                    for li in _list(s, "links", where)
                ]
                spans.append(
                    RawSpan(
                        trace_id=_json_id(s.get("traceId"), f"{where}.traceId"),
                        span_id=_json_id(s.get("spanId"), f"{where}.spanId"),
                        parent_span_id=_json_id(s.get("parentSpanId"), f"{where}.parentSpanId"),
                        name=str(s.get("name") or ""),
                        kind=_enum(s.get("kind"), f"{where}.kind"),
                        start_ns=_as_int(s.get("startTimeUnixNano"), f"{where}.startTimeUnixNano"),
                        end_ns=_as_int(s.get("endTimeUnixNano"), f"{where}.endTimeUnixNano"),
                        attributes=_attrs_json(s.get("attributes"), f"{where}.attributes"),
                        events=events,
                        links=links,
                        status_code=_enum(status.get("code"), f"{where}.status.code"),
                        status_message=str(status.get("message") or ""),
                        resource=resource,
                        scope=scope,
                        flags=_as_int(s.get("flags"), f"{where}.flags"),
                    )
                )
    return spans


def decode(body: bytes, content_type: str) -> list[RawSpan]:
    if content_type == PROTOBUF:
        return decode_protobuf(body)
    if content_type == JSON:
        return decode_json(body)
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
