"""Any body sent to /v1/traces is answered 200, 400, 413 or 415, never a 500, and a
refused body stores nothing. Bodies are random bytes, random protobuf requests that
are valid on the wire but carry anything the fields allow (NULs, extreme integers,
deep values, ids of any length), and random JSON trees shaped like OTLP/JSON."""

from __future__ import annotations

import time

import orjson
import pytest
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from traces.models import Span, Trace

PB = "application/x-protobuf"
JSON = "application/json"
ANSWERS = {200, 400, 413, 415}

pytestmark = pytest.mark.django_db

fuzz = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NOW_NS = time.time_ns()


def check(secret: str, body: bytes, content_type: str, *, fuzzing: bool = True) -> None:
    before = (Span.objects.count(), Trace.objects.count())
    response = Client().post(
        "/v1/traces", data=body, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert response.status_code in ANSWERS, response.content[:500]
    if response.status_code != 200:
        assert (Span.objects.count(), Trace.objects.count()) == before
    if fuzzing:  # --hypothesis-show-statistics: how many examples reach the database
        event(f"answer {response.status_code}, stored: {Span.objects.count() > before[0]}")


# ------------------------------------------------------------------ protobuf

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=30) | st.sampled_from(
    ["\x00", "a\x00b", "gen_ai.usage.input_tokens", "gen_ai.usage.cost", "gen_ai.tool.name"]
)
int64s = st.integers(-(2**63), 2**63 - 1) | st.sampled_from([2**63 - 1, -(2**63), 0, -1])
scalars = st.one_of(
    texts.map(lambda s: AnyValue(string_value=s)),
    int64s.map(lambda n: AnyValue(int_value=n)),
    st.floats().map(lambda f: AnyValue(double_value=f)),
    st.booleans().map(lambda b: AnyValue(bool_value=b)),
    st.binary(max_size=20).map(lambda b: AnyValue(bytes_value=b)),
    st.just(AnyValue()),
)


def _nest(children: st.SearchStrategy) -> st.SearchStrategy:
    arrays = st.lists(children, max_size=3).map(lambda vs: AnyValue(array_value={"values": vs}))
    kvlists = st.lists(st.tuples(texts, children), max_size=3).map(
        lambda kvs: AnyValue(kvlist_value={"values": [KeyValue(key=k, value=v) for k, v in kvs]})
    )
    return arrays | kvlists


any_values = st.recursive(scalars, _nest, max_leaves=12)


@st.composite
def deep_values(draw) -> AnyValue:
    """A chain nested up to 30 levels (the protobuf library refuses to build deeper)."""
    value = draw(scalars)
    for _ in range(draw(st.integers(0, 30))):
        value = AnyValue(array_value={"values": [value]})
    return value


attributes = st.lists(st.builds(KeyValue, key=texts, value=any_values | deep_values()), max_size=6)


def _mostly(good: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """`good` three times in four: enough requests get past validation into the store."""
    return st.integers(0, 3).flatmap(lambda i: odd if i == 3 else good)


# Random but never all zero (the simplest example hypothesis tries, and an invalid id).
_id16 = st.uuids().map(lambda u: u.bytes[:15] + b"\x01")
trace_ids = _mostly(_id16, st.binary(max_size=20))
span_ids = _mostly(_id16.map(lambda b: b[8:]), st.binary(max_size=20))
ids = trace_ids | span_ids
times = _mostly(st.integers(NOW_NS - 10**12, NOW_NS + 10**12), st.integers(0, 2**64 - 1))


@st.composite
def protobuf_requests(draw) -> bytes:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(draw(attributes))
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            ss.scope.name = draw(texts)
            ss.scope.version = draw(texts)
            ss.scope.attributes.extend(draw(attributes))
            for _ in range(draw(st.integers(0, 3))):
                span = ss.spans.add()
                span.trace_id = draw(trace_ids)
                span.span_id = draw(span_ids)
                span.parent_span_id = draw(st.just(b"") | span_ids)
                span.name = draw(texts)
                span.kind = draw(st.integers(-(2**31), 2**31 - 1) | st.integers(0, 5))
                start = draw(times)
                span.start_time_unix_nano = start
                end = min(start + 1000, 2**64 - 1)
                span.end_time_unix_nano = draw(_mostly(st.just(end), times))
                span.attributes.extend(draw(attributes))
                span.flags = draw(st.integers(0, 2**32 - 1))
                span.status.code = draw(st.integers(-(2**31), 2**31 - 1) | st.integers(0, 2))
                span.status.message = draw(texts)
                for _ in range(draw(st.integers(0, 2))):
                    event = span.events.add()
                    event.name = draw(texts)
                    event.time_unix_nano = draw(times)
                    event.attributes.extend(draw(attributes))
                for _ in range(draw(st.integers(0, 2))):
                    link = span.links.add()
                    link.trace_id = draw(ids)
                    link.span_id = draw(ids)
                    link.attributes.extend(draw(attributes))
    return request.SerializeToString()


@fuzz
@given(body=st.binary(max_size=2000))
def test_random_bytes_as_protobuf_are_never_a_500(ingest_secret, body):
    check(ingest_secret, body, PB)


@fuzz
@given(body=protobuf_requests())
def test_random_protobuf_requests_are_never_a_500(ingest_secret, body):
    check(ingest_secret, body, PB)


# ------------------------------------------------------------------ OTLP/JSON

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
    st.sampled_from(["NaN", "Infinity", "SPAN_KIND_CLIENT", "00f067aa0ba902b7", str(2**70)]),
)
json_values = st.recursive(
    json_scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(texts, c, max_size=3),
    max_leaves=10,
)


