#!/usr/bin/env python3
"""An approval's round trip through the server run as in production: an agent asks
(`POST /api/approvals/`), long-polls (`GET /api/approvals/<id>/?wait=30`), a person decides.

    .venv/bin/python bench/approval_round_trip.py                 # PostgreSQL (default)
    .venv/bin/python bench/approval_round_trip.py --sqlite        # SQLite file in /tmp
    .venv/bin/python bench/approval_round_trip.py --rounds 200 --agents 8 --workers 2 --port 8205

The server is gunicorn with the uvicorn workers (`bench/_server.py`, --workers processes)
on a fresh database; the project and its key are made in this process. Each agent is a
thread with one keep-alive HTTP connection, like the SDK: it posts a request (timed), hands
its id to a reviewer and long-polls until the answer is not pending; after a `pending`
answered at once with `Retry-After` (the process already holds APPROVAL_MAX_WAITERS
waits) it sleeps that long and polls again, as the SDK does. Then it reads the request
once without waiting (timed). Each reviewer is a thread of this process that waits a
random 50-500 ms and decides through `controls.approvals.approval_decide` inside a
transaction, as the review queue does, noting the time of the commit (`on_commit`).

Measured, per variant:
- create: the POST, client side;
- notify: from the decision's commit to the long-poll's answer at the agent (bounded by
  APPROVAL_POLL_SECONDS when the wait was admitted, by Retry-After when it was not);
- round trip: from the POST to the answer, minus the reviewer's random delay;
- read: a GET without wait.

Variants: one agent at a time (--rounds rounds); --agents agents at once with the
settings' APPROVAL_MAX_WAITERS (more agents than the processes hold waits for: some get
Retry-After); the same with APPROVAL_MAX_WAITERS raised to --agents (every wait admitted),
on a restarted server.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _server import start, use_fresh_database

REVIEW_DELAY_S = (0.05, 0.5)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class Reviewer(threading.Thread):
    """Decides each approval id put in `inbox` after its delay; records commit times."""

    def __init__(self, inbox: queue.Queue, rnd: random.Random) -> None:
        super().__init__(daemon=True)
        self.inbox = inbox
        self.rnd = rnd
        self.committed: dict[str, float] = {}
        self.delays: dict[str, float] = {}

    def run(self) -> None:
        from django.db import connection, transaction

        from controls.approvals import approval_decide
        from controls.models import Approval

        try:
            while (got := self.inbox.get()) is not None:
                public_id, seen_at = got
                delay = self.rnd.uniform(*REVIEW_DELAY_S)
                self.delays[public_id] = delay
                time.sleep(max(0.0, seen_at + delay - time.perf_counter()))
                approval = Approval.objects.get(public_id=public_id)
                with transaction.atomic():
                    approval_decide(approval, "approved", "reviewer", note="ok")
                    transaction.on_commit(
                        lambda p=public_id: self.committed.__setitem__(p, time.perf_counter())
                    )
                assert approval.status == "approved", approval.status
        finally:
            connection.close()


class Agent(threading.Thread):
    def __init__(self, *, port: int, key: str, rounds: int, reviewers: queue.Queue, n: int):
        super().__init__(daemon=True)
        self.port, self.key, self.rounds, self.reviewers, self.n = port, key, rounds, reviewers, n
        self.results: list[dict] = []
        self.error: BaseException | None = None

    def request(self, conn, method: str, path: str, body: dict | None = None):
        headers = {"Authorization": f"Bearer {self.key}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        payload = json.loads(response.read())
        return response.status, response.getheader("Retry-After"), payload

    def run(self) -> None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            for i in range(self.rounds):
                body = {
                    "agent": f"agent-{self.n}",
                    "tool": "issue_refund",
                    "arguments": {"order_id": f"o-{self.n}-{i}", "amount": "120.00"},
                    "risk": "high",
                    "confidence": "0.42",
                    "reason": "refund over 100.00",
                    "timeout_s": 300,
                }
                t0 = time.perf_counter()
                status, _, created = self.request(conn, "POST", "/api/approvals/", body)
                t1 = time.perf_counter()
                assert status == 201, (status, created)
                public_id = created["id"]
                self.reviewers.put((public_id, t1))
                busy = 0
                while True:
                    status, retry, answer = self.request(
                        conn, "GET", f"/api/approvals/{public_id}/?wait=30"
                    )
                    assert status == 200, (status, answer)
                    if answer["status"] != "pending":
                        break
                    if retry:
                        busy += 1
                        time.sleep(float(retry))
                t2 = time.perf_counter()
                assert answer["status"] == "approved", answer
                status, _, _ = self.request(conn, "GET", f"/api/approvals/{public_id}/")
                t3 = time.perf_counter()
                assert status == 200
                self.results.append(
                    {
                        "id": public_id,
                        "create": t1 - t0,
                        "posted": t1,
                        "start": t0,
                        "answered": t2,
                        "read": t3 - t2,
                        "busy": busy,
                    }
                )
            conn.close()
        except BaseException as exc:  # reported by the main thread
            self.error = exc


def run_variant(*, port: int, key: str, agents: int, rounds: int, seed: int) -> list[dict]:
    inbox: queue.Queue = queue.Queue()
    reviewers = [Reviewer(inbox, random.Random(seed + i)) for i in range(agents)]
    for r in reviewers:
        r.start()
    workers = [
        Agent(port=port, key=key, rounds=rounds, reviewers=inbox, n=i) for i in range(agents)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for _ in reviewers:
        inbox.put(None)
    for r in reviewers:
        r.join()
    for w in workers:
        if w.error:
            raise w.error
    committed = {k: v for r in reviewers for k, v in r.committed.items()}
    delays = {k: v for r in reviewers for k, v in r.delays.items()}
    rows = [row for w in workers for row in w.results]
    for row in rows:
        row["notify"] = row["answered"] - committed[row["id"]]
        row["round_trip"] = row["answered"] - row["start"] - delays[row["id"]]
    return rows


def summary(label: str, rows: list[dict]) -> dict:
    ms = {
        name: [row[name] * 1000 for row in rows]
        for name in ("create", "notify", "round_trip", "read")
    }
    out = {"label": label, "n": len(rows), "busy": sum(row["busy"] for row in rows)}
    for name, values in ms.items():
        out[name] = (statistics.median(values), pct(values, 0.99))
    return out


def print_table(summaries: list[dict], *, poll_s: float) -> None:
    print(
        f"{'variant':34s} {'n':>4s} {'create p50/p99':>15s} {'notify p50/p99':>16s} "
        f"{'round trip p50/p99':>19s} {'read p50/p99':>13s} {'Retry-After':>11s}"
    )
    for s in summaries:
        cols = [
            f"{s[name][0]:6.1f}/{s[name][1]:<6.1f}"
            for name in ("create", "notify", "round_trip", "read")
        ]
        print(
            f"{s['label']:34s} {s['n']:4d} {cols[0]:>15s} {cols[1]:>16s} {cols[2]:>19s} "
            f"{cols[3]:>13s} {s['busy']:11d}"
        )
    print(
        f"(ms; notify is bounded by APPROVAL_POLL_SECONDS = {poll_s * 1000:.0f} ms when admitted)"
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=200, help="rounds of the one-agent variant")
    p.add_argument("--agents", type=int, default=8, help="agents at once in the busy variants")
    p.add_argument("--busy-rounds", type=int, default=25, help="rounds per agent, busy variants")
    p.add_argument("--workers", type=int, default=2, help="web server processes")
    p.add_argument("--port", type=int, default=8205)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="agentops_bench_approval", help="PostgreSQL database (dropped)")
    p.add_argument("--sqlite", action="store_true", help="use a SQLite file instead")
    args = p.parse_args()
    use_fresh_database(pg=args.pg, name=args.db, sqlite=args.sqlite)
    from django.conf import settings

    from traces.models import Project
    from traces.services import ingest_key_create

    project = Project.objects.create(slug="bench", name="bench")
    key = ingest_key_create(project=project).secret
    env = {
        **os.environ,
        "AGENTOPS_ENV": "production",
        "SECRET_KEY": "bench-only-secret-key-not-used-elsewhere-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Plain HTTP on loopback: no HTTPS redirect, cookies without the Secure flag.
        "SECURE_COOKIES": "false",
        "LOG_LEVEL": "WARNING",
        "VAR_DIR": tempfile.mkdtemp(prefix="agentops-bench-approval-"),
    }
    default_waiters = int(env.get("APPROVAL_MAX_WAITERS", settings.APPROVAL_MAX_WAITERS))
    poll_s = float(env.get("APPROVAL_POLL_SECONDS", settings.APPROVAL_POLL_SECONDS))
    print(
        f"{args.workers} worker processes, APPROVAL_MAX_WAITERS {default_waiters} per process, "
        f"APPROVAL_POLL_SECONDS {poll_s}, reviewer delay {REVIEW_DELAY_S[0]}-"
        f"{REVIEW_DELAY_S[1]} s, {'SQLite' if args.sqlite else 'PostgreSQL'}"
    )
    summaries = []
    for waiters, variants in (
        (default_waiters, [(1, args.rounds), (args.agents, args.busy_rounds)]),
        (max(args.agents, default_waiters), [(args.agents, args.busy_rounds)]),
    ):
        server_env = {**env, "APPROVAL_MAX_WAITERS": str(waiters)}
        server = start(server="asgi", port=args.port, workers=args.workers, env=server_env)
        try:
            # Warm up: each process's key cache, connections and URL resolver.
            run_variant(port=args.port, key=key, agents=4, rounds=3, seed=args.seed)
            for agents, rounds in variants:
                rows = run_variant(
                    port=args.port, key=key, agents=agents, rounds=rounds, seed=args.seed
                )
                label = f"{agents} agent{'s' if agents > 1 else ''}, max waiters {waiters}"
                summaries.append(summary(label, rows))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print_table(summaries, poll_s=poll_s)


if __name__ == "__main__":
    main()
