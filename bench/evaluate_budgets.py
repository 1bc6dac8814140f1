#!/usr/bin/env python3
"""Time to evaluate 1,000 budget envelopes over a project with realistic rollups.

    .venv/bin/python bench/evaluate_budgets.py                 # PostgreSQL (default)
    .venv/bin/python bench/evaluate_budgets.py --sqlite        # SQLite file in /tmp
    .venv/bin/python bench/evaluate_budgets.py --envelopes 1000 --pg postgres://…

Data: one project, 35 days of 15-minute rollups up to `now` (Nov 28, 14:07 UTC) for 5
agents × 4 models × 3 services × 2 agent versions, about 40 of those 120 groups active
in each bucket (≈ 135,000 rollup rows with latency histograms), and 100,000 traces
(runs with users and sessions) for the per-run caps and user budgets.

Envelopes: a mix like a real admin would set up — cost (half of them) and tokens on
hour, day, week, month and rolling windows; p95 latency and error rate on hour, day
and rolling windows; per-run caps on hour and day; a tenth scoped to a user or a
session; five time zones; most narrowed by agent, some by model or service;
thresholds 50/80/100 with forecasts.

Printed: the first evaluation (every envelope records its first state and its alerts),
then the steady one a minute later (what the task does every minute), with the query
count of each; median of --runs steady evaluations.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _server import use_fresh_database

DB = "agentops_bench_evaluate"
NOW = datetime(2025, 11, 28, 14, 7, tzinfo=UTC)
DAYS = 35
AGENTS = [f"agent-{i}" for i in range(5)]
MODELS = [f"model-{i}" for i in range(4)]
SERVICES = [f"svc-{i}" for i in range(3)]
VERSIONS = ["v1", "v2"]
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Asia/Tokyo"]
USERS = [f"user-{i}" for i in range(200)]


def generate(rnd: random.Random) -> None:
    from traces.models import Project, Rollup, Trace
    from traces.rollups import Histogram

    project = Project.objects.create(slug="bench", name="bench")
    groups = [(a, m, s, v) for a in AGENTS for m in MODELS for s in SERVICES for v in VERSIONS]
    start = NOW.replace(minute=0) - timedelta(days=DAYS)
    bucket = start
    rows = []
    while bucket <= NOW:
        for agent, model, service, version in rnd.sample(groups, 40):
            runs = rnd.randint(0, 6)
            hist: dict = {}
            for _ in range(runs):
                Histogram.add_value(hist, rnd.lognormvariate(8, 0.6))
            inp, out = rnd.randint(2_000, 40_000), rnd.randint(200, 6_000)
            rows.append(
                Rollup(
                    project=project,
                    bucket_start=bucket,
                    agent=agent,
                    model=model,
                    service_name=service,
                    agent_version=version,
                    prompt_version="p1",
                    span_count=runs * 8 + 2,
                    trace_count=runs,
                    error_count=rnd.randint(0, 1),
                    run_error_count=min(runs, rnd.choice([0, 0, 0, 1])),
                    llm_call_count=runs * 3,
                    input_tokens=inp,
                    output_tokens=out,
                    cost_usd=Decimal(inp * 3 + out * 15) / 1_000_000,
                    span_latency=hist,
                    run_latency=hist,
                )
            )
        bucket += timedelta(minutes=15)
    Rollup.objects.bulk_create(rows, batch_size=5000)
    traces = []
    for i in range(100_000):
        at = NOW - timedelta(seconds=rnd.uniform(0, DAYS * 86400))
        status = "error" if rnd.random() < 0.03 else "ok"
        traces.append(
            Trace(
                project=project,
                trace_id=f"{i:032x}",
                root_span_id=f"{i:016x}",
                agent=rnd.choice(AGENTS),
                service_name=rnd.choice(SERVICES),
                started_at=at,
                ended_at=at,
                duration_ms=rnd.lognormvariate(8, 0.6),
                input_tokens=rnd.randint(1000, 20_000),
                output_tokens=rnd.randint(100, 3000),
                cost_usd=Decimal(rnd.randint(100, 90_000)) / 1_000_000,
                status=status,
                root_status=status,
                user_id=rnd.choice(USERS),
                session_id=f"s-{rnd.randint(0, 5000)}",
                first_received_at=at,
                last_received_at=at,
            )
        )
    Trace.objects.bulk_create(traces, batch_size=5000)
    print(f"generated {len(rows):,} rollup rows and {len(traces):,} traces")


def envelopes(rnd: random.Random, n: int) -> None:
    from budgets.models import BudgetEnvelope
    from traces.models import Project

    Metric, Period = BudgetEnvelope.Metric, BudgetEnvelope.Period
    project = Project.objects.get(slug="bench")
    out = []
    for i in range(n):
        kind = rnd.random()
        fields: dict = {"timezone": rnd.choice(ZONES), "thresholds": [50, 80, 100]}
        if kind < 0.5:
            fields["metric"] = Metric.COST
        elif kind < 0.65:
            fields["metric"] = Metric.TOKENS
        elif kind < 0.75:
            fields["metric"] = Metric.P95_LATENCY
        elif kind < 0.85:
            fields["metric"] = Metric.ERROR_RATE
        elif kind < 0.9:
            fields["metric"] = rnd.choice([Metric.RUN_COST, Metric.RUN_DURATION])
        else:
            fields["metric"] = rnd.choice([Metric.COST, Metric.TOKENS])
            fields["attribute"] = rnd.choice(["user_id", "session_id"])
            fields["attribute_value"] = (
                rnd.choice(USERS)
                if fields["attribute"] == "user_id"
                else f"s-{rnd.randint(0, 5000)}"
            )
        metric = fields["metric"]
        if metric in (Metric.COST, Metric.TOKENS):
            fields["period"] = rnd.choice(
                [Period.HOUR, Period.DAY, Period.WEEK, Period.MONTH, Period.MONTH, Period.ROLLING]
            )
        elif metric in (Metric.RUN_COST, Metric.RUN_DURATION):
            fields["period"] = rnd.choice([Period.HOUR, Period.DAY])
        else:
            fields["period"] = rnd.choice([Period.HOUR, Period.DAY, Period.ROLLING])
        if fields["period"] == Period.ROLLING:
            fields["rolling_minutes"] = rnd.choice([15, 60, 240, 1440])
        if "attribute" not in fields:
            if rnd.random() < 0.6:
                fields["agent"] = rnd.choice(AGENTS)
            if rnd.random() < 0.3:
                fields["model"] = rnd.choice(MODELS)
            if rnd.random() < 0.2:
                fields["service_name"] = rnd.choice(SERVICES)
        scale = {
            Metric.COST: {"hour": 0.5, "day": 10, "week": 70, "month": 300, "rolling": 5},
            Metric.TOKENS: {"hour": 1e5, "day": 2e6, "week": 1.5e7, "month": 6e7, "rolling": 1e6},
        }
        if metric in scale:
            base = scale[metric][fields["period"]] / (10 if "attribute" in fields else 1)
            limit = Decimal(str(round(base * rnd.uniform(0.3, 3), 2)))
        elif metric == Metric.P95_LATENCY:
            limit = Decimal(rnd.choice([3, 5, 8]))
        elif metric == Metric.ERROR_RATE:
            limit = Decimal(rnd.choice([5, 10, 20]))
        elif metric == Metric.RUN_COST:
            limit = Decimal("0.08")
        else:
            limit = Decimal(rnd.choice([10, 30]))
        out.append(BudgetEnvelope(project=project, name=f"budget {i}", limit=limit, **fields))
    BudgetEnvelope.objects.bulk_create(out)
    # Set up well before `now`, so hourly budgets also re-check the hour just ended.
    BudgetEnvelope.objects.update(created_at=NOW - timedelta(days=60))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--envelopes", type=int, default=1000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--sqlite", action="store_true", help="use a SQLite file instead")
    args = p.parse_args()
    use_fresh_database(pg=args.pg, name=DB, sqlite=args.sqlite)
    from django.db import connection

    from budgets.evaluate import budgets_evaluate_all

    rnd = random.Random(42)
    t = time.perf_counter()
    generate(rnd)
    envelopes(rnd, args.envelopes)
    if connection.vendor == "postgresql":
        with connection.cursor() as c:
            c.execute("VACUUM ANALYZE")
    print(f"set up in {time.perf_counter() - t:.1f} s ({connection.vendor})")

    queries = [0]

    def count(execute, sql, params, many, context):
        queries[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        t = time.perf_counter()
        first = budgets_evaluate_all(now=NOW)
        elapsed = time.perf_counter() - t
    print(
        f"first evaluation: {elapsed:.2f} s, {queries[0]} queries — {first.evaluated} envelopes: "
        f"{first.ok} ok, {first.warning} warning, {first.exceeded} exceeded; "
        f"{first.state_changes} state changes, {first.alerts} alerts"
    )
    times = []
    for i in range(args.runs):
        queries[0] = 0
        with connection.execute_wrapper(count):
            t = time.perf_counter()
            summary = budgets_evaluate_all(now=NOW + timedelta(minutes=1 + i))
            times.append(time.perf_counter() - t)
        print(
            f"steady evaluation {i + 1}: {times[-1]:.2f} s, {queries[0]} queries, "
            f"{summary.state_changes} state changes, {summary.alerts} alerts"
        )
    print(
        f"{summary.evaluated} envelopes, steady: median {statistics.median(times):.2f} s "
        f"({statistics.median(times) / summary.evaluated * 1000:.2f} ms per envelope)"
    )


if __name__ == "__main__":
    main()
