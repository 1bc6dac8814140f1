#!/usr/bin/env python3
"""Ingestion throughput: the shared OTLP load generator against the console served as in
production (gunicorn with uvicorn workers, bench/_server.py) on PostgreSQL.

    .venv/bin/python bench/ingest_throughput.py                 # 3 runs, defaults below
    .venv/bin/python bench/ingest_throughput.py --runs 5 --workers 4 --traces 3000
    .venv/bin/python bench/ingest_throughput.py --server sync     # gunicorn sync workers
    .venv/bin/python bench/ingest_throughput.py --detectors       # with the controls' work
    .venv/bin/python bench/ingest_throughput.py --compare         # without and with, alternating
    .venv/bin/python bench/ingest_throughput.py --workers 1 --span-store chdb  # in ClickHouse

Each run: a fresh database, migrations, a project and key, the server started, then
`otlp_load.py` (100-span gzip protobuf requests, concurrency 4). After the run the
database is counted: every span the generator saw accepted must be stored (a 200 is
only sent after the transaction commits, so there is no lag to wait for). Reports
stored spans/s per run and the median, and the peak resident memory of each server
process (sampled from /proc every 100 ms).

`--detectors` measures ingestion while the controls' background work runs: a real
Celery worker (2 processes, as `manage.py up` starts it) on Redis (--redis) and, in
place of the beat (which would send other tasks too), a ticker in this process that
sends `controls.tasks.check_contracts` and `controls.tasks.detect_findings` through the
broker as the beat schedule does (every 30 s and 60 s, the first at once; each send
expires at the next), or every --detect-every seconds. Give the run at least a minute
(--traces 30000) so that both tasks run during it. The
project gets contracts for the load generator's tools, the side-effecting ones
requiring an idempotency key, so the detectors have side-effecting calls to read.
Reported with each run: ticks sent, contract checks and findings stored, and the
worker's CPU seconds.

Needs: PostgreSQL reachable at --pg (default postgres://postgres@127.0.0.1:5432), and
the shared load generator at ../shared/bench/otlp_load.py (or --load-generator); Redis
for --detectors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
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


# The load generator's tools (../shared/bench/otlp_load.py, SERVICES): the ones that change
# something are side-effecting and require a key; the others are read-only.
SIDE_EFFECTING = ["issue_refund", "send_email", "apply_patch", "run_sql", "draft_reply"]
READ_ONLY = ["lookup_order", "search_kb", "get_customer", "web_search", "fetch_url", "read_pdf",
             "vector_search", "read_file", "run_tests", "grep_repo", "crm_lookup",
             "calendar_find_slot", "list_tables", "plot_chart", "final_result"]  # fmt: skip
DETECTOR_TASKS = ("controls.tasks.check_contracts", "controls.tasks.detect_findings")


def beat_period(env: dict, task: str) -> float:
    """The period of `task` in the beat schedule (CELERY_BEAT_SCHEDULE), in seconds."""
    code = (
        "from django.conf import settings; print(next(e['schedule'] for e in "
        f"settings.CELERY_BEAT_SCHEDULE.values() if e['task'] == {task!r}))"
    )
    out = sh(PY, "manage.py", "shell", "-v0", "-c", code, env=env, capture=True).stdout
    return float(out.split()[-1])


def register_contracts(env: dict, project: str) -> None:
    contracts = [
        {"name": name, "version": "1.0.0", "side_effects": True, "requires_idempotency_key": True}
        for name in SIDE_EFFECTING
    ] + [{"name": name, "version": "1.0.0"} for name in READ_ONLY]
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump({"project": project, "contracts": contracts}, f)
        f.flush()
        sh(PY, "manage.py", "contracts", "apply", f.name, env=env, capture=True)


class Detectors:
    """A Celery worker, and a ticker sending the detector tasks through the broker."""

    def __init__(self, args, env: dict, first_span):
        # Each task's period: --detect-every, else its own in the beat schedule.
        self.periods = {
            name: args.detect_every or beat_period(env, name) for name in args.detector_tasks
        }
        self.first_span = first_span
        self.queue = f"bench-{uuid.uuid4().hex[:8]}"
        self.env = {**env, "CELERY_BROKER_URL": args.redis, "CELERY_QUEUE": self.queue}
        self.ticks = 0
        self.killed = False
        self._stop = threading.Event()
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log")  # noqa: SIM115

    def __enter__(self):
        from celery import Celery

        self.worker = subprocess.Popen(
            [PY, "-m", "celery", "-A", "agentops_site", "worker", "--loglevel", "INFO",
             "--concurrency", "2", "--without-heartbeat", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.client = Celery("bench-ticker", broker=self.env["CELERY_BROKER_URL"])
        # Outside the measurement: the worker's start-up, until it answers a ping.
        deadline = time.monotonic() + 60
        while not self.client.control.ping(timeout=1):
            if time.monotonic() > deadline:
                raise SystemExit("the Celery worker did not come up")
        self.cpu_before = cpu_of_tree(self.worker.pid)
        self._thread = threading.Thread(target=self._tick, daemon=True)
        self._thread.start()
        return self

    def _tick(self):
        # The load generator encodes all its requests before it sends one: tick from the
        # first stored span, so that the ticks fall inside the measurement.
        while not self.first_span():
            if self._stop.wait(0.5):
                return
        due = dict.fromkeys(self.periods, time.monotonic())
        while not self._stop.is_set():
            for name, period in self.periods.items():
                if time.monotonic() >= due[name]:
                    # Expiring at the next send, as the beat's entries do.
                    self.client.send_task(name, queue=self.queue, expires=period)
                    due[name] += period
                    self.ticks += 1
            self._stop.wait(max(0.0, min(due.values()) - time.monotonic()))

    def stop(self) -> float:
        """Stop ticking; the worker's CPU seconds since the ticks began."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return cpu_of_tree(self.worker.pid) - self.cpu_before

    def runs(self) -> dict[str, list[float]]:
        """Seconds each finished detector task took, from the worker's log (a task still
        running 30 s after the load ended is killed and not counted: see `killed`)."""
        self.log.seek(0)
        done: dict[str, list[float]] = {name: [] for name in DETECTOR_TASKS}
        for line in self.log:
            for name in DETECTOR_TASKS:
                if f"Task {name}[" in line and " succeeded in " in line:
                    done[name].append(float(line.split(" succeeded in ")[1].split("s:")[0]))
        return done

    def __exit__(self, *exc):
        self.stop()
        self.worker.terminate()  # a warm shutdown: running tasks finish
        try:
            self.worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.killed = True
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait()
        self.client.close()


