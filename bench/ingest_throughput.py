#!/usr/bin/env python3
"""Ingestion throughput: the shared OTLP load generator against the console served as in
production (gunicorn with uvicorn workers, bench/_server.py) on PostgreSQL.

    .venv/bin/python bench/ingest_throughput.py                 # 3 runs, defaults below
    .venv/bin/python bench/ingest_throughput.py --runs 5 --workers 4 --traces 3000
    .venv/bin/python bench/ingest_throughput.py --server sync     # gunicorn sync workers

Each run: a fresh database, migrations, a project and key, the server started, then
`otlp_load.py` (100-span gzip protobuf requests, concurrency 4). After the run the
database is counted: every span the generator saw accepted must be stored (a 200 is
only sent after the transaction commits, so there is no lag to wait for). Reports
stored spans/s per run and the median, and the peak resident memory of each server
process (sampled from /proc every 100 ms).

Needs: PostgreSQL reachable at --pg (default postgres://postgres@127.0.0.1:5432), and
the shared load generator at ../shared/bench/otlp_load.py (or --load-generator).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import PY, ROOT, start


def sh(*cmd, env=None, capture=False):
    return subprocess.run(
        [str(c) for c in cmd], cwd=ROOT, env=env, check=True, capture_output=capture, text=True
    )


def psql(pg: str, sql: str) -> str:
    return sh("psql", pg + "/postgres", "-qtAc", sql, capture=True).stdout.strip()


def rss_of_tree(pid: int) -> dict[int, int]:
    """RSS in bytes of pid and its children (gunicorn master + workers)."""
    out = {}
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[p] = int(line.split()[1]) * 1024
        except OSError:
            pass
    return out


def cpu_of_tree(pid: int) -> float:
    """CPU seconds (user + system) used so far by pid and its children."""
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / ticks


def one_run(args, run: int) -> dict:
    dbname = "agentops_bench"
    psql(args.pg, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    psql(args.pg, f"CREATE DATABASE {dbname}")
    env = {
        **os.environ,
        "DATABASE_URL": f"{args.pg}/{dbname}",
        "AGENTOPS_ENV": "production",
        # Plain HTTP on loopback: no HTTPS redirect, cookies without the Secure flag.
        "SECURE_COOKIES": "false",
        "SECRET_KEY": "bench-only-secret-key-not-used-elsewhere-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
    }
    sh(PY, "manage.py", "migrate", "-v0", env=env)
    key = sh(
        PY, "manage.py", "createproject", f"bench{run}", env=env, capture=True
    ).stdout.splitlines()[-1]

    server = start(
        server=args.server, port=args.port, workers=args.workers, env=env, preload=args.preload
    )
    peak: dict[int, int] = {}
    stop = threading.Event()

    def sample():
        while not stop.wait(0.1):
            for p, rss in rss_of_tree(server.pid).items():
                peak[p] = max(peak.get(p, 0), rss)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        sampler.start()
        cpu_before = cpu_of_tree(server.pid)
        with tempfile.NamedTemporaryFile(suffix=".json") as report_file:
            cmd = [
                PY,
                args.load_generator,
                "--endpoint",
                f"http://127.0.0.1:{args.port}/v1/traces",
                "--traces",
                str(args.traces),
                "--spans-per-batch",
                "100",
                "--concurrency",
                str(args.concurrency),
                "--header",
                f"Authorization: Bearer {key}",
                "--report-json",
                report_file.name,
                "--quiet",
            ]
            if args.json:
                cmd.append("--json")
            subprocess.run(cmd, check=False)
            report = json.loads(Path(report_file.name).read_text())
        cpu_used = cpu_of_tree(server.pid) - cpu_before
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=20)

    stored = int(
        sh(
            "psql",
            f"{args.pg}/{dbname}",
            "-qtAc",
            "SELECT count(*) FROM traces_span",
            capture=True,
        ).stdout.strip()
    )
    accepted = report.get("spans_accepted")
    elapsed = report.get("elapsed_s") or report.get("duration_s")
    rate = stored / elapsed if elapsed else float("nan")
    master = server.pid
    workers = {p: v for p, v in peak.items() if p != master}
    return {
        "run": run,
        "spans_sent": report.get("spans_sent"),
        "spans_accepted": accepted,
        "spans_stored": stored,
        "elapsed_s": elapsed,
        "stored_spans_per_s": rate,
        # Server CPU per stored span: steadier than spans/s on a shared, noisy machine.
        "server_cpu_us_per_span": round(cpu_used / stored * 1e6, 1) if stored else None,
        "p50_ms": report.get("latency_ms", {}).get("p50"),
        "p99_ms": report.get("latency_ms", {}).get("p99"),
        "statuses": report.get("status_counts"),
        "peak_rss_worker_mb": max(workers.values(), default=0) / 2**20,
        "peak_rss_master_mb": peak.get(master, 0) / 2**20,
        "peak_rss_total_mb": sum(peak.values()) / 2**20,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--traces", type=int, default=2000, help="agent runs per run (~9.5 spans each)")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--workers", type=int, default=2, help="server worker processes")
    p.add_argument(
        "--server",
        default="asgi",
        choices=["asgi", "sync"],
        help="asgi: the shipped server (uvicorn workers); sync: gunicorn sync workers (WSGI)",
    )
    p.add_argument("--json", action="store_true", help="OTLP/JSON instead of protobuf")
    p.add_argument(
        "--preload",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="gunicorn --preload for --server sync (the asgi configuration always preloads)",
    )
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument(
        "--load-generator", default=str(ROOT.parent / "shared" / "bench" / "otlp_load.py")
    )
    args = p.parse_args()

    results = []
    for run in range(1, args.runs + 1):
        r = one_run(args, run)
        results.append(r)
        print(json.dumps(r), flush=True)
    rates = [r["stored_spans_per_s"] for r in results]
    lost = [r for r in results if r["spans_accepted"] != r["spans_stored"]]
    print(
        f"\nmedian stored spans/s over {len(rates)} runs: {statistics.median(rates):,.0f} "
        f"(runs: {', '.join(f'{x:,.0f}' for x in rates)})"
    )
    cpu = [r["server_cpu_us_per_span"] for r in results]
    print(f"server CPU per stored span: median {statistics.median(cpu)} µs (runs: {cpu})")
    print(
        "peak RSS per worker process: "
        + ", ".join(f"{r['peak_rss_worker_mb']:.0f} MB" for r in results)
        + "; all server processes together: "
        + ", ".join(f"{r['peak_rss_total_mb']:.0f} MB" for r in results)
    )
    if lost:
        print("ACCEPTED BUT NOT STORED in runs:", [r["run"] for r in lost])
        sys.exit(1)


if __name__ == "__main__":
    main()
