#!/usr/bin/env python3
"""Peak memory of one OTLP request at the limits: what a single worker can be made to hold.

    .venv/bin/python bench/ingest_memory.py                      # SQLite, settings' limits
    .venv/bin/python bench/ingest_memory.py --database-url postgres://postgres@127.0.0.1:5432/agentops_h1_bench
    .venv/bin/python bench/ingest_memory.py --decompressed-mib 16 --cases many-attributes

Each case builds a worst-case body within the limits (README "Limits"): as many spans,
attributes, events, characters or nested levels as the limits and the decompressed-size
limit allow, gzip-compressed as exporters send it. Each body is then decompressed,
decoded and ingested, exactly as the /v1/traces view does, by a fresh Python process whose
peak resident size (VmHWM; ru_maxrss where there is no /proc) is read before (Django
loaded) and after. The database is migrated once (SQLite in a temporary folder unless
--database-url is given); each case gets a new project.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")


# ------------------------------------------------------------------ wire helpers
# Bodies are written directly in the protobuf wire format: building a million
# KeyValue messages through the protobuf API would take longer than the measurement.


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _fixed64(field: int, value: int) -> bytes:
    return _varint(field << 3 | 1) + value.to_bytes(8, "little")


def _string_value(s: bytes) -> bytes:
    return _ld(1, s)  # AnyValue.string_value


def _kv(key: bytes, any_value: bytes) -> bytes:
    return _ld(1, key) + _ld(2, any_value)


def _span(i: int, rest: bytes, now: int) -> bytes:
    return (
        _ld(1, TRACE[:8] + (i // 65536).to_bytes(8, "big"))
        + _ld(2, (i + 1).to_bytes(8, "big"))
        + _ld(5, b"chat gpt-4o-mini")
        + _fixed64(7, now)
        + _fixed64(8, now + 1_000_000)
        + rest
    )


def _request(spans: list[bytes]) -> bytes:
    scope_spans = _ld(1, _ld(1, b"bench")) + b"".join(_ld(2, s) for s in spans)
    resource = _ld(1, _ld(1, _kv(b"service.name", _string_value(b"bench"))))
    return _ld(1, resource + _ld(2, scope_spans))


def _fill(per_span: bytes, budget: int, max_spans: int, now: int) -> list[bytes]:
    """As many spans carrying `per_span` as fit in `budget` bytes (and the span limit)."""
    size = len(_span(0, per_span, now)) + 4
    count = max(1, min(max_spans, budget // size))
    return [_span(i, per_span, now) for i in range(count)]


# ------------------------------------------------------------------ cases


def build_cases(limits, budget: int):
    """(name, encoding, body) of each case, built one at a time (they are large)."""
    now = time.time_ns()
    value = b"v"
    attrs = lambda n, v=value: b"".join(  # noqa: E731
        _ld(9, _kv(f"attr.{j}".encode(), _string_value(v))) for j in range(n)
    )

    # A large but ordinary batch: max spans, a dozen short GenAI attributes each.
    genai = attrs(12, b"gpt-4o-mini")
    yield ("max-spans", "protobuf", _request(_fill(genai, budget, limits.spans, now)))

    # Max spans × max attributes of one character: the most Python objects per byte.
    many = attrs(limits.attributes)
    yield ("max-attributes", "protobuf", _request(_fill(many, budget, limits.spans, now)))

    # Max-length values: 128 per span at the full length, until the body is full.
    long_value = b"x" * limits.value_length
    fit = max(1, min(limits.attributes, budget // (limits.value_length + 32) - 1))
    big = attrs(fit, long_value)
    yield ("max-value-length", "protobuf", _request(_fill(big, budget, limits.spans, now)))

    # Max events × max attributes per event.
    event = _ld(2, b"gen_ai.choice") + b"".join(
        _ld(3, _kv(f"e.{j}".encode(), _string_value(value))) for j in range(limits.event_attributes)
    )
    events = b"".join(_ld(11, _fixed64(1, now) + event) for _ in range(limits.events))
    yield ("max-events", "protobuf", _request(_fill(events, budget, limits.spans, now)))

    # Values nested to the depth limit (arrays of two), 128 per span.
    nested = _string_value(b"x")
    for _ in range(limits.depth):
        nested = _ld(5, _ld(1, nested) + _ld(1, _string_value(b"y")))
    deep = b"".join(_ld(9, _kv(f"d.{j}".encode(), nested)) for j in range(limits.attributes))
    yield ("max-depth", "protobuf", _request(_fill(deep, budget, limits.spans, now)))

    # One huge array of empty values inside one attribute (arrays have no count limit:
    # the decompressed size bounds them).
    items = _ld(1, b"") * max(1, (budget - 200) // 2 - 8)
    huge_array = _ld(9, _kv(b"array", _ld(5, items)))
    yield ("one-huge-array", "protobuf", _request([_span(0, huge_array, now)]))

    # Far more spans than the limit: the excess is counted, not decoded.
    tiny = b""
    yield ("spans-over-limit", "protobuf", _request(_fill(tiny, budget, 10**9, now)))

    # OTLP/JSON: orjson builds the whole document first, so JSON costs more per byte.
    yield ("json-max-attributes", "json", _json_body(limits, budget, now, limits.attributes))
    yield ("json-max-spans", "json", _json_body(limits, budget, now, 12))
    # The JSON twin of one-huge-array: "{}" items, each an empty dict in orjson's tree.
    array = b'{"key":"a","value":{"arrayValue":{"values":[' + b",".join(
        [b"{}"] * ((budget - 400) // 3)
    )
    one = (
        b'{"traceId":"%s","spanId":"00f067aa0ba902b7","name":"n","startTimeUnixNano":"%d",'
        b'"endTimeUnixNano":"%d","attributes":[%s]}}}]}'
    ) % (TRACE.hex().encode(), now, now + 1, array)
    yield (
        "json-one-huge-array",
        "json",
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[%s]}]}]}' % one,
    )


def _json_body(limits, budget: int, now: int, n_attrs: int) -> bytes:
    attributes = [{"key": f"attr.{j}", "value": {"stringValue": "v"}} for j in range(n_attrs)]
    one = {
        "traceId": TRACE.hex(),
        "spanId": "0" * 16,
        "name": "chat gpt-4o-mini",
        "kind": 3,
        "startTimeUnixNano": str(now),
        "endTimeUnixNano": str(now + 1_000_000),
        "attributes": attributes,
    }
    size = len(json.dumps(one, separators=(",", ":"))) + 1
    count = max(1, min(limits.spans, budget // size))
    spans = [dict(one, spanId=f"{i + 1:016x}") for i in range(count)]
    doc = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {}, "spans": spans}]}]}
    return json.dumps(doc, separators=(",", ":")).encode()


# ------------------------------------------------------------------ child


def _peak_kb() -> int:
    """Peak resident size of this process. Not ru_maxrss: Linux carries the parent's
    peak over fork + exec into it, and the parent holds the (large) bodies."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(path: str, encoding: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops_site.settings")
    import django

    django.setup()
    from django.conf import settings

    from traces import otlp
    from traces.ingest import span_batch_ingest
    from traces.models import Project

    body = Path(path).read_bytes()
    project = Project.objects.create(slug=f"mem-{os.getpid()}-{time.time_ns()}", name="mem")
    base = _peak_kb()
    t = time.perf_counter()
    raw = otlp.decompress(body, "gzip", limit=settings.OTLP_MAX_DECOMPRESSED_BYTES)
    del body
    content_type = otlp.PROTOBUF if encoding == "protobuf" else otlp.JSON
    spans = otlp.decode(raw, content_type)
    del raw
    result = span_batch_ingest(project_id=project.pk, spans=spans)
    seconds = time.perf_counter() - t
    peak = _peak_kb()
    print(
        json.dumps(
            {
                "base_kb": base,
                "peak_kb": peak,
                "seconds": seconds,
                "stored": result.stored,
                "rejected": result.rejected,
                "limited": sum(result.limited.values()),
            }
        )
    )


