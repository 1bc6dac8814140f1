#!/usr/bin/env python3
"""Time from an overspending span being accepted to its alert arriving, with the
default schedule, on the production stack: gunicorn, a Celery worker and beat on
Redis, PostgreSQL, and a webhook receiver on loopback.

    .venv/bin/python bench/alert_latency.py [--runs 7]

Each run creates an envelope scoped to its own agent (limit $0.50, one threshold at
100 %, webhook channel), waits a random part of a minute (so runs sample every phase
of the beat schedule), sends one run costing $1.00 through the real OTLP exporter,
notes when the 200 came back, and waits for the signed webhook. Prints every latency
and the median.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
DB = "agentops_bench_alerts"


class Arrivals:
    def __init__(self):
        self.by_envelope: dict[str, float] = {}
        self.cond = threading.Condition()

    def handler(self):
        arrivals = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                now = time.time()
                name = json.loads(body)["envelope"]["name"]
                with arrivals.cond:
                    arrivals.by_envelope.setdefault(name, now)
                    arrivals.cond.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        return H


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    p.add_argument("--port", type=int, default=8766)
    args = p.parse_args()

    subprocess.run(
        ["psql", f"{args.pg}/postgres", "-qc", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"],
        check=True,
    )
    subprocess.run(["psql", f"{args.pg}/postgres", "-qc", f"CREATE DATABASE {DB}"], check=True)
    var = Path(tempfile.mkdtemp(prefix="agentops-bench-alerts-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"{args.pg}/{DB}",
        "CELERY_BROKER_URL": args.redis,
        "AGENTOPS_ENV": "production",
        # Plain HTTP on loopback: no HTTPS redirect, cookies without the Secure flag.
        "SECURE_COOKIES": "false",
        "SECRET_KEY": "bench-only-secret-key-not-used-elsewhere-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1",
        "ALERTS_ALLOW_PRIVATE_URLS": "true",
        "VAR_DIR": str(var),
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "agentops_site.settings",
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    subprocess.run(["redis-cli", "-u", args.redis, "FLUSHDB"], check=True, capture_output=True)

    from budgets.models import BudgetEnvelope, Channel
    from traces.services import ingest_key_create, project_create

    project = project_create(slug="bench-alerts")
    key = ingest_key_create(project=project).secret

    arrivals = Arrivals()
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), arrivals.handler())
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    channel = Channel.objects.create(
        project=project,
        name="bench hook",
        kind="webhook",
        config={"url": hook, "secret": "bench-secret-0123456789"},
    )

    celery = [PY, "-m", "celery", "-A", "agentops_site"]
    procs = [
        subprocess.Popen(
            [
                PY, "-m", "gunicorn", "-c", "python:agentops_site.gunicorn_conf",
                "--log-level", "warning", "agentops_site.asgi:application",
            ],
            cwd=ROOT, start_new_session=True,
            env={**env, "BIND": f"127.0.0.1:{args.port}", "WEB_CONCURRENCY": "2",
                 "ACCESS_LOG": ""},
        ),
        subprocess.Popen(
            [*celery, "worker", "--loglevel", "WARNING", "--concurrency", "2"],
            cwd=ROOT, env=env, start_new_session=True,
        ),
        subprocess.Popen(
            [*celery, "beat", "--loglevel", "WARNING"], cwd=ROOT, env=env, start_new_session=True
        ),
    ]  # fmt: skip
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{args.port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        from tests.otlp_client import record

        exporter = OTLPSpanExporter(
            endpoint=f"http://127.0.0.1:{args.port}/v1/traces",
            headers={"authorization": f"Bearer {key}"},
        )
        rng = random.Random(7)
        latencies = []
        for i in range(args.runs):
            agent = f"bench-agent-{i}"
            envelope = BudgetEnvelope.objects.create(
                project=project,
                name=f"bench {i}",
                agent=agent,
                metric="cost_usd",
                limit="0.50",
                period="month",
                thresholds=[100],
                forecast=False,
            )
            envelope.channels.add(channel)
            time.sleep(rng.uniform(0, 60))

            def build(tracer, agent=agent):
                attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent}
                llm = {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 10,
                    "gen_ai.usage.output_tokens": 10,
                    "gen_ai.usage.cost": 1.0,
                }
                with (
                    tracer.start_as_current_span(f"invoke_agent {agent}", attributes=attrs),
                    tracer.start_as_current_span("chat", attributes=llm),
                ):
                    pass

            spans = record(build)
            exporter.export(spans)
            accepted = time.time()
            with arrivals.cond:
                arrivals.cond.wait_for(lambda n=envelope.name: n in arrivals.by_envelope, 300)
            got = arrivals.by_envelope.get(envelope.name)
            latency = (got - accepted) if got else float("nan")
            latencies.append(latency)
            print(f"run {i + 1}: alert {latency:.1f} s after the span was accepted", flush=True)
        print(
            f"\nmedian accepted → alert delivered: {statistics.median(latencies):.1f} s "
            f"over {len(latencies)} runs (min {min(latencies):.1f}, max {max(latencies):.1f})"
        )
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=20)
        receiver.shutdown()


if __name__ == "__main__":
    main()
