"""POST /v1/traces with input meant to hurt: NUL characters, integers no column holds,
values nested thousands deep, and more attributes, events, links, characters or spans
than a request may carry. Each is answered (never a 500), the span is stored where it
can be, and what was dropped or cut is said in the partial success."""

from __future__ import annotations

import time
from decimal import Decimal

import orjson
import pytest
from django.test import Client, override_settings
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from traces.models import Span, Trace

PB = "application/x-protobuf"
JSON = "application/json"
NUL = "\x00"
FFFD = "\ufffd"

pytestmark = pytest.mark.django_db

TRACE_ID = "5b8efff798038103d269b633813fc60c"
NOW_NS = time.time_ns()


def post(body: bytes, secret: str, content_type: str):
    return Client().post(
        "/v1/traces", data=body, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {secret}"
    )


def partial(response) -> tuple[int, str]:
    """(rejected_spans, error_message) of a 200 answer in either encoding."""
    if response["Content-Type"].startswith(PB):
        p = ExportTraceServiceResponse.FromString(response.content).partial_success
        return p.rejected_spans, p.error_message
    doc = orjson.loads(response.content).get("partialSuccess") or {}
    return int(doc.get("rejectedSpans") or 0), doc.get("errorMessage", "")


def error_message(response) -> str:
    if response["Content-Type"].startswith(PB):
        return status_pb2.Status.FromString(response.content).message
    return orjson.loads(response.content)["message"]


# ------------------------------------------------------------------ body builders
# OTLP/JSON documents are written by hand (as the JavaScript exporter sends them) and
# turned into protobuf with the spec's own JSON mapping where protobuf can carry them.


def sv(s: str) -> dict:
    return {"stringValue": s}


def kv(key: str, value: dict) -> dict:
    return {"key": key, "value": value}


def span_doc(span_id: str = "00f067aa0ba902b7", *, attributes=(), **extra) -> dict:
    doc = {
        "traceId": TRACE_ID,
        "spanId": span_id,
        "name": "chat gpt-4o-mini",
        "kind": 3,
        "startTimeUnixNano": str(NOW_NS),
        "endTimeUnixNano": str(NOW_NS + 1_000_000),
        "attributes": list(attributes),
    }
    doc.update(extra)
    return doc


def request_doc(*spans: dict, resource=(), scope: dict | None = None) -> dict:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": list(resource)},
                "scopeSpans": [{"scope": scope or {"name": "tests"}, "spans": list(spans)}],
            }
        ]
    }


def to_protobuf(doc: dict) -> bytes:
    """The same request as protobuf: ids hex → bytes, AnyValues built recursively (the
    protobuf JSON parser has its own depth limit, so it is not used here)."""

    def any_value(v: dict) -> AnyValue:
        out = AnyValue()
        if "stringValue" in v:
            out.string_value = v["stringValue"]
        elif "intValue" in v:
            out.int_value = int(v["intValue"])
        elif "doubleValue" in v:
            out.double_value = float(v["doubleValue"])
        elif "boolValue" in v:
            out.bool_value = v["boolValue"]
        elif "arrayValue" in v:
            out.array_value.values.extend(any_value(x) for x in v["arrayValue"]["values"])
        elif "kvlistValue" in v:
            out.kvlist_value.values.extend(attrs(v["kvlistValue"]["values"]))
        return out

    def attrs(kvs) -> list[KeyValue]:
        return [KeyValue(key=x["key"], value=any_value(x["value"])) for x in kvs]

    request = ExportTraceServiceRequest()
    for rs_doc in doc["resourceSpans"]:
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(attrs(rs_doc["resource"]["attributes"]))
        for ss_doc in rs_doc["scopeSpans"]:
            ss = rs.scope_spans.add()
            sc = ss_doc["scope"]
            ss.scope.name = sc.get("name", "")
            ss.scope.version = sc.get("version", "")
            ss.scope.attributes.extend(attrs(sc.get("attributes", [])))
            for s in ss_doc["spans"]:
                span = ss.spans.add()
                span.trace_id = bytes.fromhex(s["traceId"])
                span.span_id = bytes.fromhex(s["spanId"])
                span.name = s["name"]
                span.kind = s["kind"]
                span.start_time_unix_nano = int(s["startTimeUnixNano"])
                span.end_time_unix_nano = int(s["endTimeUnixNano"])
                span.attributes.extend(attrs(s["attributes"]))
                for e in s.get("events", []):
                    ev = span.events.add()
                    ev.name = e["name"]
                    ev.time_unix_nano = int(e["timeUnixNano"])
                    ev.attributes.extend(attrs(e.get("attributes", [])))
                for li in s.get("links", []):
                    link = span.links.add()
                    link.trace_id = bytes.fromhex(li["traceId"])
                    link.span_id = bytes.fromhex(li["spanId"])
                    link.attributes.extend(attrs(li.get("attributes", [])))
                if "status" in s:
                    span.status.code = s["status"].get("code", 0)
                    span.status.message = s["status"].get("message", "")
    return request.SerializeToString()


