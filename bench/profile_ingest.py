#!/usr/bin/env python3
"""Where ingestion time goes, in-process, without HTTP: decode → map → price → write.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/agentops_bench \
        .venv/bin/python bench/profile_ingest.py --corpus /tmp/corpus [--pyinstrument]

The corpus is a `otlp_load.py --dump` folder (gzip protobuf bodies). Prints the time
per stage per span. The database must exist and be migrated.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops_site.settings")

import django

django.setup()

from django.db import connection

from traces import conventions, otlp
from traces.ingest import span_batch_ingest
from traces.models import Project
from traces.pricing import PriceBook


def load_bodies(folder: Path) -> list[bytes]:
    manifest = json.loads((folder / "manifest.json").read_text())
    out = []
    for batch in manifest["batches"]:
        name = batch["file"]
        data = (folder / name).read_bytes()
        out.append(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", required=True, type=Path)
    p.add_argument("--pyinstrument", action="store_true")
    args = p.parse_args()
    bodies = load_bodies(args.corpus)
    project, _ = Project.objects.get_or_create(slug="profile", defaults={"name": "profile"})
    with connection.cursor() as c:
        c.execute("DELETE FROM traces_span WHERE project_id = %s", [project.pk])
        c.execute("DELETE FROM traces_trace WHERE project_id = %s", [project.pk])

    t = time.perf_counter()
    decoded = [otlp.decode_protobuf(b) for b in bodies]
    t_decode = time.perf_counter() - t
    n = sum(len(d) for d in decoded)
    t = time.perf_counter()
    mapped = [conventions.map_span(s) for d in decoded for s in d]
    t_map = time.perf_counter() - t
    book = PriceBook.load()
    t = time.perf_counter()
    now = datetime.now(UTC)
    for m in mapped:
        book.price(
            provider=m.provider,
            model=m.model,
            at=now,
            input_tokens=m.input_tokens,
            output_tokens=m.output_tokens,
            cached_input_tokens=m.cached_input_tokens,
            cache_write_tokens=m.cache_write_tokens,
            reasoning_tokens=m.reasoning_tokens,
            reported_cost=m.reported_cost,
        )
    t_price = time.perf_counter() - t

    profiler = None
    if args.pyinstrument:
        from pyinstrument import Profiler

        profiler = Profiler()
        profiler.start()
    t = time.perf_counter()
    for d in decoded:
        span_batch_ingest(project_id=project.pk, spans=d)
    t_all = time.perf_counter() - t
    if profiler:
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    us = 1e6 / n
    print(f"{n} spans in {len(bodies)} requests")
    print(f"decode     {t_decode * us:7.1f} µs/span")
    print(f"map        {t_map * us:7.1f} µs/span")
    print(f"price      {t_price * us:7.1f} µs/span")
    print(
        f"ingest     {t_all * us:7.1f} µs/span (map + price + write, one transaction per request)"
    )
    print(f"=> single-core ceiling ≈ {n / (t_decode + t_all):,.0f} spans/s")


if __name__ == "__main__":
    main()