# ------------------------------------------------------------------ parent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--database-url", default="")
    p.add_argument(
        "--decompressed-mib", type=float, default=0, help="override OTLP_MAX_DECOMPRESSED_BYTES"
    )
    p.add_argument("--cases", default="", help="comma-separated subset of the cases")
    p.add_argument("--child", nargs=2, metavar=("BODY", "ENCODING"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(*args.child)
        return

    tmp = Path(tempfile.mkdtemp(prefix="ingest-memory-"))
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="agentops_site.settings", VAR_DIR=str(tmp))
    env["DATABASE_URL"] = args.database_url or f"sqlite:///{tmp / 'bench.sqlite3'}"
    if args.decompressed_mib:
        env["OTLP_MAX_DECOMPRESSED_BYTES"] = str(int(args.decompressed_mib * 1024 * 1024))
    os.environ.update(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)

    import django

    django.setup()
    from django.conf import settings

    from traces.otlp import Limits

    limits = Limits.from_settings()
    budget = settings.OTLP_MAX_DECOMPRESSED_BYTES - 1024
    print(
        f"limits: {limits}\ndecompressed limit: {settings.OTLP_MAX_DECOMPRESSED_BYTES:,} bytes, "
        f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}\n"
    )
    wanted = set(filter(None, args.cases.split(",")))
    header = (
        f"{'case':<22}{'gzip':>10}{'inflated':>11}{'stored':>8}{'rejected':>9}"
        f"{'limited':>10}{'base MB':>9}{'peak MB':>9}{'seconds':>9}"
    )
    print(header)
    print("-" * len(header))
    try:
        for name, encoding, raw in build_cases(limits, budget):
            if wanted and name not in wanted:
                continue
            body = gzip.compress(raw, compresslevel=6)
            path = tmp / f"{name}.gz"
            path.write_bytes(body)
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(path), encoding],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
            if out.returncode:
                print(f"{name:<22} failed:\n{out.stderr[-2000:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{name:<22}{len(body) / 1e6:>8.1f}MB{len(raw) / 1e6:>9.1f}MB"
                f"{r['stored']:>8}{r['rejected']:>9}{r['limited']:>10}"
                f"{r['base_kb'] / 1024:>9.0f}{r['peak_kb'] / 1024:>9.0f}{r['seconds']:>9.2f}"
            )
            path.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
