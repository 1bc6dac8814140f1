#!/usr/bin/env python3
"""The contract-check pass over a month of checks: partitioned by day vs. one plain table.

    createdb -h 127.0.0.1 -U postgres agentops_bench_checks
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/agentops_bench_checks \\
        .venv/bin/python manage.py migrate -v0
    DATABASE_URL=… .venv/bin/python bench/contract_check_scan.py --checks-per-day 200000
    DATABASE_URL=… .venv/bin/python bench/contract_check_scan.py --checks-per-day 200000 --plain

Needs a migrated PostgreSQL database it may empty (it deletes every project). Loads
`--days` days of contract checks (`--checks-per-day` a day, for spans already gone), the
tool spans of the last CONTRACT_CHECK_WINDOW_HOURS (`--window-spans` already checked,
`--new` not yet) and `--old-spans-per-day` spans a day before the window, then VACUUM
ANALYZE as autovacuum would. Times what the 30-second task does,
`contract_checks_run(since=…)` over the window: first with the new spans to check, then
(the steady state) with every span checked. `--plain` first turns the checks table back
into one plain table (the migration's reverse), to compare. Medians of `--runs`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops_site.settings")

import django

django.setup()

from django.conf import settings
from django.db import connection, transaction
from retention_drop import COLUMNS as SPAN_COLUMNS

from controls.checks import contract_checks_run
from controls.models import ContractCheck
from traces import partitions
from traces.models import Project
from traces.partitions import ensure_partitions

CHECKS = ContractCheck._meta.db_table


def _drop_legacy() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for t in partitions.daily_tables():
            legacy = f"{t.table}_legacy"
            if any(p.name == legacy for p in partitions.partitions(t.table)):
                cursor.execute(f"ALTER TABLE {t.table} DETACH PARTITION {legacy}")
                cursor.execute(f"DROP TABLE {legacy}")


def _load(project_id: int, args, now: datetime) -> None:
    first = now - timedelta(days=args.days)
    with connection.cursor() as cursor:
        # Older spans (a tenth of them tool calls), received as they started.
        cursor.execute(
            f"INSERT INTO traces_span ({SPAN_COLUMNS}) SELECT %s, md5('o' || g), "
            "left(md5('p' || g), 16), '', 'span', 1, at, at, 12.5, 'ok', '', '', "
            "CASE WHEN g %% 10 = 0 THEN 'tool' ELSE 'llm' END, '', 'svc', 'agent', '1', '', "
            "'', '', 0, 0, 0, 0, 0, '', '', '', '', '', '', 'none', '{}', '[]', '[]', '{}', "
            "'{}', at FROM (SELECT g, %s::timestamptz + (g * 86400.0 / %s) * interval "
            "'1 second' AS at FROM generate_series(0, %s - 1) g) x",
            [
                project_id,
                first,
                max(args.old_spans_per_day, 1),
                args.old_spans_per_day * (args.days - 1),
            ],
        )
        # A month of checks, spread over each day.
        cursor.execute(
            f"INSERT INTO {CHECKS} (project_id, trace_id, span_id, tool_name, contract_id, "
            "contract_version, agent, agent_version, outcome, detail, span_started_at, "
            "checked_at) SELECT %s, md5(g::text), left(md5((g + 1)::text), 16), 'refund', "
            "NULL, '', 'agent', '1', 'no_contract', '{}', "
            "%s::timestamptz + (g * 86400.0 / %s) * interval '1 second', now() "
            "FROM generate_series(1, %s) g",
            [project_id, first, args.checks_per_day, args.checks_per_day * args.days],
        )
        # The window's tool spans: `window_spans` checked ("tool refund"), `new` not yet
        # ("tool new"), spread over the window.
        window = timedelta(hours=settings.CONTRACT_CHECK_WINDOW_HOURS)
        for name, n in (("tool refund", args.window_spans), ("tool new", args.new)):
            cursor.execute(
                f"INSERT INTO traces_span ({SPAN_COLUMNS}) SELECT %s, md5(%s || g), "
                "left(md5('s' || %s || g), 16), '', %s, 1, at, at, 12.5, 'ok', '', '', "
                "'tool', '', 'svc', 'agent', '1', '', '', '', 0, 0, 0, 0, 0, 'refund', '', "
                """'{"amount": 5}', '{"ok": true}', '', '', 'none', '{}', '[]', '[]', '{}', """
                "'{}', now() FROM (SELECT g, %s::timestamptz + (g * %s / %s) * "
                "interval '1 second' AS at FROM generate_series(1, %s) g) x",
                [project_id, name, name, name, now - window, window.total_seconds() * 0.99, n, n],
            )
        cursor.execute(
            f"INSERT INTO {CHECKS} (project_id, trace_id, span_id, tool_name, contract_version, "
            "agent, agent_version, outcome, detail, span_started_at, checked_at) "
            "SELECT project_id, trace_id, span_id, 'refund', '', 'agent', '1', 'no_contract', "
            "'{}', started_at, now() FROM traces_span WHERE project_id = %s "
            "AND name = 'tool refund'",
            [project_id],
        )
    # As autovacuum leaves an insert-only table: statistics, visibility map, BRIN ranges.
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {CHECKS}")
        cursor.execute("VACUUM ANALYZE traces_span")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--checks-per-day", type=int, default=200_000)
    p.add_argument("--window-spans", type=int, default=20_000)
    p.add_argument("--new", type=int, default=2_000)
    p.add_argument(
        "--old-spans-per-day", type=int, default=0, help="spans of the days before the window"
    )
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--plain", action="store_true", help="one plain checks table instead")
    args = p.parse_args()
    if not partitions.is_partitioned():
        sys.exit("needs PostgreSQL with partitioned spans (DATABASE_URL=postgres://…)")
    now = datetime.now(UTC)
    settings.SPAN_RETENTION_DAYS = args.days + 5
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE traces_span, {CHECKS}")
    Project.objects.all().delete()
    project = Project.objects.create(slug="bench", name="bench")
    migration = importlib.import_module("controls.migrations.0009_contractcheck_partitions")
    editor = SimpleNamespace(connection=connection)
    with transaction.atomic():  # as `migrate` runs it
        if args.plain:
            migration.backward(None, editor)
        else:
            migration.forward(None, editor)  # partitioned again if a --plain run left it plain
        _drop_legacy()
        day = now - timedelta(days=args.days + 1)
        while day < now:
            ensure_partitions(now=day)
            day += timedelta(days=settings.SPAN_PARTITION_AHEAD_DAYS)
        ensure_partitions(now=now)
    started = time.perf_counter()
    _load(project.pk, args, now)
    layout = "plain table" if args.plain else f"{len(partitions.partitions(CHECKS))} partitions"
    print(
        f"loaded {args.checks_per_day * args.days + args.window_spans} checks ({layout}) and "
        f"{args.window_spans + args.new} window spans in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    since = now - timedelta(hours=settings.CONTRACT_CHECK_WINDOW_HOURS)
    first, steady = [], []
    for _ in range(args.runs):
        started = time.perf_counter()
        examined = contract_checks_run(since=since)
        first.append(time.perf_counter() - started)
        assert examined == args.new, examined
        started = time.perf_counter()
        assert contract_checks_run(since=since) == 0
        steady.append(time.perf_counter() - started)
        # the new spans' checks away again for the next run
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {CHECKS} c USING traces_span s WHERE c.span_started_at >= %s "
                "AND s.project_id = c.project_id AND s.trace_id = c.trace_id "
                "AND s.span_id = c.span_id AND s.name = 'tool new'",
                [since - timedelta(hours=1)],
            )
    ms = [round(x * 1000) for x in first]
    ms_steady = [round(x * 1000) for x in steady]
    print(f"check {args.new} new spans: median {statistics.median(ms)} ms  {ms}")
    print(f"nothing new (steady state): median {statistics.median(ms_steady)} ms  {ms_steady}")
    if args.plain:
        with transaction.atomic():
            migration.forward(None, editor)  # leave the database as migrate made it


if __name__ == "__main__":
    main()
