#!/usr/bin/env python3
"""Ingestion throughput over OTLP/gRPC, measured like bench/ingest_throughput.py (HTTP).

    .venv/bin/python bench/ingest_grpc.py                    # 3 runs, defaults below
    .venv/bin/python bench/ingest_grpc.py --runs 5 --workers 4 --traces 3000

Each run: a fresh PostgreSQL database, migrations, a project and key, then
`manage.py otlp_grpc` started in its own process (as docker-compose runs it) and the
shared load generator's corpus (../shared/bench/otlp_load.py: the same seeded agent
traces, 100-span requests) sent to TraceService/Export from --concurrency threads, one
channel each, gzip-compressed by gRPC. RESOURCE_EXHAUSTED and UNAVAILABLE are retried
after their RetryInfo delay, as exporters do. Afterwards the database is counted: every
span answered OK must be stored. Reports stored spans/s per run (stored spans / time
from the first request to the last answer), the median, and the receiver's CPU per span.

Needs PostgreSQL at --pg (default postgres://postgres@127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import PY, ROOT
from ingest_throughput import cpu_of_tree, psql, sh

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RETRIED = {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}


def load_generator(path: str):
    spec = importlib.util.spec_from_file_location("otlp_load", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["otlp_load"] = module  # its dataclasses look themselves up here
    spec.loader.exec_module(module)
    return module


def corpus(args) -> list:
    """The generator's requests, uncompressed (gRPC compresses on the channel)."""
    gen = load_generator(args.load_generator)
    gen_args = gen.parse_args(
        ["--traces", str(args.traces), "--spans-per-batch", "100", "--no-gzip"]
    )
    batches, _ = gen.generate_batches(gen_args)
    return batches


def retry_delay(error: grpc.RpcError) -> float:
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return 1.0


def send(address: str, key: str, batches: list, concurrency: int) -> dict:
    lock = threading.Lock()
    todo = list(reversed(batches))
    stats = {"accepted": 0, "rejected": 0, "failed": 0, "retries": 0, "latencies": []}
    metadata = [("authorization", f"Bearer {key}")]

    def worker():
        with grpc.insecure_channel(address, compression=grpc.Compression.Gzip) as channel:
            export = channel.unary_unary(
                EXPORT,
                request_serializer=None,
                response_deserializer=ExportTraceServiceResponse.FromString,
            )
            while True:
                with lock:
                    if not todo:
                        return
                    batch = todo.pop()
                for _attempt in range(6):
                    started = time.perf_counter()
                    try:
                        response = export(batch.body, metadata=metadata, timeout=30)
                    except grpc.RpcError as exc:
                        if exc.code() not in RETRIED:
                            with lock:
                                stats["failed"] += 1
                            break
                        with lock:
                            stats["retries"] += 1
                        time.sleep(retry_delay(exc))
                        continue
                    rejected = response.partial_success.rejected_spans
                    with lock:
                        stats["latencies"].append(time.perf_counter() - started)
                        stats["accepted"] += batch.spans - rejected
                        stats["rejected"] += rejected
                    break
                else:
                    with lock:
                        stats["failed"] += 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats["elapsed_s"] = time.monotonic() - started
    return stats


def one_run(args, run: int, batches: list) -> dict:
    dbname = args.db
    psql(args.pg, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    psql(args.pg, f"CREATE DATABASE {dbname}")
    env = {
        **os.environ,
        "DATABASE_URL": f"{args.pg}/{dbname}",
        "AGENTOPS_ENV": "production",
        "SECRET_KEY": "bench-only-secret-key-not-used-elsewhere-0123456789",
        "LOG_LEVEL": "WARNING",
    }
    sh(PY, "manage.py", "migrate", "-v0", env=env)
    key = sh(
        PY, "manage.py", "createproject", f"bench{run}", env=env, capture=True
    ).stdout.splitlines()[-1]
    server = subprocess.Popen(
        [PY, "manage.py", "otlp_grpc", "--bind", f"127.0.0.1:{args.port}",
         "--workers", str(args.workers)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = server.stdout.readline()
        address = re.search(r"listening on (\S+)", line)
        if not address:
            raise SystemExit(f"the receiver did not start: {line!r}")
        cpu_before = cpu_of_tree(server.pid)
        stats = send(address.group(1), key, batches, args.concurrency)
        cpu_used = cpu_of_tree(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait(timeout=20)
    stored = int(
        sh("psql", f"{args.pg}/{dbname}", "-qtAc", "SELECT count(*) FROM traces_span",
           capture=True).stdout.strip()
    )  # fmt: skip
    lat = sorted(stats["latencies"])
    return {
        "run": run,
        "spans_sent": sum(b.spans for b in batches),
        "spans_accepted": stats["accepted"],
        "spans_stored": stored,
        "failed_requests": stats["failed"],
        "retries": stats["retries"],
        "elapsed_s": round(stats["elapsed_s"], 2),
        "stored_spans_per_s": stored / stats["elapsed_s"],
        "server_cpu_us_per_span": round(cpu_used / stored * 1e6, 1) if stored else None,
        "p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
        "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 1) if lat else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--traces", type=int, default=2000, help="agent runs per run (~9.5 spans each)")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--workers", type=int, default=4, help="the receiver's --workers")
    p.add_argument("--port", type=int, default=4417)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="agentops_bench", help="database (dropped and created)")
    p.add_argument(
        "--load-generator", default=str(ROOT.parent / "shared" / "bench" / "otlp_load.py")
    )
    args = p.parse_args()

    batches = corpus(args)
    results = []
    for run in range(1, args.runs + 1):
        r = one_run(args, run, batches)
        results.append(r)
        print(json.dumps(r), flush=True)
        # Ids depend on the generator's start time only: each run has its own database.
    rates = [r["stored_spans_per_s"] for r in results]
    cpu = [r["server_cpu_us_per_span"] for r in results]
    print(
        f"\nOTLP/gRPC: median stored spans/s over {len(rates)} runs: "
        f"{statistics.median(rates):,.0f} (runs: {', '.join(f'{x:,.0f}' for x in rates)})"
    )
    print(f"receiver CPU per stored span: median {statistics.median(cpu)} µs (runs: {cpu})")
    lost = [r["run"] for r in results if r["spans_accepted"] != r["spans_stored"]]
    if lost:
        print("ACCEPTED BUT NOT STORED in runs:", lost)
        sys.exit(1)


if __name__ == "__main__":
    main()