def _json_any(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.fixed_dictionaries(
            {"arrayValue": st.fixed_dictionaries({"values": st.lists(children, max_size=3)})}
        ),
        st.fixed_dictionaries(
            {
                "kvlistValue": st.fixed_dictionaries(
                    {
                        "values": st.lists(
                            st.fixed_dictionaries({"key": texts, "value": children}), max_size=3
                        )
                    }
                )
            }
        ),
    )


json_any_values = st.recursive(
    _mostly(
        st.one_of(
            st.fixed_dictionaries({"stringValue": _mostly(texts, json_values)}),
            st.fixed_dictionaries({"intValue": _mostly(int64s | int64s.map(str), json_scalars)}),
            st.fixed_dictionaries({"doubleValue": _mostly(st.floats(), json_scalars)}),
            st.fixed_dictionaries({"boolValue": _mostly(st.booleans(), json_scalars)}),
            st.fixed_dictionaries({"bytesValue": _mostly(texts, json_scalars)}),
        ),
        json_values,
    ),
    _json_any,
    max_leaves=12,
)


@st.composite
def json_deep(draw) -> dict:
    """A chain nested up to 250 levels (about 900 JSON levels, what orjson reads)."""
    value: dict = {"stringValue": "bottom"}
    for _ in range(draw(st.integers(0, 250))):
        value = {"arrayValue": {"values": [value]}}
    return value


json_attributes = _mostly(
    st.lists(
        st.fixed_dictionaries({"key": texts, "value": _mostly(json_any_values, json_deep())}),
        max_size=5,
    ),
    json_values,
)
json_trace_ids = _mostly(_id16.map(bytes.hex), json_scalars)
json_span_ids = _mostly(_id16.map(lambda b: b[8:].hex()), json_scalars)
json_ids = json_trace_ids | json_span_ids
json_times = _mostly(
    st.integers(NOW_NS - 10**9, NOW_NS + 10**9).map(str) | st.integers(NOW_NS, NOW_NS + 10**9),
    json_scalars,
)
small_ints = _mostly(st.integers(0, 5), json_scalars)
json_spans = st.fixed_dictionaries(
    {
        "traceId": json_trace_ids,
        "spanId": json_span_ids,
        "name": _mostly(texts, json_values),
        "startTimeUnixNano": json_times,
        "endTimeUnixNano": json_times,
    },
    optional={
        "parentSpanId": json_ids,
        "kind": small_ints,
        "attributes": json_attributes,
        "events": _mostly(
            st.lists(
                _mostly(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "name": texts,
                            "timeUnixNano": json_times,
                            "attributes": json_attributes,
                        },
                    ),
                    json_values,
                ),
                max_size=2,
            ),
            json_values,
        ),
        "links": st.lists(
            _mostly(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "traceId": json_ids,
                        "spanId": json_ids,
                        "attributes": json_attributes,
                    },
                ),
                json_values,
            ),
            max_size=2,
        ),
        "status": _mostly(
            st.fixed_dictionaries({}, optional={"code": small_ints, "message": texts}),
            json_values,
        ),
        "flags": small_ints,
        "droppedAttributesCount": small_ints,
    },
)
json_scope_spans = st.fixed_dictionaries(
    {"spans": _mostly(st.lists(json_spans, min_size=1, max_size=3), json_values)},
    optional={
        "scope": _mostly(
            st.fixed_dictionaries(
                {},
                optional={"name": texts, "version": texts, "attributes": json_attributes},
            ),
            json_values,
        ),
    },
)
json_resource_spans = st.fixed_dictionaries(
    {
        "scopeSpans": _mostly(
            st.lists(_mostly(json_scope_spans, json_values), max_size=2), json_values
        )
    },
    optional={
        "resource": _mostly(
            st.fixed_dictionaries({}, optional={"attributes": json_attributes}), json_values
        ),
    },
)
json_requests = _mostly(
    st.fixed_dictionaries(
        {
            "resourceSpans": _mostly(
                st.lists(_mostly(json_resource_spans, json_values), max_size=2), json_values
            )
        }
    ),
    json_values,
)


def _dumps(doc) -> bytes:
    """orjson writes neither integers beyond 64 bits nor more than 254 levels; the json
    module does both (as a client might)."""
    import json
    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)
    try:
        return json.dumps(doc).encode()
    finally:
        sys.setrecursionlimit(old)


@fuzz
@given(body=st.binary(max_size=2000))
def test_random_bytes_as_json_are_never_a_500(ingest_secret, body):
    check(ingest_secret, body, JSON)


@fuzz
@given(doc=json_requests)
def test_random_otlp_json_trees_are_never_a_500(ingest_secret, doc):
    check(ingest_secret, _dumps(doc), JSON)


def test_the_generators_reach_the_store(ingest_secret):
    """The strategies above are not all refusals: a plain request from them is stored."""
    doc = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "00f067aa0ba902b7",
                                "name": "n\x00",
                                "startTimeUnixNano": NOW_NS,
                                "endTimeUnixNano": NOW_NS + 1,
                                "attributes": [{"key": "k", "value": {"intValue": 2**70}}],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    check(ingest_secret, _dumps(doc), JSON, fuzzing=False)
    assert Span.objects.get().name == "n\ufffd"
    assert orjson.loads(orjson.dumps(Span.objects.get().attributes)) == {"k": str(2**70)}