def send(doc: dict, secret: str, encoding: str):
    if encoding == "protobuf":
        return post(to_protobuf(doc), secret, PB)
    return post(orjson.dumps(doc), secret, JSON)


both = pytest.mark.parametrize("encoding", ["protobuf", "json"])


# ------------------------------------------------------------------ NUL characters


def nul_everywhere() -> dict:
    tool = span_doc(
        "00f067aa0ba902b8",
        name=f"execute_tool look{NUL}up",
        attributes=[
            kv("gen_ai.operation.name", sv("execute_tool")),
            kv("gen_ai.tool.name", sv(f"lookup{NUL}order")),
            kv("gen_ai.tool.call.arguments", sv(f'{{"q": "a{NUL}b"}}')),
            kv("gen_ai.tool.call.result", sv(f"found{NUL}")),
            kv(f"key{NUL}with-nul", sv(f"value{NUL}")),
            kv(
                "nested",
                {
                    "kvlistValue": {
                        "values": [kv(f"in{NUL}ner", {"arrayValue": {"values": [sv(f"x{NUL}y")]}})]
                    }
                },
            ),
        ],
        events=[
            {
                "name": f"exception{NUL}",
                "timeUnixNano": str(NOW_NS),
                "attributes": [kv("exception.message", sv(f"boom{NUL}"))],
            }
        ],
        links=[
            {
                "traceId": TRACE_ID,
                "spanId": "00f067aa0ba902b7",
                "attributes": [kv(f"link{NUL}", sv(f"l{NUL}"))],
            }
        ],
        status={"code": 2, "message": f"failed{NUL}here"},
    )
    return request_doc(
        tool,
        resource=[kv("service.name", sv(f"agent{NUL}svc")), kv(f"r{NUL}", sv(NUL))],
        scope={
            "name": f"scope{NUL}",
            "version": f"1{NUL}0",
            "attributes": [kv(f"s{NUL}", sv(f"v{NUL}"))],
        },
    )


@both
def test_nul_characters_are_stored_as_replacement_characters(ingest_secret, encoding):
    response = send(nul_everywhere(), ingest_secret, encoding)

    assert response.status_code == 200, response.content
    span = Span.objects.get()
    assert span.name == f"execute_tool look{FFFD}up"
    assert span.tool_name == f"lookup{FFFD}order"
    assert span.tool_arguments == f'{{"q": "a{FFFD}b"}}'
    assert span.tool_result == f"found{FFFD}"
    assert span.status_message == f"failed{FFFD}here"
    assert span.service_name == f"agent{FFFD}svc"
    assert span.attributes[f"key{FFFD}with-nul"] == f"value{FFFD}"
    assert span.attributes["nested"] == {f"in{FFFD}ner": [f"x{FFFD}y"]}
    assert span.events[0]["name"] == f"exception{FFFD}"
    assert span.events[0]["attributes"] == {"exception.message": f"boom{FFFD}"}
    assert span.links[0]["attributes"] == {f"link{FFFD}": f"l{FFFD}"}
    assert span.resource[f"r{FFFD}"] == FFFD
    assert span.scope["name"] == f"scope{FFFD}"
    assert span.scope["version"] == f"1{FFFD}0"
    assert span.scope["attributes"] == {f"s{FFFD}": f"v{FFFD}"}
    assert NUL not in orjson.dumps([span.attributes, span.events, span.links]).decode()


def test_a_lone_surrogate_in_json_is_a_400_not_a_500(ingest_secret):
    body = orjson.dumps(request_doc(span_doc(attributes=[kv("a", sv("x"))])))
    body = body.replace(b'"x"', b'"\\ud800"')
    response = post(body, ingest_secret, JSON)
    assert response.status_code == 400
    assert "JSON" in error_message(response)
    assert Span.objects.count() == 0


