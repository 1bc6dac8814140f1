#!/usr/bin/env python3
"""Server time of `POST /api/policy/check` for a project with 100 Cedar policies.

    .venv/bin/python bench/policy_check.py                 # PostgreSQL (default)
    .venv/bin/python bench/policy_check.py --sqlite        # SQLite file in /tmp
    .venv/bin/python bench/policy_check.py --calls 2000 --policies 100 --db agentops_bench_policy

Data: 50 tool contracts, 10 agents with a declared phase, and one active policy version of
--policies policies (permits by risk and phase, forbids and escalations on amounts,
confidence, arguments and hours). Then --calls checks through Django's test Client with
the project key (the key cache on, as in production), each for a random agent, tool,
amount, confidence and arguments. Timed around each Client call, so the figures include
the test Client's own overhead (an upper bound of the server time); the service's own
time, recorded on each audit row as latency_us, is printed too (it excludes the insert).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _server import use_fresh_database

AGENTS = [f"agent-{i}" for i in range(10)]
TOOLS = [f"tool_{i}" for i in range(50)]
RISKS = ["low", "medium", "high", "critical"]
PHASES = ["shadow", "bounded", "expanded"]


def policies(rnd: random.Random, n: int) -> str:
    out = [
        '@id("low")\npermit(principal, action, resource) when { resource.risk == "low" };',
        '@id("acting")\npermit(principal, action, resource)\n'
        'when { principal.phase == "bounded" || principal.phase == "expanded" };',
    ]
    for i in range(n - len(out)):
        tool = rnd.choice(TOOLS)
        kind = i % 4
        if kind == 0:
            out.append(
                f'@id("cap-{i}")\n@escalate("{tool} over {i * 10}.00")\n'
                f'forbid(principal, action, resource == Tool::"{tool}")\n'
                f"when {{ context.amount > {i * 1000 + 5000} }};"
            )
        elif kind == 1:
            out.append(
                f'@id("unsure-{i}")\n@escalate("confidence under 0.{50 + i % 40}")\n'
                f'forbid(principal, action, resource == Tool::"{tool}")\n'
                f"when {{ context.confidence < {500 + (i % 40) * 10} }};"
            )
        elif kind == 2:
            out.append(
                f'@id("arg-{i}")\nforbid(principal, action, resource == Tool::"{tool}")\n'
                f'when {{ context.arguments has account && context.arguments.account == "t{i}" }};'
            )
        else:
            out.append(
                f'@id("night-{i}")\nforbid(principal, action, resource == Tool::"{tool}")\n'
                f"when {{ resource.side_effects && context.hour == {i % 24} && "
                f'principal.phase == "shadow" }};'
            )
    return "\n\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--policies", type=int, default=100)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="agentops_bench_policy", help="PostgreSQL database (dropped)")
    p.add_argument("--sqlite", action="store_true", help="use a SQLite file instead")
    args = p.parse_args()
    use_fresh_database(pg=args.pg, name=args.db, sqlite=args.sqlite)
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    from controls.models import PolicyDecision
    from controls.policies import policy_version_create
    from controls.services import contract_upsert
    from rollouts.models import AgentPhase
    from traces.models import Project
    from traces.services import ingest_key_create

    rnd = random.Random(42)
    project = Project.objects.create(slug="bench", name="bench")
    for tool in TOOLS:
        contract_upsert(
            project=project,
            data={
                "name": tool,
                "version": "1.0.0",
                "risk": rnd.choice(RISKS),
                "side_effects": rnd.random() < 0.5,
            },
        )
    for agent in AGENTS:
        AgentPhase.objects.create(
            project=project,
            agent=agent,
            phase=rnd.choice(PHASES),
            since=datetime(2026, 1, 1, tzinfo=UTC),
        )
    policy_version_create(project=project, text=policies(rnd, args.policies), created_by="bench")

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
            "agent_version": "1.0",
            "phase": "expanded",
            "tool": rnd.choice(TOOLS),
            "arguments": {"account": f"t{rnd.randrange(100)}", "n": rnd.randrange(10)},
            "amount": f"{rnd.uniform(0, 2000):.2f}",
            "confidence": f"{rnd.random():.3f}",
        }
        for _ in range(args.calls)
    ]
    for body in bodies[:50]:  # warm up: key cache, parsed policies, connection, URL resolver
        client.post("/api/policy/check", body, content_type="application/json")
    if connection.vendor == "postgresql":
        with connection.cursor() as c:
            c.execute("VACUUM ANALYZE")

    start_id = PolicyDecision.objects.order_by("-id").values_list("id", flat=True).first()
    times, seen = [], {"allow": 0, "deny": 0, "escalate": 0}
    with connection.execute_wrapper(count):
        for body in bodies:
            t = time.perf_counter()
            r = client.post("/api/policy/check", body, content_type="application/json")
            times.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.content
            seen[r.json()["decision"]] += 1
    times.sort()
    p99 = times[int(len(times) * 0.99) - 1]
    own = sorted(
        PolicyDecision.objects.filter(id__gt=start_id).values_list("latency_us", flat=True)
    )
    print(
        f"{args.calls} checks, {args.policies} policies ({connection.vendor}; {seen}): "
        f"p50 {statistics.median(times):.2f} ms, p99 {p99:.2f} ms, max {times[-1]:.2f} ms, "
        f"{queries[0] / args.calls:.2f} queries per call; service time before the audit "
        f"insert p50 {statistics.median(own) / 1000:.2f} ms, "
        f"p99 {own[int(len(own) * 0.99) - 1] / 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
