#!/usr/bin/env python3
"""Retention of one expired day of spans: a partition dropped vs. rows deleted in batches.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<scratch db> \\
        .venv/bin/python bench/retention_drop.py 1000000          # the day's partition dropped
    DATABASE_URL=... .venv/bin/python bench/retention_drop.py 1000000 --rows   # rows deleted

Needs a migrated PostgreSQL database it may empty (it deletes every project). Loads N
spans into the day 40 days ago (SPAN_RETENTION_DAYS=30) and times one `enforce_retention`
run. With --rows a second project keeps 60 days, so the day's partition stays and the
spans of the first are deleted RETENTION_DELETE_BATCH rows per statement.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops_site.settings")

import django

django.setup()

from django.conf import settings
from django.db import connection

from traces import partitions
from traces.models import Project
from traces.partitions import enforce_retention, ensure_partitions

COLUMNS = (
    "project_id, trace_id, span_id, parent_span_id, name, kind, started_at, ended_at, "
    "duration_ms, status, status_message, error_type, step, role, service_name, agent, "
    "agent_version, prompt_version, model, provider, input_tokens, output_tokens, "
    "cached_input_tokens, cache_write_tokens, reasoning_tokens, tool_name, tool_call_id, "
    "tool_arguments, tool_result, session_id, user_id, cost_source, attributes, events, "
    "links, resource, scope, received_at"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("spans", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--rows", action="store_true", help="keep the partition; delete rows")
    args = parser.parse_args()
    if not partitions.is_partitioned():
        sys.exit("needs PostgreSQL with partitioned spans (DATABASE_URL=postgres://…)")
    now = datetime.now(UTC)
    day = (now - timedelta(days=40)).date()
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    settings.SPAN_RETENTION_DAYS = 30
    Project.objects.all().delete()
    project = Project.objects.create(slug="bench", name="bench")
    if args.rows:
        Project.objects.create(slug="keeps-longer", name="keeps longer", retention_days=60)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        if any(p.name == "traces_span_legacy" for p in partitions.partitions()):
            cursor.execute("ALTER TABLE traces_span DETACH PARTITION traces_span_legacy")
            cursor.execute("DROP TABLE traces_span_legacy")
    ensure_partitions(now=start)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO traces_span ({COLUMNS}) SELECT %s, md5(g::text), "
            "left(md5((g + 1)::text), 16), '', 'llm call', 1, "
            "%s::timestamptz + (g %% 86000) * interval '1 second', "
            "%s::timestamptz + (g %% 86000) * interval '1 second', 12.5, 'ok', '', '', 'llm', "
            "'', 'svc', 'agent', '1', '', 'gpt-4o-mini', 'openai', 100, 20, 0, 0, 0, '', '', "
            "'', '', '', '', 'price_data', "
            """('{"gen_ai.system": "openai", "note": "' || repeat('x', 200) || '"}')::jsonb, """
            "'[]', '[]', '{}', '{}', now() FROM generate_series(1, %s) g",
            [project.pk, start, start, args.spans],
        )
        cursor.execute("ANALYZE traces_span")
    print(f"loaded {args.spans} spans in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    report = enforce_retention(now=now)
    print(f"retention run: {time.perf_counter() - started:.2f} s")
    for line in report.lines():
        if "(about 0 spans)" not in line:
            print(" ", line)


if __name__ == "__main__":
    main()
