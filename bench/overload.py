#!/usr/bin/env python3
"""Backpressure: 32 exporters sending as fast as they can, and a person using the console.

    .venv/bin/python bench/overload.py                   # the shipped server, 3 runs
    .venv/bin/python bench/overload.py --server sync     # gunicorn sync workers, to compare

Each run: a fresh PostgreSQL database, a project and key, a staff login, the server
started as in production (bench/_server.py) with --workers processes, a few hundred
traces so that the trace list has rows. Then the shared load generator sends with
--concurrency connections for --duration seconds (closed loop: each connection sends
again as soon as it is answered; 429/503 are retried after Retry-After), while two
probes request `/healthz` and the trace list (logged in) every --probe-every seconds.

Reports, per run and as medians over the runs: p50/p99/max of each probe, the statuses
ingestion was answered with, stored spans/s, and whether every accepted span was stored.

Needs PostgreSQL at --pg and the load generator at ../shared/bench/otlp_load.py.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import PY, ROOT, start


def sh(*cmd, env=None, capture=False):
    return subprocess.run(
        [str(c) for c in cmd], cwd=ROOT, env=env, check=True, capture_output=capture, text=True
    )


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def login(base: str, username: str, password: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/accounts/login/", timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": token}
    ).encode()
    request = urllib.request.Request(
        f"{base}/accounts/login/", data=data, headers={"Referer": f"{base}/accounts/login/"}
    )
    opener.open(request, timeout=30)
    if not any(c.name == "sessionid" for c in jar):
        raise SystemExit("login failed")
    return opener


def probe(opener, url: str, every: float, stop: threading.Event, out: list) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            response = opener.open(url, timeout=60)
            response.read()
            status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = "error"
        out.append((time.perf_counter() - t0, status))
        stop.wait(every)


def load(args, key: str, *, traces: int, concurrency: int, duration: float = 0) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as report_file:
        cmd = [
            PY, args.load_generator, "--endpoint", f"http://127.0.0.1:{args.port}/v1/traces",
            "--traces", str(traces), "--spans-per-batch", "100",
            "--concurrency", str(concurrency), "--header", f"Authorization: Bearer {key}",
            "--max-retries", "20", "--report-json", report_file.name, "--quiet",
        ]  # fmt: skip
        if duration:
            cmd += ["--duration", str(duration)]
        subprocess.run(cmd, check=False)
        return json.loads(Path(report_file.name).read_text())


def one_run(args, run: int) -> dict:
    dbname = "agentops_bench_overload"
    pg = args.pg
    sh("psql", f"{pg}/postgres", "-qtAc", f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    sh("psql", f"{pg}/postgres", "-qtAc", f"CREATE DATABASE {dbname}")
    env = {
        **os.environ,
        "DATABASE_URL": f"{pg}/{dbname}",
        "AGENTOPS_ENV": "production",
        "SECRET_KEY": "bench-only-secret-key-not-used-elsewhere-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Plain HTTP on loopback: no HTTPS redirect, cookies without the Secure flag.
        "SECURE_COOKIES": "false",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SUPERUSER_PASSWORD": "bench-password-0123",
        # Production serves collected, hashed static files (the pages link them).
        "STATIC_ROOT": str(Path(tempfile.gettempdir()) / "agentops-bench-static"),
    }
    sh(PY, "manage.py", "migrate", "-v0", env=env)
    sh(PY, "manage.py", "collectstatic", "--noinput", "-v0", env=env)
    sh(PY, "manage.py", "createsuperuser", "--noinput", "--username", "bench",
       "--email", "bench@example.com", env=env)  # fmt: skip
    key = sh(
        PY, "manage.py", "createproject", "overload", "--admin", "bench", env=env, capture=True
    ).stdout.splitlines()[-1]
    server = start(server=args.server, port=args.port, workers=args.workers, env=env)
    base = f"http://127.0.0.1:{args.port}"
    try:
        warmup = load(args, key, traces=300, concurrency=2)  # rows for the trace list
        opener = login(base, "bench", "bench-password-0123")
        stop = threading.Event()
        health: list = []
        pages: list = []
        plain = urllib.request.build_opener()
        probes = [
            threading.Thread(
                target=probe, args=(plain, f"{base}/healthz", args.probe_every, stop, health)
            ),
            threading.Thread(
                target=probe, args=(opener, f"{base}/traces/", args.probe_every, stop, pages)
            ),
        ]
        for t in probes:
            t.start()
        report = load(
            args, key, traces=args.traces, concurrency=args.concurrency, duration=args.duration
        )
        stop.set()
        for t in probes:
            t.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    stored = int(
        sh("psql", f"{pg}/{dbname}", "-qtAc", "SELECT count(*) FROM traces_span", capture=True)
        .stdout.strip()
    )  # fmt: skip
    elapsed = report.get("elapsed_s") or 0

    def summary(samples):
        times = [t * 1000 for t, _ in samples]
        statuses: dict = {}
        for _, s in samples:
            statuses[str(s)] = statuses.get(str(s), 0) + 1
        return {
            "n": len(samples),
            "p50_ms": round(quantile(times, 0.5), 1),
            "p99_ms": round(quantile(times, 0.99), 1),
            "max_ms": round(max(times, default=float("nan")), 1),
            "statuses": statuses,
        }

    return {
        "run": run,
        "server": args.server,
        "healthz": summary(health),
        "trace_list": summary(pages),
        "ingest_statuses": report.get("status_counts"),
        "ingest_p99_ms": report.get("latency_ms", {}).get("p99"),
        "spans_accepted": report.get("spans_accepted"),
        # The warm-up traces were stored too; they are not part of the rate.
        "spans_stored_total": stored,
        "all_accepted_stored": stored
        == (report.get("spans_accepted") or 0) + (warmup.get("spans_accepted") or 0),
        "accepted_spans_per_s": round((report.get("spans_accepted") or 0) / elapsed)
        if elapsed
        else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--server", default="asgi", choices=["asgi", "sync"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=32, help="exporter connections")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    p.add_argument("--traces", type=int, default=30000, help="traces prepared (upper bound)")
    p.add_argument("--probe-every", type=float, default=0.2)
    p.add_argument("--port", type=int, default=8766)
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

    def med(path):
        values = [r[path[0]][path[1]] for r in results]
        return statistics.median(values)

    print(f"\nmedians over {len(results)} runs ({args.server}, {args.workers} workers, "
          f"{args.concurrency} exporters):")  # fmt: skip
    for probe_name in ("healthz", "trace_list"):
        print(
            f"  {probe_name:<10} p50 {med((probe_name, 'p50_ms')):7.1f} ms   "
            f"p99 {med((probe_name, 'p99_ms')):7.1f} ms   max {med((probe_name, 'max_ms')):7.1f} ms"
        )
    rates = [r["accepted_spans_per_s"] or 0 for r in results]
    print(f"  ingestion  {statistics.median(rates):,.0f} accepted spans/s; statuses per run: "
          + "; ".join(json.dumps(r["ingest_statuses"]) for r in results))  # fmt: skip
    if not all(r["all_accepted_stored"] for r in results):
        print("ACCEPTED BUT NOT STORED in runs:",
              [r["run"] for r in results if not r["all_accepted_stored"]])  # fmt: skip
        sys.exit(1)
    print("  every span answered 200 was stored")


if __name__ == "__main__":
    main()