# ------------------------------------------------------------------ integers


def test_an_attribute_int_beyond_int64_is_kept_as_a_string(ingest_secret):
    doc = request_doc(
        span_doc(
            attributes=[
                kv("as.string", {"intValue": str(2**70)}),
                kv("as.number", {"intValue": 2**62}),
                kv("negative", {"intValue": str(-(2**64))}),
            ]
        )
    )
    body = orjson.dumps(doc).replace(str(2**62).encode(), str(2**70).encode())
    response = post(body, ingest_secret, JSON)

    assert response.status_code == 200, response.content
    attributes = Span.objects.get().attributes
    assert attributes["as.string"] == str(2**70)
    # orjson reads a number beyond 64 bits as a float; it is kept as that number's text.
    assert attributes["as.number"] in (str(2**70), str(float(2**70)))
    assert attributes["negative"] == str(-(2**64))


@pytest.mark.parametrize(
    ("field", "value"),
    [("kind", 2**40), ("kind", -1), ("status", {"code": 2**40}), ("flags", str(2**70))],
)
def test_enums_and_flags_out_of_range_are_cleared(ingest_secret, field, value):
    response = post(orjson.dumps(request_doc(span_doc(**{field: value}))), ingest_secret, JSON)

    assert response.status_code == 200, response.content
    span = Span.objects.get()
    assert span.kind == (0 if field == "kind" else 3)
    assert span.status == "unset"
    assert (
        f"{'status.code' if field == 'status' else field} value(s) out of range cleared"
        in (partial(response)[1])
    )


def test_an_event_time_no_clock_reaches_is_cleared(ingest_secret):
    event = {"name": "e", "timeUnixNano": str(2**70), "attributes": []}
    response = post(orjson.dumps(request_doc(span_doc(events=[event]))), ingest_secret, JSON)

    assert response.status_code == 200, response.content
    assert Span.objects.get().events[0]["time_unix_nano"] == 0


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("traceId", "zz" * 16, "traceId is not a hex string"),
        ("spanId", "0123456789abcdefg", "spanId is not a hex string"),
        ("parentSpanId", "a" * 40, "parentSpanId is longer than 16 bytes"),
    ],
)
def test_a_malformed_json_id_rejects_its_span_alone_and_says_why(
    ingest_secret, field, value, reason
):
    bad = span_doc("00f067aa0ba902b8", **{field: value})
    response = post(orjson.dumps(request_doc(span_doc(), bad)), ingest_secret, JSON)

    rejected, message = partial(response)
    assert response.status_code == 200, response.content
    assert rejected == 1
    assert f"spans[1].{reason}" in message
    assert list(Span.objects.values_list("span_id", flat=True)) == ["00f067aa0ba902b7"]


def test_an_overlong_link_id_is_cut_not_marked(ingest_secret):
    link = {"traceId": "ab" * 20, "spanId": "cd" * 20, "attributes": []}
    response = send(request_doc(span_doc(links=[link])), ingest_secret, "protobuf")

    assert response.status_code == 200, response.content
    assert Span.objects.get().links[0]["trace_id"] == "ab" * 16
    assert Span.objects.get().links[0]["span_id"] == "cd" * 16


def llm_span(span_id: str, **usage) -> dict:
    attrs = [
        kv("gen_ai.operation.name", sv("chat")),
        kv("gen_ai.provider.name", sv("openai")),
        kv("gen_ai.request.model", sv("gpt-4o-mini")),
    ]
    for key, value in usage.items():
        attrs.append(kv(key.replace("__", "."), value))
    return span_doc(span_id, attributes=attrs)


@both
def test_an_implausible_token_count_is_dropped_and_said(ingest_secret, encoding):
    doc = request_doc(
        llm_span(
            "00f067aa0ba902b7",
            gen_ai__usage__input_tokens={"intValue": str(2**63 - 1)},
            gen_ai__usage__output_tokens={"intValue": "50"},
        ),
        llm_span(
            "00f067aa0ba902b8",
            gen_ai__usage__input_tokens={"intValue": "-5"},
            gen_ai__usage__output_tokens={"intValue": "7"},
        ),
    )
    response = send(doc, ingest_secret, encoding)

    assert response.status_code == 200, response.content
    rejected, message = partial(response)
    assert rejected == 0
    assert "gen_ai.usage.input_tokens" in message
    assert "100000000" in message
    assert sorted(Span.objects.values_list("input_tokens", "output_tokens")) == [(0, 7), (0, 50)]
    assert (Trace.objects.get().input_tokens, Trace.objects.get().output_tokens) == (0, 57)


