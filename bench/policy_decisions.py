#!/usr/bin/env python3
"""Policy decisions over a day with ~50k spans: server time of the report
(`controls.decisions.policy_decision_report`), `GET /api/controls/decisions/` and the
Controls page, on PostgreSQL (default) or SQLite.

    .venv/bin/python bench/policy_decisions.py [--runs 5000] [--repeat 7] [--db NAME] [--sqlite]

Each run has 10 spans through the real ingest path: an agent span, three model calls, an
`agentops.policy.*` gate (its decision made by the check API and its id recorded on the
span for half of the runs), an OpenInference guardrail in one run of five, two lookups
and two side-effecting calls (one of them before the gate in one run of four). The check
API's audit rows are written for every run. Medians of --repeat requests are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _server import use_fresh_database


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5000)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="agentops_bench_decisions")
    p.add_argument("--sqlite", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    use_fresh_database(pg=args.pg, name=args.db, sqlite=args.sqlite)

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from controls.decisions import policy_decision_report
    from controls.models import PolicyDecision
    from controls.services import contract_upsert
    from tests.factories import new_trace_id, raw_span
    from traces.ingest import span_batch_ingest
    from traces.models import Membership, Project, Span

    project = Project.objects.create(slug="bench", name="bench")
    for name, side_effects in (("refund_order", True), ("send_email", True), ("lookup", False)):
        contract_upsert(
            project=project, data={"name": name, "version": "1.0.0", "side_effects": side_effects}
        )
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    decisions, batch = [], []
    for r in range(args.runs):
        trace = new_trace_id()
        start = now - timedelta(hours=23) + timedelta(seconds=r * 80_000 / args.runs)
        decision_id = uuid.uuid4()
        verdict = ("allow", "deny", "escalate")[r % 3]
        decisions.append(
            PolicyDecision(
                public_id=decision_id,
                project=project,
                agent="support",
                tool="refund_order",
                decision=verdict,
                policy_ids=["refund-limit"] if r % 7 else [],
                policy_version=1 + r % 2,
                latency_us=800 + r % 900,
            )
        )

        def at(seconds: float, _start=start) -> datetime:
            return _start + timedelta(seconds=seconds)

        gate = {
            "agentops.step": "policy",
            "agentops.policy.name": "refund-limit",
            "agentops.policy.decision": verdict,
        }
        if r % 2:
            gate["agentops.policy.decision_id"] = str(decision_id)
        agent = {"gen_ai.agent.name": "support"}
        tool = {"gen_ai.operation.name": "execute_tool", **agent}

        def call(name: str, seconds: float, _trace=trace, _at=at, _tool=tool):
            return raw_span(
                trace_id=_trace,
                name=f"execute_tool {name}",
                start=_at(seconds),
                attributes={**_tool, "gen_ai.tool.name": name},
            )

        spans = [
            raw_span(
                trace_id=trace,
                name="invoke_agent support",
                start=at(0),
                duration_ms=20_000,
                attributes={"gen_ai.operation.name": "invoke_agent", **agent},
            ),
            *[
                raw_span(
                    trace_id=trace,
                    name="chat gpt-4o-mini",
                    start=at(1 + 4 * i),
                    duration_ms=1500,
                    attributes={
                        "gen_ai.operation.name": "chat",
                        "gen_ai.request.model": "gpt-4o-mini",
                        "gen_ai.usage.input_tokens": 900,
                        "gen_ai.usage.output_tokens": 120,
                        **agent,
                    },
                )
                for i in range(3)
            ],
            raw_span(
                trace_id=trace, name="policy refund", start=at(6), duration_ms=4, attributes=gate
            ),
            raw_span(
                trace_id=trace,
                name="content-filter" if r % 5 == 0 else "execute_tool lookup",
                start=at(7),
                duration_ms=12,
                attributes={"openinference.span.kind": "GUARDRAIL"}
                if r % 5 == 0
                else {**tool, "gen_ai.tool.name": "lookup"},
            ),
            call("lookup", 8),
            call("refund_order", 9),
            call("send_email", 5 if r % 4 == 0 else 10),  # before the gate in 1 run of 4
            call("lookup", 11),
        ]
        batch.extend(spans)
        if len(batch) >= 2000:
            span_batch_ingest(project_id=project.pk, spans=batch)
            batch = []
    if batch:
        span_batch_ingest(project_id=project.pk, spans=batch)
    PolicyDecision.objects.bulk_create(decisions, batch_size=2000)
    # The audit rows' creation times follow their runs over the day.
    rows = list(PolicyDecision.objects.filter(project=project).order_by("id"))
    for i, row in enumerate(rows):
        row.created_at = now - timedelta(hours=23) + timedelta(seconds=6 + i * 80_000 / args.runs)
    PolicyDecision.objects.bulk_update(rows, ["created_at"], batch_size=2000)
    if connection.vendor == "postgresql":
        with connection.cursor() as c:
            c.execute("ANALYZE")
    spans = Span.objects.filter(project=project).count()
    print(f"{connection.vendor}: {args.runs:,} runs, {spans:,} spans, {len(rows):,} API "
          f"decisions, generated in {time.perf_counter() - t0:.0f} s")  # fmt: skip

    since, until = now - timedelta(hours=24), now + timedelta(minutes=1)
    report = policy_decision_report(project_id=project.pk, since=since, until=until)
    print(f"decisions {report['totals']['decisions']:,}, rows {len(report['by_policy'])}, "
          f"ungated calls {report['ungated']['ungated_calls']:,} in "
          f"{report['ungated']['ungated_runs']:,} runs")  # fmt: skip

    user, _ = get_user_model().objects.get_or_create(username="bench")
    Membership.objects.get_or_create(project=project, user=user)
    client = Client()
    client.force_login(user)
    window = f"since={since.isoformat().replace('+00:00', 'Z')}"
    window += f"&until={until.isoformat().replace('+00:00', 'Z')}"

    def report_call():
        policy_decision_report(project_id=project.pk, since=since, until=until)

    cases = {
        "report (selector)": report_call,
        "API": lambda: client.get(f"/api/controls/decisions/?project=bench&{window}"),
        "Controls page": lambda: client.get("/controls/?project=bench&hours=24"),
    }
    for label, call in cases.items():
        first = call()
        if first is not None and first.status_code != 200:
            print(f"{label}: HTTP {first.status_code}")
            continue
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            call()
            times.append((time.perf_counter() - t) * 1000)
        with CaptureQueriesContext(connection) as queries:
            call()
        print(
            f"{label:18s} median {statistics.median(times):7.1f} ms "
            f"(min {min(times):.1f}, max {max(times):.1f}), {len(queries)} queries"
        )


if __name__ == "__main__":
    main()
