#!/usr/bin/env python3
"""KPI pages with a million runs on PostgreSQL: how long the Celery refresh of the run
rollups takes, and the server time of the overview, agents, KPI lift and version
comparison pages.

    .venv/bin/python bench/kpi_pages.py [--runs 1000000] [--repeat 7]

Runs are generated inside PostgreSQL (generate_series): 30 days, 4 agents, 3 versions,
phases shadow / bounded / expanded / human (control), 8 % errors, 10 % interventions,
and for each run a `resolved` KPI (0/1), a `handle_time_min` KPI and a `helpfulness`
eval. Then the run rollups are rebuilt from scratch (the first refresh), one
incremental refresh runs after a day's worth of new outcomes, and each page is
requested --repeat times by a logged-in test client; medians are printed.
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
DB = "agentops_bench_kpi"

GENERATE = """
INSERT INTO traces_project (slug, name, created_at) VALUES ('bench', 'bench', now());
INSERT INTO traces_trace (project_id, trace_id, root_span_id, name, agent, agent_version,
    prompt_version, phase, intervened, service_name, started_at, ended_at, start_ns, end_ns,
    duration_ms, span_count, error_count, llm_call_count, tool_call_count, input_tokens,
    output_tokens, cached_input_tokens, reasoning_tokens, cost_usd, unpriced_count, status,
    root_status, session_id, user_id, first_received_at, last_received_at, root_key, name_key,
    agent_key, agent_version_key, service_name_key, prompt_version_key, phase_key,
    session_id_key, user_id_key)
SELECT p.id, lpad(to_hex(r), 32, '0'), lpad(to_hex(r), 16, '0'), 'run',
    'agent-' || (r %% 4), '1.' || (r %% 3) || '.0', 'v' || (r %% 2),
    (ARRAY['shadow', 'bounded', 'expanded', 'human'])[1 + (r %% 4)],
    (r %% 10 = 0), 'svc', t, t + interval '20 seconds', 0, 0,
    5000 + (r::bigint * 7919) %% 60000, 10, 0, 4, 5, 4000, 800, 0, 0, 0.004, 0,
    CASE WHEN r %% 13 = 0 THEN 'error' ELSE 'ok' END,
    CASE WHEN r %% 13 = 0 THEN 'error' ELSE 'ok' END, '', '', t, t,
    '', '', '', '', '', '', '', '', ''
FROM traces_project p,
     generate_series(1, %(runs)s) AS r,
     LATERAL (SELECT now() - (r::float / %(runs)s) * interval '30 days' AS t) AS tt
WHERE p.slug = 'bench';
INSERT INTO traces_outcome (project_id, trace_id, kind, name, value, source, recorded_at,
    received_at)
SELECT t.project_id, t.trace_id, k.kind, k.name,
    CASE k.name
        WHEN 'resolved' THEN (CASE WHEN (t.id * 31 + length(t.agent_version)) %% 10 < 7
                                   THEN 1 ELSE 0 END)
        WHEN 'handle_time_min' THEN 2 + (t.id * 17 %% 100) / 10.0
        ELSE 0.5 + (t.id * 13 %% 50) / 100.0 END,
    'span', t.started_at, t.started_at
FROM traces_trace t,
     (VALUES ('kpi', 'resolved'), ('kpi', 'handle_time_min'), ('eval', 'helpfulness'))
        AS k(kind, name);
INSERT INTO traces_kpi (project_id, name, label, unit, kind, higher_is_better, baseline,
    description)
SELECT id, 'resolved', 'Resolved', '', 'rate', true, 'previous_version', '' FROM traces_project
UNION ALL
SELECT id, 'handle_time_min', 'Handle time', 'min', 'mean', false, 'control', ''
FROM traces_project;
"""


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    args = p.parse_args()
    os.environ["DATABASE_URL"] = f"{args.pg}/{DB}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops_site.settings")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    for sql in (f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)", f"CREATE DATABASE {DB}"):
        subprocess.run(["psql", f"{args.pg}/postgres", "-qc", sql], check=True)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from rollouts.models import RunRollup
    from rollouts.services import run_rollups_refresh
    from traces.models import Membership, Outcome, Project

    call_command("migrate", verbosity=0)
    t = time.perf_counter()
    with connection.cursor() as c:
        c.execute(GENERATE, {"runs": args.runs})
        c.execute("ANALYZE")
    print(f"generated {args.runs:,} runs and {3 * args.runs:,} outcomes in "
          f"{time.perf_counter() - t:.0f} s")  # fmt: skip

    t = time.perf_counter()
    result = run_rollups_refresh()
    print(f"first refresh (all 30 days): {time.perf_counter() - t:.1f} s, {result}")
    project = Project.objects.get(slug="bench")
    # A day's worth of outcomes posted late: the next refresh recomputes that day only.
    from django.utils import timezone

    Outcome.objects.filter(
        project=project, recorded_at__gte=timezone.now() - timezone.timedelta(days=1)
    ).update(received_at=timezone.now())
    t = time.perf_counter()
    result = run_rollups_refresh()
    print(f"incremental refresh (1 day changed): {time.perf_counter() - t:.1f} s, {result}")
    print(f"run rollup rows: {RunRollup.objects.count():,}")

    user, _ = get_user_model().objects.get_or_create(username="bench")
    Membership.objects.get_or_create(project=project, user=user)
    client = Client()
    client.force_login(user)
    pages = {
        "overview": "/overview/",
        "agents": f"/agents/?project={project.slug}",
        "kpi lift": f"/kpis/?project={project.slug}",
        "compare": f"/agents/compare/?agent=agent-1&project={project.slug}&a=1.1.0&b=1.0.0",
    }
    for label, url in pages.items():
        response = client.get(url)
        if response.status_code != 200:
            print(f"{label:9s} {url}: HTTP {response.status_code}")
            continue
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - t) * 1000)
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        print(
            f"{label:9s} median {statistics.median(times):7.1f} ms "
            f"(min {min(times):.1f}, max {max(times):.1f}), {len(queries)} queries"
        )


if __name__ == "__main__":
    main()
