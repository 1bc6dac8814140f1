#!/usr/bin/env python3
"""Server time of the review queue page (`/review/?project=…&state=open`) and of one item's
page (`/review/<id>/`), with a long queue and a long history.

    .venv/bin/python bench/review_queue.py                 # PostgreSQL (default)
    .venv/bin/python bench/review_queue.py --sqlite        # SQLite file in /tmp
    .venv/bin/python bench/review_queue.py --open 10000 --resolved 200000 --repeat 50

Data (bulk-inserted): one project with --open open items over the last 3 days and
--resolved resolved ones over 90 days (so about a third fall in the page's 30-day
time-to-decision window), 5 agents × 3 versions, every source, risks low to critical
with an SLA per risk (many open items are past it), 20 % of the open items claimed by one
of 5 reviewers (some by the viewer), 30 % of the items with an approval request (pending
for the open ones, approved or denied for the resolved), 70 % with a run; plus another
project with 1,000 items of its own. Then each page --repeat times through Django's test
Client logged in as a project admin, timed around each call (so the figures include the
test Client's own overhead: an upper bound of the server time); p50, p99 and the SQL
queries of one load are printed, and the time of the time-to-decision read alone.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _server import use_fresh_database

AGENTS = [f"agent-{i}" for i in range(5)]
VERSIONS = ["1.0", "1.1", "2.0"]
RISKS = ["", "low", "medium", "high", "critical"]
SLA_MINUTES = {"": 240, "low": 480, "medium": 120, "high": 30, "critical": 10}
TOOLS = ["issue_refund", "close_account", "send_email", "reship_order", "apply_credit"]
BATCH = 5000


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


GENERATE = """
CREATE TEMP TABLE bench_rows AS
SELECT g, g <= %(open)s AS is_open,
    (ARRAY['', 'low', 'medium', 'high', 'critical'])[1 + floor(random() * 5)::int] AS risk,
    'agent-' || floor(random() * 5)::int AS agent,
    (ARRAY['1.0', '1.1', '2.0'])[1 + floor(random() * 3)::int] AS version,
    (ARRAY['issue_refund', 'close_account', 'send_email', 'reship_order', 'apply_credit'])
        [1 + floor(random() * 5)::int] AS tool,
    (ARRAY['low_confidence', 'high_risk', 'escalation', 'policy_escalate'])
        [1 + floor(random() * 4)::int] AS source,
    random() < 0.3 AS with_approval, random() < 0.7 AS with_trace,
    random() < 0.2 AS claimed,
    (%(reviewers)s)[1 + floor(random() * %(n_reviewers)s)::int] AS claimant,
    (ARRAY['approved', 'denied'])[1 + floor(random() * 2)::int] AS decision,
    round(random()::numeric, 3) AS confidence,
    CASE WHEN g <= %(open)s THEN now() - random() * interval '3 days'
         ELSE now() - interval '600 minutes'
             - random() * (interval '90 days' - interval '600 minutes')
    END AS created,
    interval '1 minute' + random() * interval '599 minutes' AS took
FROM generate_series(1, %(open)s + %(resolved)s) AS g;
UPDATE bench_rows SET took = NULL WHERE is_open;

INSERT INTO controls_approval (public_id, project_id, trace_id, span_id, agent, agent_version,
    tool, arguments, arguments_hash, risk, confidence, reason, status, created_at, expires_at,
    decided_at, decided_by, note)
SELECT md5(%(project)s || '-' || g)::uuid, %(project)s,
    CASE WHEN with_trace THEN lpad(to_hex(%(project)s), 4, '0') || lpad(to_hex(g), 28, '0')
         ELSE '' END,
    CASE WHEN with_trace THEN lpad(to_hex(g), 16, '0') ELSE '' END,
    agent, version, tool,
    jsonb_build_object('order_id', 'o-' || g,
                       'amount', round((100 + random() * 800)::numeric, 2)::text),
    encode(sha256(('o-' || g)::bytea), 'hex'), risk, confidence, 'refund over 100.00',
    CASE WHEN is_open THEN 'pending' ELSE decision END,
    created, created + interval '4 days', created + took,
    CASE WHEN is_open THEN '' ELSE 'reviewer-0' END, ''
FROM bench_rows WHERE with_approval;

INSERT INTO controls_reviewitem (project_id, source, approval_id, trace_id, span_id, agent,
    agent_version, phase, tool, risk, confidence, reason, status, resolution, claimed_by_id,
    claimed_at, resolved_by, resolved_at, note, created_at, sla_due_at, sla_alerted_at)
