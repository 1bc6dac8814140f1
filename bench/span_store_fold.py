#!/usr/bin/env python3
"""Time of the ClickHouse span store's rollup read (`batch_spans`) for a typical batch,
as the table grows.

    .venv/bin/python bench/span_store_fold.py [--spans 10000000] [--runs 5]

Loads --spans small synthetic spans spread over 30 days into a chDB store in a temporary
directory (100,000 per insert), then stores a fresh 100-span batch and re-sends 100 spans
stored earlier in a batch of their own, and prints the median time of `batch_spans` for
each (what the rollup task reads every tick for the batches it claimed). The payloads
are small on purpose: this measures the key lookups, not the bytes
(bench/span_store_scale.py measures sizes and scans with realistic payloads).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops_site.settings")

import django

django.setup()

from traces.spanstore.clickhouse import ClickHouseSpanStore

CHUNK = 100_000
PROJECT = 1


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--spans", type=int, default=10_000_000)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()

    path = tempfile.mkdtemp(prefix="agentops-fold-")
    try:
        store = ClickHouseSpanStore(f"chdb://{path}")
        store.ensure_schema()
        start = datetime.now(UTC) - timedelta(days=30)
        step = timedelta(days=30) / args.spans
        rnd = random.Random(1)

        def span(i: int) -> dict:
            at = start + step * i
            return {
                "trace_id": f"{i // 10:032x}",
                "span_id": f"{i + 1:016x}",
                "name": "step",
                "duration_ms": 1.0,
                "started_at": at,
                "ended_at": at,
                "received_at": at,
                "model": rnd.choice(("gpt-4o", "gpt-4o-mini", "claude-sonnet")),
                "cost_usd": Decimal("0.001"),
                "attributes": {"k": "v" * 50},
            }

        t = time.perf_counter()
        for lo in range(0, args.spans, CHUNK):
            batch = [span(i) for i in range(lo, min(args.spans, lo + CHUNK))]
            store.insert_spans(PROJECT, batch, f"load-{lo}", retention_days=400)
        print(f"loaded {args.spans:,} spans in {time.perf_counter() - t:.0f} s")

        n = args.spans
        fresh = [span(i) for i in range(n, n + 100)]
        store.insert_spans(PROJECT, fresh, "fresh", retention_days=400)
        old = range(n // 2, n // 2 + 100)
        store.insert_spans(PROJECT, [span(i) for i in old], "resent", retention_days=400)
        for token, expected in (("fresh", 100), ("resent", 0)):
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                rows = store.batch_spans(PROJECT, [token], ["span_id"])
                times.append((time.perf_counter() - t) * 1000)
            assert len(rows) == expected, (token, len(rows))
            print(
                f"batch_spans of a {token} 100-span batch: {statistics.median(times):.1f} ms "
                f"median ({', '.join(f'{x:.1f}' for x in times)}), {len(rows)} rows"
            )
    finally:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