@both
def test_an_implausible_cost_is_dropped_and_the_trace_keeps_taking_spans(ingest_secret, encoding):
    doc = request_doc(
        llm_span("00f067aa0ba902b7", gen_ai__usage__cost={"doubleValue": 9999999999}),
        llm_span("00f067aa0ba902b8", gen_ai__usage__cost={"doubleValue": 9999999999}),
    )
    response = send(doc, ingest_secret, encoding)

    assert response.status_code == 200, response.content
    assert "gen_ai.usage.cost" in partial(response)[1]
    assert set(Span.objects.values_list("cost_usd", flat=True)) == {None}

    later = request_doc(llm_span("00f067aa0ba902b9", gen_ai__usage__cost={"doubleValue": 0.25}))
    assert send(later, ingest_secret, encoding).status_code == 200
    trace = Trace.objects.get()
    assert trace.span_count == 3
    assert trace.cost_usd == Decimal("0.25")


def test_a_trace_cost_sum_saturates_instead_of_overflowing(project, ingest_secret):
    """The per-span cap keeps one request far from the column's limit; a trace fed the
    maximum again and again stops at the largest amount the column holds."""
    from django.utils import timezone

    from traces.ingest import MAX_TRACE_COST

    now = timezone.now()
    Trace.objects.create(
        project=project,
        trace_id=TRACE_ID,
        cost_usd=MAX_TRACE_COST,
        start_ns=NOW_NS,
        end_ns=NOW_NS,
        started_at=now,
        ended_at=now,
        first_received_at=now,
        last_received_at=now,
    )
    doc = request_doc(llm_span("00f067aa0ba902b7", gen_ai__usage__cost={"doubleValue": 9999}))
    response = post(orjson.dumps(doc), ingest_secret, JSON)

    assert response.status_code == 200, response.content
    assert Trace.objects.get().cost_usd == MAX_TRACE_COST


# ------------------------------------------------------------------ deep nesting


def nested(depth: int) -> dict:
    value = sv("bottom")
    for i in range(depth):
        value = (
            {"arrayValue": {"values": [value]}}
            if i % 2
            else {"kvlistValue": {"values": [kv("k", value)]}}
        )
    return value


def depth_of(value) -> int:
    depth = 0
    while isinstance(value, list | dict):
        value = value[0] if isinstance(value, list) else value["k"]
        depth += 1
    return depth


@pytest.mark.parametrize(("encoding", "depth"), [("protobuf", 30), ("json", 250)])
def test_values_nested_deeper_than_the_limit_are_cut(ingest_secret, encoding, depth):
    doc = request_doc(span_doc(attributes=[kv("deep", nested(depth)), kv("ok", sv("x"))]))
    if encoding == "protobuf":
        response = post(to_protobuf(doc), ingest_secret, PB)
    else:  # deeper than orjson writes; the json module can
        response = post(_dumps_deep(doc), ingest_secret, JSON)

    assert response.status_code == 200, response.content
    attributes = Span.objects.get().attributes
    assert depth_of(attributes["deep"]) == 16
    assert "nested deeper than 16" in orjson.dumps(attributes["deep"]).decode()
    assert attributes["ok"] == "x"
    assert "nested deeper" in partial(response)[1]


@both
def test_values_nested_beyond_what_the_parser_reads_are_a_clear_400(ingest_secret, encoding):
    if encoding == "protobuf":
        # Built on the wire: the protobuf library itself refuses to serialize this deep.
        response = post(deep_protobuf(3000), ingest_secret, PB)
    else:
        doc = request_doc(span_doc(attributes=[kv("deep", nested(3000))]))
        response = post(_dumps_deep(doc), ingest_secret, JSON)

    assert response.status_code == 400
    assert "deep" in error_message(response)
    assert Span.objects.count() == 0


