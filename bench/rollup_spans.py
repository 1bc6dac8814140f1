#!/usr/bin/env python3
"""Rollup time for 1,000,000 spans on PostgreSQL: incremental (pending batches folded by
the periodic task's code) and batch (a project rebuilt from all its spans).

    .venv/bin/python bench/rollup_spans.py [--spans 1000000] [--pg postgres://…]

Spans are generated inside PostgreSQL (generate_series) so that setting up a million
rows takes seconds: 100,000 runs of 10 spans (root, 4 LLM calls, 5 tool calls) over
30 days, 5 agents, 4 models, 3 services, 2 agent versions; one ingest batch per 100
spans, as 100-span OTLP requests would leave them. Then:

- incremental: `rollup_pending()` folds all pending batches (what the task does,
  200 batches per transaction);
- tick: the same for 30 s of traffic at 5,000 spans/s (150,000 spans);
- batch: `rollup_rebuild()` recomputes the project from all its spans.

Each is run --runs times on a fresh copy; medians are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB = "agentops_bench_rollup"

GENERATE = """
INSERT INTO traces_project (slug, name, created_at) VALUES ('bench', 'bench', now());
INSERT INTO traces_ingestbatch (id, project_id, received_at, span_count)
SELECT b, (SELECT id FROM traces_project WHERE slug = 'bench'), now(), 100
FROM generate_series(1, %(batches)s) AS b;
INSERT INTO traces_trace (project_id, trace_id, root_span_id, name, agent, agent_version,
    service_name, started_at, ended_at, start_ns, end_ns, duration_ms, span_count,
    error_count, llm_call_count, tool_call_count, input_tokens, output_tokens,
    cached_input_tokens, reasoning_tokens, cost_usd, unpriced_count, status, root_status,
    session_id, user_id, first_received_at, last_received_at)
SELECT p.id, lpad(to_hex(r), 32, '0'), lpad(to_hex(r * 16), 16, '0'), 'run',
    'agent-' || (r %% 5), 'v' || (r %% 2), 'svc-' || (r %% 3),
    t, t + interval '20 seconds', 0, 0, 20000, 10, 0, 4, 5, 4000, 800, 0, 0, 0.004, 0,
    'ok', 'ok', '', '', now(), now()
FROM traces_project p,
     generate_series(1, %(runs)s) AS r,
     LATERAL (SELECT now() - (r::float / %(runs)s) * interval '30 days' AS t) AS tt
WHERE p.slug = 'bench';
INSERT INTO traces_span (project_id, trace_id, span_id, parent_span_id, name, kind,
    started_at, ended_at, duration_ms, status, status_message, error_type, step, role,
    service_name, agent, agent_version, prompt_version, model, provider, input_tokens,
    output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens, tool_name,
    tool_call_id, tool_arguments, tool_result, session_id, user_id, cost_usd,
    computed_cost_usd, cost_source, attributes, events, links, resource, scope,
    received_at, batch_id)
SELECT t.project_id, t.trace_id, lpad(to_hex(t.id * 16 + s), 16, '0'),
    CASE WHEN s = 0 THEN '' ELSE t.root_span_id END,
    CASE WHEN s = 0 THEN 'invoke_agent' WHEN s %% 2 = 1 THEN 'chat' ELSE 'execute_tool' END,
    1, t.started_at + s * interval '1 second', t.started_at + s * interval '1 second'
        + (50 + (t.id * 7 + s * 13) %% 2000) * interval '1 millisecond',
    CASE WHEN s = 0 THEN 20000 ELSE 50 + (t.id * 7 + s * 13) %% 2000 END,
    CASE WHEN (t.id + s) %% 97 = 0 THEN 'error' ELSE 'unset' END, '', '',
    CASE WHEN s = 0 THEN 'agent' WHEN s %% 2 = 1 THEN 'llm' ELSE 'tool' END, '',
    t.service_name, CASE WHEN s = 0 THEN t.agent ELSE '' END, '', 'p1',
    CASE WHEN s %% 2 = 1 THEN 'model-' || (t.id %% 4) ELSE '' END, 'openai',
    CASE WHEN s %% 2 = 1 THEN 1000 ELSE 0 END, CASE WHEN s %% 2 = 1 THEN 200 ELSE 0 END,
    0, 0, 0, '', '', '', '', '', '',
    CASE WHEN s %% 2 = 1 THEN 0.001 END, CASE WHEN s %% 2 = 1 THEN 0.001 END,
    CASE WHEN s %% 2 = 1 THEN 'price_data' ELSE '' END,
    '{}', '[]', '[]', '{}', '{}', now(), ((t.id - 1) * 10 + s) / 100 + 1
FROM traces_trace t, generate_series(0, 9) AS s;
SELECT setval(pg_get_serial_sequence('traces_ingestbatch', 'id'), %(batches)s);
"""


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-qtAc", sql], check=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--spans", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    args = p.parse_args()
    url = f"{args.pg}/{DB}"
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops_site.settings")

    psql(f"{args.pg}/postgres", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    psql(f"{args.pg}/postgres", f"CREATE DATABASE {DB}")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from traces.models import Project, Rollup
    from traces.rollups import rollup_pending, rollup_rebuild

    call_command("migrate", verbosity=0)
    runs = args.spans // 10
    t = time.perf_counter()
    with connection.cursor() as c:
        c.execute(GENERATE, {"runs": runs, "batches": args.spans // 100})
        c.execute("VACUUM ANALYZE traces_span")
    print(f"generated {args.spans:,} spans in {time.perf_counter() - t:.1f} s")
    project = Project.objects.get(slug="bench")

    def reset_pending(count_spans: int) -> None:
        """Mark the newest `count_spans` spans as pending again (their batches)."""
        with connection.cursor() as c:
            c.execute("DELETE FROM traces_ingestbatch")
            c.execute(
                "INSERT INTO traces_ingestbatch (id, project_id, received_at, span_count) "
                "SELECT b, %s, now(), 100 FROM generate_series(%s, %s) AS b",
                [project.pk, args.spans // 100 - count_spans // 100 + 1, args.spans // 100],
            )

    results: dict[str, list[float]] = {"incremental": [], "tick": [], "batch": []}
    for _ in range(args.runs):
        Rollup.objects.all().delete()
        reset_pending(args.spans)
        t = time.perf_counter()
        r = rollup_pending(max_rounds=10**6)
        results["incremental"].append(time.perf_counter() - t)
        assert r.spans == args.spans, r

        reset_pending(min(150_000, args.spans))
        t = time.perf_counter()
        r = rollup_pending(max_rounds=10**6)
        results["tick"].append(time.perf_counter() - t)

        t = time.perf_counter()
        r = rollup_rebuild(project_id=project.pk)
        results["batch"].append(time.perf_counter() - t)
        assert r.spans == args.spans, r
    rows = Rollup.objects.count()
    for name, times in results.items():
        n = min(150_000, args.spans) if name == "tick" else args.spans
        med = statistics.median(times)
        print(
            f"{name:12s} {n:>9,} spans: median {med:6.1f} s ({n / med:,.0f} spans/s); "
            f"runs: {', '.join(f'{x:.1f}' for x in times)}"
        )
    print(f"rollup rows: {rows:,}")


if __name__ == "__main__":
    main()