SELECT %(project)s, CASE WHEN with_approval THEN 'approval' ELSE source END, a.id,
    CASE WHEN with_trace THEN lpad(to_hex(%(project)s), 4, '0') || lpad(to_hex(g), 28, '0')
         ELSE '' END,
    CASE WHEN with_trace OR NOT with_approval THEN lpad(to_hex(g), 16, '0') ELSE '' END,
    r.agent, version, '', r.tool, r.risk, r.confidence,
    CASE WHEN with_approval THEN 'refund over 100.00' ELSE 'confidence below 0.600' END,
    CASE WHEN is_open THEN 'open' ELSE 'resolved' END,
    CASE WHEN is_open THEN '' WHEN with_approval THEN decision
         WHEN g %% 2 = 0 THEN 'approved' ELSE 'overridden' END,
    CASE WHEN is_open AND claimed THEN claimant END,
    CASE WHEN is_open AND claimed THEN created + interval '1 minute' END,
    CASE WHEN is_open THEN '' ELSE 'reviewer-0' END, created + took, '', created,
    created + make_interval(mins => CASE r.risk WHEN 'low' THEN 480 WHEN 'medium' THEN 120
        WHEN 'high' THEN 30 WHEN 'critical' THEN 10 ELSE 240 END), NULL
FROM bench_rows r
LEFT JOIN controls_approval a ON with_approval AND a.public_id = md5(%(project)s || '-' || g)::uuid
ORDER BY created;
DROP TABLE bench_rows;
"""


def generate(project, *, n_open: int, n_resolved: int, reviewers: list, rnd: random.Random):
    """Insert the project's items (and their approvals): in SQL on PostgreSQL, by
    bulk_create on SQLite. Returns the seconds taken."""
    from django.db import connection

    t0 = time.perf_counter()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                GENERATE,
                {
                    "project": project.pk,
                    "open": n_open,
                    "resolved": n_resolved,
                    "reviewers": [u.pk for u in reviewers],
                    "n_reviewers": len(reviewers),
                },
            )
    else:
        generate_orm(project, n_open=n_open, n_resolved=n_resolved, reviewers=reviewers, rnd=rnd)
    return time.perf_counter() - t0


def generate_orm(project, *, n_open: int, n_resolved: int, reviewers: list, rnd: random.Random):
    """The same through the ORM, for SQLite."""
    from django.utils import timezone

    from controls.approvals import arguments_hash
    from controls.models import Approval, ReviewItem

    now = timezone.now()
    sources = [s for s in ReviewItem.Source.values if s != ReviewItem.Source.APPROVAL]
    total = n_open + n_resolved
    for start in range(0, total, BATCH):
        items, approvals = [], []
        for i in range(start, min(total, start + BATCH)):
            is_open = i < n_open
            risk = rnd.choice(RISKS)
            if is_open:
                created = now - timedelta(seconds=rnd.uniform(0, 3 * 86400))
            else:
                created = now - timedelta(seconds=rnd.uniform(600 * 60, 90 * 86400))
            resolved_at = None if is_open else created + timedelta(minutes=rnd.uniform(1, 600))
            with_approval = rnd.random() < 0.3
            trace_id = f"{project.pk:04x}{i:028x}" if rnd.random() < 0.7 else ""
            fields = {
                "agent": rnd.choice(AGENTS),
                "agent_version": rnd.choice(VERSIONS),
                "tool": rnd.choice(TOOLS),
                "risk": risk,
                "confidence": Decimal(rnd.randrange(0, 1000)) / 1000,
                "reason": "refund over 100.00" if with_approval else "confidence below 0.600",
                "trace_id": trace_id,
                "span_id": f"{i:016x}" if trace_id or not with_approval else "",
            }
            approval = None
            if with_approval:
                decision = rnd.choice(["approved", "denied"])
                arguments = {"order_id": f"o-{i}", "amount": f"{rnd.uniform(100, 900):.2f}"}
                approval = Approval(
                    public_id=uuid.UUID(int=rnd.getrandbits(128)),
                    project=project,
                    arguments=arguments,
                    arguments_hash=arguments_hash(arguments),
                    status="pending" if is_open else decision,
                    created_at=created,
                    expires_at=created + timedelta(days=4),
                    decided_at=resolved_at,
                    decided_by="" if is_open else "reviewer-0",
                    **fields,
                )
                approvals.append(approval)
            claimed = is_open and rnd.random() < 0.2
            items.append(
                ReviewItem(
                    project=project,
                    source=ReviewItem.Source.APPROVAL if with_approval else rnd.choice(sources),
                    approval=approval,
                    status=ReviewItem.Status.OPEN if is_open else ReviewItem.Status.RESOLVED,
                    resolution=""
                    if is_open
                    else (approval.status if approval else rnd.choice(["approved", "overridden"])),
                    claimed_by=rnd.choice(reviewers) if claimed else None,
                    claimed_at=created + timedelta(minutes=1) if claimed else None,
                    resolved_by="" if is_open else "reviewer-0",
                    resolved_at=resolved_at,
                    created_at=created,
                    sla_due_at=created + timedelta(minutes=SLA_MINUTES[risk]),
                    **fields,
                )
            )
        Approval.objects.bulk_create(approvals)
        ReviewItem.objects.bulk_create(items)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--open", type=int, default=10_000)
    p.add_argument("--resolved", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="agentops_bench_queue", help="PostgreSQL database (dropped)")
    p.add_argument("--sqlite", action="store_true", help="use a SQLite file instead")
    args = p.parse_args()
    use_fresh_database(pg=args.pg, name=args.db, sqlite=args.sqlite)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from controls.models import ReviewItem, ReviewSla
    from controls.review import review_time_to_decision
    from traces.models import Membership, Project

    rnd = random.Random(42)
    project = Project.objects.create(slug="bench", name="bench")
    other = Project.objects.create(slug="other", name="other")
    User = get_user_model()
    viewer = User.objects.create_user(username="bench")
    reviewers = [viewer] + [User.objects.create_user(username=f"reviewer-{i}") for i in range(4)]
    for user in reviewers:
        Membership.objects.create(project=project, user=user, role=Membership.Role.ADMIN)
    for p_ in (project, other):
        for risk, minutes in SLA_MINUTES.items():
            ReviewSla.objects.create(project=p_, risk=risk, minutes=minutes)
    seconds = generate(
        project, n_open=args.open, n_resolved=args.resolved, reviewers=reviewers, rnd=rnd
    )
    generate(other, n_open=500, n_resolved=500, reviewers=reviewers[1:], rnd=rnd)
    if connection.vendor == "postgresql":
        with connection.cursor() as c:
            c.execute("VACUUM ANALYZE")
    items = ReviewItem.objects.filter(project=project)
    open_items = items.filter(status="open")
    now = timezone.now()
    print(
        f"{'SQLite' if args.sqlite else 'PostgreSQL'}: {args.open:,} open items "
        f"({open_items.filter(sla_due_at__lt=now).count():,} past their SLA, "
        f"{open_items.exclude(claimed_by=None).count():,} claimed, "
        f"{open_items.exclude(approval=None).count():,} approvals), {args.resolved:,} resolved "
        f"({items.filter(resolved_at__gte=now - timedelta(days=30)).count():,} in the last "
        f"30 days), inserted in {seconds:.0f} s"
    )

    settings.ALLOWED_HOSTS = ["testserver"]
    client = Client()
    client.force_login(viewer)
    approval_item = open_items.exclude(approval=None).order_by("created_at").first()
    flagged_item = open_items.filter(approval=None).exclude(claimed_by=None).first()
    slug = project.slug
    # The queue's first page and an item's page --repeat times; the other views a fifth.
    few = max(5, args.repeat // 5)
    pages = [
        ("queue, open (page 1)", f"/review/?project={slug}&state=open", args.repeat),
        ("item, approval request", f"/review/{approval_item.pk}/", args.repeat),
        ("item, flagged run (claimed)", f"/review/{flagged_item.pk}/", args.repeat),
        ("queue, open (page 200)", f"/review/?project={slug}&state=open&page=200", few),
        ("queue, claimed by me", f"/review/?project={slug}&state=mine", few),
        ("queue, resolved (page 1)", f"/review/?project={slug}&state=resolved", few),
    ]
    print(f"{'page':28s} {'loads':>5s} {'p50 ms':>8s} {'p99 ms':>8s} {'queries':>8s} {'rows':>5s}")
    for label, url, repeat in pages:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - t) * 1000)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        rows = response.content.count(b'class="card review-card') or 1
        print(
            f"{label:28s} {repeat:5d} {statistics.median(times):8.1f} {pct(times, 0.99):8.1f} "
            f"{len(queries):8d} {rows:5d}"
        )
    times = []
    for _ in range(few):
        t = time.perf_counter()
        review_time_to_decision(project_id=project.pk, since=now - timedelta(days=30), until=now)
        times.append((time.perf_counter() - t) * 1000)
    print(f"{'  of which time to decision':28s} {statistics.median(times):8.1f} (median alone)")


if __name__ == "__main__":
    main()