def _dumps_deep(doc: dict) -> bytes:
    import json
    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        return json.dumps(doc).encode()
    finally:
        sys.setrecursionlimit(old)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _ld(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _varint(len(payload)) + payload


def deep_protobuf(depth: int) -> bytes:
    value = _ld(0x0A, b"x")  # AnyValue.string_value
    for _ in range(depth):
        value = _ld(0x2A, _ld(0x0A, value))  # AnyValue.array_value.values[0]
    attribute = _ld(0x0A, b"deep") + _ld(0x12, value)
    span = (
        _ld(0x0A, bytes.fromhex(TRACE_ID))
        + _ld(0x12, bytes.fromhex("00f067aa0ba902b7"))
        + _ld(0x2A, b"n")
        + _ld(0x4A, attribute)
    )
    return _ld(0x0A, _ld(0x12, _ld(0x12, span)))


# ------------------------------------------------------------------ per-request bounds


@both
def test_attributes_events_and_links_beyond_the_limits_are_dropped_and_counted(
    ingest_secret, encoding
):
    events = [
        {
            "name": f"e{i}",
            "timeUnixNano": str(NOW_NS),
            "attributes": [kv(f"a{j}", sv("v")) for j in range(140)],
        }
        for i in range(130)
    ]
    links = [
        {
            "traceId": TRACE_ID,
            "spanId": f"{i + 1:016x}",
            "attributes": [kv(f"a{j}", sv("v")) for j in range(129)],
        }
        for i in range(131)
    ]
    doc = request_doc(
        span_doc(attributes=[kv(f"a{i}", sv("v")) for i in range(200)], events=events, links=links)
    )
    response = send(doc, ingest_secret, encoding)

    assert response.status_code == 200, response.content
    span = Span.objects.get()
    assert len(span.attributes) == 128
    assert "a0" in span.attributes
    assert len(span.events) == 128
    assert all(len(e["attributes"]) == 128 for e in span.events)
    assert len(span.links) == 128
    assert all(len(li["attributes"]) == 128 for li in span.links)
    rejected, message = partial(response)
    assert rejected == 0
    assert "72 attribute(s)" in message
    assert "2 event(s)" in message
    assert "3 link(s)" in message


@both
def test_a_value_longer_than_the_limit_is_truncated_with_a_marker(ingest_secret, encoding):
    long = "x" * 200_000
    doc = request_doc(
        span_doc(
            "00f067aa0ba902b8",
            attributes=[
                kv("gen_ai.operation.name", sv("execute_tool")),
                kv("gen_ai.tool.name", sv("search")),
                kv("gen_ai.tool.call.arguments", sv(long)),
                kv("inside", {"arrayValue": {"values": [sv(long)]}}),
            ],
        )
    )
    response = send(doc, ingest_secret, encoding)

    assert response.status_code == 200, response.content
    span = Span.objects.get()
    assert span.tool_arguments.startswith("x" * 65_536)
    assert span.tool_arguments.endswith("[truncated]")
    assert len(span.tool_arguments) < 65_600
    assert len(span.attributes["inside"][0]) < 65_600
    assert "2 value(s) truncated" in partial(response)[1]


@both
@override_settings(OTLP_MAX_SPANS_PER_REQUEST=3)
def test_spans_beyond_the_per_request_limit_are_rejected_in_partial_success(
    ingest_secret, encoding
):
    doc = request_doc(*(span_doc(f"{i + 1:016x}") for i in range(5)))
    response = send(doc, ingest_secret, encoding)

    assert response.status_code == 200, response.content
    rejected, message = partial(response)
    assert rejected == 2
    assert "3-span" in message
    assert Span.objects.count() == 3


@override_settings(OTLP_MAX_ATTRIBUTES_PER_SPAN=2, OTLP_MAX_VALUE_LENGTH=10, OTLP_MAX_VALUE_DEPTH=1)
def test_the_limits_are_settings(ingest_secret):
    doc = request_doc(
        span_doc(
            attributes=[
                kv("a", sv("y" * 50)),
                kv("b", {"arrayValue": {"values": [{"arrayValue": {"values": [sv("z")]}}]}}),
                kv("c", sv("dropped")),
            ]
        )
    )
    response = post(orjson.dumps(doc), ingest_secret, JSON)

    assert response.status_code == 200, response.content
    attributes = Span.objects.get().attributes
    assert set(attributes) == {"a", "b"}
    assert attributes["a"].startswith("y" * 10) and len(attributes["a"]) < 50
    assert isinstance(attributes["b"][0], str)
