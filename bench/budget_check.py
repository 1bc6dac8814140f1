#!/usr/bin/env python3
"""Server time of `POST /api/budgets/check` for a project with 50 envelopes.

    .venv/bin/python bench/budget_check.py                 # PostgreSQL (default)
    .venv/bin/python bench/budget_check.py --sqlite        # SQLite file in /tmp
    .venv/bin/python bench/budget_check.py --calls 2000 --envelopes 50 --db agentops_bench_check

Data: the project of bench/evaluate_budgets.py (35 days of rollups, 100,000 traces) with
its mix of envelopes (cost, tokens, latency, error rate, per-run caps; agent, model,
service, user and session scopes), evaluated once. Then --calls checks through Django's
test Client with the project key, each for one of the five agents, a session, an
existing run and an estimated cost, the key cache on as in production. Timed around each
Client call, so the figures include the test Client's own overhead (an upper bound of the
server time). Printed: p50, p99 and max, the queries per call, and how many envelopes
covered a call.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _server import use_fresh_database
from evaluate_budgets import AGENTS, NOW, envelopes, generate


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--envelopes", type=int, default=50)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="agentops_bench_check", help="PostgreSQL database (dropped)")
    p.add_argument("--sqlite", action="store_true", help="use a SQLite file instead")
    args = p.parse_args()
    use_fresh_database(pg=args.pg, name=args.db, sqlite=args.sqlite)
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from budgets.evaluate import budgets_evaluate_all
    from budgets.models import BudgetEnvelope
    from traces.models import Project
    from traces.services import ingest_key_create

    rnd = random.Random(42)
    t = time.perf_counter()
    generate(rnd)
    envelopes(rnd, args.envelopes)
    summary = budgets_evaluate_all(now=NOW)
    # The stored periods end after `now` of the evaluation; the check reads the wall
    # clock, so move them to today as the every-minute evaluation would have.
    shift = timedelta(days=(timezone.now() - NOW).days + 1)
    for env in BudgetEnvelope.objects.exclude(last_period_end=None):
        BudgetEnvelope.objects.filter(pk=env.pk).update(
            last_period_start=env.last_period_start + shift,
            last_period_end=env.last_period_end + shift,
        )
    if connection.vendor == "postgresql":
        with connection.cursor() as c:
            c.execute("VACUUM ANALYZE")
    print(
        f"set up in {time.perf_counter() - t:.1f} s ({connection.vendor}): "
        f"{summary.evaluated} envelopes evaluated, {summary.exceeded} exceeded"
    )

    project = Project.objects.get(slug="bench")
    secret = ingest_key_create(project=project).secret
    settings.ALLOWED_HOSTS = ["testserver"]
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    queries = [0]

    def count(execute, sql, params, many, context):
        queries[0] += 1
        return execute(sql, params, many, context)

    bodies = [
        {
            "agent": rnd.choice(AGENTS),
            "session": f"s-{rnd.randint(0, 5000)}",
            "trace_id": f"{rnd.randrange(100_000):032x}",
            "estimated_cost": "0.01",
        }
        for _ in range(args.calls)
    ]
    for body in bodies[:50]:  # warm up: key cache, connection, URL resolver
        client.post("/api/budgets/check", body, content_type="application/json")

    times, covered, refused = [], [], 0
    with connection.execute_wrapper(count):
        for body in bodies:
            t = time.perf_counter()
            r = client.post("/api/budgets/check", body, content_type="application/json")
            times.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.content
            answer = r.json()
            covered.append(len(answer["envelopes"]))
            refused += not answer["allow"]
    times.sort()
    p99 = times[int(len(times) * 0.99) - 1]
    print(
        f"{args.calls} checks, {args.envelopes} envelopes in the project "
        f"({min(covered)}–{max(covered)} covering a call, {refused} refused): "
        f"p50 {statistics.median(times):.2f} ms, p99 {p99:.2f} ms, max {times[-1]:.2f} ms, "
        f"{queries[0] / args.calls:.2f} queries per call"
    )


if __name__ == "__main__":
    main()