# Spans in the configured store, counted by a process of its own after the server stopped.
COUNT_STORE = "from traces.spanstore import span_store; print(span_store().count())"


def count(args, dbname: str, table: str) -> int:
    out = sh("psql", f"{args.pg}/{dbname}", "-qtAc", f"SELECT count(*) FROM {table}", capture=True)
    return int(out.stdout.strip())


def load(args, key: str) -> dict:
    """Run the load generator; its JSON report."""
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
        return json.loads(Path(report_file.name).read_text())


def one_run(args, run: int) -> dict:
    dbname = args.db
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
    chdb_dir = None
    if args.span_store == "chdb":
        # The ClickHouse engine in each server process: chDB allows one process per data
        # directory, so this needs --workers 1 (a ClickHouse server has no such limit).
        chdb_dir = tempfile.mkdtemp(prefix="agentops-bench-chdb-")
        env["SPAN_STORE_URL"] = f"chdb://{chdb_dir}"
        sh(PY, "manage.py", "span_store", "--init", env=env)
    sh(PY, "manage.py", "migrate", "-v0", env=env)
    key = sh(
        PY, "manage.py", "createproject", f"bench{run}", env=env, capture=True
    ).stdout.splitlines()[-1]
    if args.detectors:
        register_contracts(env, f"bench{run}")

    detectors = contextlib.nullcontext()
    if args.detectors:
        detectors = Detectors(args, env, lambda: count(args, dbname, "traces_span") > 0)
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
    worker_cpu = 0.0
    try:
        sampler.start()
        with detectors:
            cpu_before = cpu_of_tree(server.pid)
            report = load(args, key)
            cpu_used = cpu_of_tree(server.pid) - cpu_before
            if args.detectors:
                worker_cpu = detectors.stop()
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=20)

    if chdb_dir is not None:
        counted = sh(PY, "manage.py", "shell", "-c", COUNT_STORE, env=env, capture=True)
        stored = int(counted.stdout.split()[-1])
        shutil.rmtree(chdb_dir, ignore_errors=True)
    else:
        stored = count(args, dbname, "traces_span")
    accepted = report.get("spans_accepted")
    elapsed = report.get("elapsed_s") or report.get("duration_s")
    rate = stored / elapsed if elapsed else float("nan")
    master = server.pid
    workers = {p: v for p, v in peak.items() if p != master}
    result = {
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
    if args.detectors:
        runs = detectors.runs()
        result.update(
            detector_ticks=detectors.ticks,
            check_runs=len(runs[DETECTOR_TASKS[0]]),
            check_s=round(sum(runs[DETECTOR_TASKS[0]]), 2),
            detect_runs=len(runs[DETECTOR_TASKS[1]]),
            detect_s=round(sum(runs[DETECTOR_TASKS[1]]), 2),
            worker_killed=detectors.killed,
            contract_checks=count(args, dbname, "controls_contractcheck"),
            findings=count(args, dbname, "controls_finding"),
            worker_cpu_s=round(worker_cpu, 1),
        )
    return result


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
    p.add_argument(
        "--detectors",
        action="store_true",
        help="run the contract checks and the idempotency detectors during the measurement",
    )
    p.add_argument(
        "--detect-every",
        type=float,
        default=0,
        help="seconds between sends of each detector task (default: its beat schedule)",
    )
    p.add_argument(
        "--detector-tasks",
        type=lambda text: [f"controls.tasks.{t.strip()}" for t in text.split(",")],
        default=list(DETECTOR_TASKS),
        help="which to send, e.g. detect_findings (default: check_contracts,detect_findings)",
    )
    p.add_argument("--redis", default="redis://127.0.0.1:6379/14", help="broker for --detectors")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="agentops_bench", help="database (dropped and created)")
    p.add_argument(
        "--span-store",
        choices=("relational", "chdb"),
        default="relational",
        help="where spans go: traces_span, or ClickHouse in process (chDB; needs --workers 1)",
    )
    p.add_argument(
        "--load-generator", default=str(ROOT.parent / "shared" / "bench" / "otlp_load.py")
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="alternate runs without and with --detectors (--runs of each); both medians",
    )
    args = p.parse_args()
    if args.span_store == "chdb" and args.workers != 1:
        p.error("--span-store chdb needs --workers 1 (one chDB engine per data directory)")

    modes = [False, True] if args.compare else [args.detectors]
    results: dict[bool, list[dict]] = {mode: [] for mode in modes}
    for run in range(1, args.runs + 1):
        # Alternating keeps the two sets' share of the machine's noise alike.
        for mode in modes:
            r = one_run(argparse.Namespace(**{**vars(args), "detectors": mode}), run)
            r["detectors"] = mode
            results[mode].append(r)
            print(json.dumps(r), flush=True)
    lost = [r for rs in results.values() for r in rs if r["spans_accepted"] != r["spans_stored"]]
    for mode, rs in results.items():
        summarize(rs, "with the detectors" if mode else "without the detectors")
    if lost:
        print("ACCEPTED BUT NOT STORED in runs:", [r["run"] for r in lost])
        sys.exit(1)


def summarize(results: list[dict], label: str) -> None:
    rates = [r["stored_spans_per_s"] for r in results]
    print(
        f"\n{label}: median stored spans/s over {len(rates)} runs: "
        f"{statistics.median(rates):,.0f} (runs: {', '.join(f'{x:,.0f}' for x in rates)})"
    )
    cpu = [r["server_cpu_us_per_span"] for r in results]
    print(f"server CPU per stored span: median {statistics.median(cpu)} µs (runs: {cpu})")
    print(
        "peak RSS per worker process: "
        + ", ".join(f"{r['peak_rss_worker_mb']:.0f} MB" for r in results)
        + "; all server processes together: "
        + ", ".join(f"{r['peak_rss_total_mb']:.0f} MB" for r in results)
    )
    if "detector_ticks" in results[0]:
        print(
            "detector work per run (sends; check_contracts runs/seconds; detect_findings "
            "runs/seconds; worker CPU s): "
            + "; ".join(
                f"{r['detector_ticks']}; {r['check_runs']}/{r['check_s']}; "
                f"{r['detect_runs']}/{r['detect_s']}; {r['worker_cpu_s']}"
                for r in results
            )
        )


if __name__ == "__main__":
    main()
