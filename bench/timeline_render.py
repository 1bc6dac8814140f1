#!/usr/bin/env python3
"""Server time to render the timeline page of a 2,000-span trace (and the trace list).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/agentops_bench_ui \
        .venv/bin/python bench/timeline_render.py [--spans 2000] [--repeat 15] [--keep]

Creates the database tables if needed, ingests one trace of --spans spans through the
real ingest service (an agent calling tools and models in nested steps, with message
content like a real run), then requests the timeline page with a logged-in Django test
client (the whole server side: URL routing, middleware, queries, template, no network)
--repeat times; also the page with its row index not cached ("cold") and a window of
rows fetched by offset ("rows"). Prints the median and p90 in milliseconds and the
number of queries. --keep reuses the trace of an earlier run of the same size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops_site.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1")

import django

django.setup()

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from traces.ingest import span_batch_ingest
from traces.models import Membership, Project, Span, Trace
from traces.otlp import RawSpan


def span(trace_id, span_id, parent, name, kind, start_ns, duration_ms, attributes, status=0):
    return RawSpan(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_ns=start_ns,
        end_ns=start_ns + duration_ms * 10**6,
        attributes=attributes,
        events=[],
        links=[],
        status_code=status,
        status_message="",
        resource={"service.name": "bench"},
        scope={"name": "bench"},
    )


def big_trace(n: int, start: datetime) -> tuple[str, list[RawSpan]]:
    """A root agent span, then groups of (plan LLM call → tool call → nested HTTP span)."""
    trace_id = os.urandom(16).hex()
    t0 = int(start.timestamp() * 1e9)
    root = os.urandom(8).hex()
    spans = []
    t = t0
    i = 0
    messages = [{"role": "user", "parts": [{"type": "text", "content": "Investigate " * 20}]}]
    while len(spans) < n - 1:
        i += 1
        llm = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 900 + i,
            "gen_ai.usage.output_tokens": 60,
            "gen_ai.input.messages": json.dumps(messages),
        }
        spans.append(span(trace_id, os.urandom(8).hex(), root, "chat gpt-4o-mini", 3, t, 800, llm))
        t += 810_000_000
        tool_id = os.urandom(8).hex()
        tool = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "search",
            "gen_ai.tool.call.arguments": json.dumps({"q": f"step {i}"}),
            "gen_ai.tool.call.result": json.dumps({"hits": list(range(20))}),
        }
        status = 2 if i % 50 == 0 else 0
        spans.append(span(trace_id, tool_id, root, "execute_tool search", 1, t, 300, tool, status))
        http = {"http.request.method": "GET", "url.full": "https://search.example"}
        spans.append(span(trace_id, os.urandom(8).hex(), tool_id, "GET", 3, t + 10**7, 240, http))
        t += 310_000_000
    spans = spans[: n - 1]
    agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher"}
    duration_ms = (t - t0) // 10**6 + 2
    spans.append(
        span(trace_id, root, "", "invoke_agent researcher", 1, t0 - 10**6, duration_ms, agent, 1)
    )
    return trace_id, spans


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--spans", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument(
        "--keep", action="store_true", help="reuse the bench trace if it has --spans spans"
    )
    args = p.parse_args()

    call_command("migrate", verbosity=0)
    project, _ = Project.objects.get_or_create(slug="bench-ui", defaults={"name": "bench ui"})
    user, _ = get_user_model().objects.get_or_create(username="bench-ui")
    Membership.objects.get_or_create(project=project, user=user)
    kept = Trace.objects.filter(project=project, span_count=args.spans).first()
    if args.keep and kept:
        trace_id = kept.trace_id
    else:
        Span.objects.filter(project=project).delete()
        Trace.objects.filter(project=project).delete()
        trace_id, spans = big_trace(args.spans, datetime.now(UTC) - timedelta(hours=1))
        for i in range(0, len(spans), 500):
            span_batch_ingest(project_id=project.pk, spans=spans[i : i + 500])
    assert Trace.objects.get(project=project, trace_id=trace_id).span_count == args.spans

    client = Client()
    client.force_login(user)
    timeline = f"/p/{project.slug}/traces/{trace_id}/"
    # "cold": the trace's row index (cached per trace version) is dropped before each
    # request, as for the first view of a trace; "rows": a window from the middle, what
    # the page fetches as it scrolls.
    pages = {
        "timeline": timeline,
        "cold": timeline,
        "rows": f"{timeline}rows/?offset={args.spans // 2}",
        "trace list": "/traces/",
    }
    try:
        from traces.timeline import timeline_index_cache_clear as clear_index
    except ImportError:  # a version of the console without it
        clear_index = None
    for label, url in pages.items():
        response = client.get(url)  # warm-up (template compilation, caches)
        if response.status_code == 404 and label == "rows":
            continue  # a version of the console without the rows endpoint
        assert response.status_code == 200, (url, response.status_code)
        times = []
        for _ in range(args.repeat):
            if label == "cold":
                cache.clear()
                if clear_index is not None:
                    clear_index()
            t = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - t) * 1000)
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        times.sort()
        print(
            f"{label:10s} {args.spans} spans: median {statistics.median(times):.1f} ms, "
            f"p90 {times[int(len(times) * 0.9) - 1]:.1f} ms, "
            f"{len(response.content) / 1024:.0f} KiB, "
            f"{len(queries)} queries ({connection.vendor})"
        )


if __name__ == "__main__":
    main()
