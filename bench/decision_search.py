#!/usr/bin/env python3
"""Decision search with 1,000,000 decision records on PostgreSQL: latency of the searches
the Decisions page and API run (`controls.decision_memory`), p50 and p99.

    .venv/bin/python bench/decision_search.py [--rows 1000000] [--repeat 50] [--db NAME]
    .venv/bin/python bench/decision_search.py --reuse    # time the database made before

The records are generated in SQL (generate_series), not through the ORM: one project, 4
agents × 3 versions over 30 days, a context of 12 words drawn from a 2,000-word vocabulary
(Zipf-like: word i drawn with weight ~1/i, so a few words are in a large share of the rows
and most are rare), an action from 8, a person's action on half of them (agreeing 80 %).

Timed, each --repeat times with other words: one page of a search (count capped at
10,000 as the page and API count, + 25 rows, closest first) for a rare word, a common
word and two words; the same filtered by agent and outcome; similar past decisions of a
random record; the agreement per agent version, computed and as cached.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _server import use_fresh_database

VOCABULARY = 2000
ACTIONS = ["refund", "replace", "escalate", "deny", "verify_identity", "reship", "credit", "close"]


def word(i: int) -> str:
    # Letters only, so the english stemmer keeps them apart.
    letters = "abcdefghijklmnopqrstuvwxyz"
    text = ""
    n = i + 27
    while n:
        n, r = divmod(n, 26)
        text += letters[r]
    return f"w{text}"


def generate(project_id: int, rows: int) -> float:
    from django.db import connection

    t0 = time.perf_counter()
    words = "ARRAY[" + ",".join(f"'{word(i)}'" for i in range(VOCABULARY)) + "]"
    actions = "ARRAY[" + ",".join(f"'{a}'" for a in ACTIONS) + "]"
    # Zipf-like index: floor(V ** random()) is 1..V with P(i) ~ 1/i.
    pick = f"w[floor(power({VOCABULARY}, random()))::int]"
    context = " || ' ' || ".join([pick] * 12)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO controls_decisionrecord
              (project_id, trace_id, span_id, agent, agent_version, prompt_version, phase,
               context, options, action, confidence, policies, decided_at, human_action,
               human_action_at)
            SELECT %s, md5(g::text), substr(md5((g * 7)::text), 1, 16),
                   'agent-' || (g %% 4), (g %% 3)::text || '.0', 'p1', 'shadow',
                   {context}, '["refund","escalate"]'::jsonb, a, round(random()::numeric, 3),
                   '[]'::jsonb, now() - (g %% 2592000) * interval '1 second',
                   CASE WHEN g %% 2 = 0 THEN ''
                        WHEN random() < 0.8 THEN a ELSE 'escalate' END,
                   CASE WHEN g %% 2 = 0 THEN NULL ELSE now() END
            FROM (SELECT g, {words} AS w,
                         ({actions})[1 + g %% {len(ACTIONS)}] AS a
                  FROM generate_series(1, %s) AS g) AS s
            """,
            [project_id, rows],
        )
        cursor.execute("ANALYZE controls_decisionrecord")
    return time.perf_counter() - t0


def timed(fn, repeat: int) -> tuple[float, float]:
    samples = []
    for i in range(repeat):
        t0 = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
    return statistics.median(samples), p99


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="agentops_bench_decision_search")
    p.add_argument("--reuse", action="store_true", help="time the database --db generated before")
    args = p.parse_args()
    if args.reuse:
        import os

        import django

        os.environ["DATABASE_URL"] = f"{args.pg}/{args.db}"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops_site.settings")
        django.setup()
    else:
        use_fresh_database(pg=args.pg, name=args.db)

    from controls.decision_memory import (
        DecisionFilters,
        _agreement_by_version,
        agreement_by_version,
        decision_list,
        similar_decisions,
    )
    from controls.models import DecisionRecord
    from traces.models import Project
    from traces.paging import CappedPaginator

    if args.reuse:
        project = Project.objects.get(slug="bench")
        args.rows = DecisionRecord.objects.filter(project=project).count()
    else:
        project = Project.objects.create(slug="bench", name="bench")
        seconds = generate(project.pk, args.rows)
        print(f"{args.rows:,} decisions generated in {seconds:.0f} s")
    rng = random.Random(7)
    max_id = DecisionRecord.objects.order_by("-id").values_list("id", flat=True).first()

    def page(filters):
        def run(_i):
            qs = decision_list(project_id=project.pk, filters=DecisionFilters(**filters(rng)))
            one = CappedPaginator(qs, 25).get_page(1)  # as the page and the API count
            list(one)
            return one.paginator.count

        return run

    def similar(_i):
        record = DecisionRecord.objects.filter(id__gte=rng.randint(1, max_id)).first()
        similar_decisions(record)

    cases = [
        ("search, a rare word (rank 500–2,000)", page(lambda r: {"q": word(r.randint(500, 1999))})),
        ("search, a common word (rank 1–20)", page(lambda r: {"q": word(r.randint(1, 20))})),
        (
            "search, two words (ranks 1–200)",
            page(lambda r: {"q": f"{word(r.randint(1, 200))} {word(r.randint(1, 200))}"}),
        ),
        (
            "search + agent + outcome overridden, a rare word",
            page(
                lambda r: {
                    "q": word(r.randint(500, 1999)),
                    "agent": "agent-1",
                    "outcome": "overridden",
                }
            ),
        ),
        ("list, no query (newest first)", page(lambda r: {})),
        ("similar past decisions of a random record", similar),
        (
            "agreement per agent version, computed (once a minute per process)",
            lambda _i: _agreement_by_version(project_id=project.pk, agent="", phase=""),
        ),
        (
            "agreement per agent version, as the pages read it (cached)",
            lambda _i: agreement_by_version(project_id=project.pk),
        ),
    ]
    print(f"| what ({args.rows:,} decisions, PostgreSQL) | p50 | p99 |")
    print("|---|---|---|")
    for label, fn in cases:
        fn(0)  # warm
        p50, p99 = timed(fn, args.repeat)
        print(f"| {label} | {p50:.1f} ms | {p99:.1f} ms |")


if __name__ == "__main__":
    main()
