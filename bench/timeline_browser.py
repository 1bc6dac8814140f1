#!/usr/bin/env python3
"""The timeline of a big trace in headless Chromium: time to first rows, then a scroll
through every row (frame times, long tasks), then "Next error".

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/agentops_bench_ui \\
        .venv/bin/python bench/timeline_browser.py [--spans 20000] [--port 8201] [--runs 3]

Ingests one trace of --spans spans (bench/timeline_render.py's agent loop, an error every
150 spans) unless the bench project already holds one that size, starts the console
(gunicorn + uvicorn workers, as `manage.py up` does) on --port, logs in through the form,
and for each of --runs page loads measures:

- first rows: from navigation start to the first waterfall row in the DOM (and the HTML
  size, DOMContentLoaded, long tasks up to then);
- scroll: the page scrolled from top to bottom by --step px per animation frame (for at
  most --max-scroll-s seconds); the median / p95 / longest frame, the long tasks
  (> 50 ms) and their total, and the most rows the DOM held at once;
- next error: a click on "Next error" until an error row is selected.

--root serves another checkout of the console (say, an older version) to compare.
Debian's /usr/bin/chromium is driven through Playwright (executable_path).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops_site.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1")

CHROMIUM = "/usr/bin/chromium"
USERNAME, PASSWORD = "bench-browser", "bench-browser-pw-0123"

# Runs in the page before its own scripts: long tasks from the very start.
OBSERVE = """
window.__longtasks = [];
try {
  new PerformanceObserver(function (list) {
    list.getEntries().forEach(function (e) { window.__longtasks.push([e.startTime, e.duration]); });
  }).observe({ type: "longtask", buffered: true });
} catch (e) {}
"""

SCROLL = """
async ([step, limit]) => {
  const frames = [];
  let most = document.querySelectorAll(".wf-row").length;
  const lt0 = window.__longtasks.length;
  const t0 = performance.now();
  await new Promise((done) => {
    let last = performance.now();
    function tick(now) {
      frames.push(now - last);
      last = now;
      const rows = document.querySelectorAll(".wf-row").length;
      if (rows > most) most = rows;
      const bottom = document.documentElement.scrollHeight - window.innerHeight;
      if (window.scrollY >= bottom - 1 || now - t0 > limit) { done(); return; }
      window.scrollBy(0, step);
      requestAnimationFrame(tick);
    }
    requestAnimationFrame(tick);
  });
  const tasks = window.__longtasks.slice(lt0).map((t) => t[1]);
  return { frames: frames.slice(1), ms: performance.now() - t0, most, tasks,
           height: document.documentElement.scrollHeight, y: window.scrollY };
}
"""


def prepare(spans: int) -> tuple[str, str]:
    """The bench project's slug and a trace of `spans` spans, ingested if missing."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from bench.timeline_render import big_trace
    from traces.ingest import span_batch_ingest
    from traces.models import Membership, Project, Trace

    call_command("migrate", verbosity=0)
    project, _ = Project.objects.get_or_create(
        slug="bench-browser", defaults={"name": "bench browser"}
    )
    user, _ = get_user_model().objects.get_or_create(username=USERNAME)
    user.set_password(PASSWORD)
    user.save()
    Membership.objects.get_or_create(project=project, user=user)
    trace = Trace.objects.filter(project=project, span_count=spans).first()
    if trace is None:
        trace_id, raw = big_trace(spans, datetime.now(UTC) - timedelta(hours=1))
        for i in range(0, len(raw), 500):
            span_batch_ingest(project_id=project.pk, spans=raw[i : i + 500])
        trace = Trace.objects.get(project=project, trace_id=trace_id)
    assert trace.span_count == spans, trace.span_count
    from django.db import connections

    connections.close_all()
    return project.slug, trace.trace_id


def serve(root: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "ACCESS_LOG": "",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
    }
    cmd = [
        sys.executable, "-m", "gunicorn", "-c", "python:agentops_site.gunicorn_conf",
        "--log-level", "warning", "agentops_site.asgi:application",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=root, env=env)
    for _ in range(150):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the server did not come up")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--spans", type=int, default=20000)
    p.add_argument("--port", type=int, default=8201)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--step", type=int, default=600, help="px scrolled per frame")
    p.add_argument(
        "--max-scroll-s", type=float, default=300, help="stop a scroll-through after this"
    )
    p.add_argument("--root", type=Path, default=ROOT, help="the checkout to serve")
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=900)
    args = p.parse_args()

    slug, trace_id = prepare(args.spans)
    from playwright.sync_api import sync_playwright

    server = serve(args.root, args.port)
    base = f"http://127.0.0.1:{args.port}"
    results = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
            )
            context = browser.new_context(viewport={"width": args.width, "height": args.height})
            context.add_init_script(OBSERVE)
            page = context.new_page()
            page.goto(f"{base}/accounts/login/")
            page.get_by_label("Username").fill(USERNAME)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_load_state()
            url = f"{base}/p/{slug}/traces/{trace_id}/"
            page.goto(url)  # warm-up: the server's caches and Chromium's
            for _ in range(args.runs):
                page.goto("about:blank")
                page.goto(url, wait_until="commit")
                page.wait_for_selector(".wf-row[role=treeitem]", state="attached")
                first = page.evaluate(
                    """() => {
                      const nav = performance.getEntriesByType("navigation")[0];
                      return { first: performance.now(),
                               html: nav.transferSize || nav.encodedBodySize,
                               ttfb: nav.responseStart, dcl: nav.domContentLoadedEventEnd,
                               tasks: window.__longtasks.map((t) => t[1]) };
                    }"""
                )
                page.wait_for_load_state("load")
                page.wait_for_timeout(300)
                scroll = page.evaluate(SCROLL, [args.step, args.max_scroll_s * 1000])
                page.evaluate("window.scrollTo(0, 0)")
                next_ms = None
                button = page.locator("[data-action=next-error]")
                if button.count() and button.is_enabled():
                    t = time.perf_counter()
                    button.click()
                    page.wait_for_selector(".wf-row.is-error[aria-selected=true]")
                    next_ms = (time.perf_counter() - t) * 1000
                results.append((first, scroll, next_ms))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(f"{args.spans} spans, {args.width}x{args.height}, {args.runs} page loads ({args.root})")
    for k, (first, scroll, next_ms) in enumerate(results, 1):
        frames = scroll["frames"]
        print(
            f"  load {k}: first rows {first['first']:.0f} ms (TTFB {first['ttfb']:.0f} ms, "
            f"DOMContentLoaded {first['dcl']:.0f} ms, HTML {first['html'] / 1024:.0f} KiB, "
            f"long tasks {len(first['tasks'])} / {sum(first['tasks']):.0f} ms); "
            f"scroll {scroll['y']:.0f} of {scroll['height']} px in {scroll['ms']:.0f} ms: "
            f"frame median "
            f"{statistics.median(frames):.1f} ms, p95 {pct(frames, 0.95):.1f} ms, "
            f"max {max(frames):.0f} ms, long tasks {len(scroll['tasks'])} / "
            f"{sum(scroll['tasks']):.0f} ms, most rows in DOM {scroll['most']}"
            + (f"; next error {next_ms:.0f} ms" if next_ms is not None else "")
        )
    firsts = [r[0]["first"] for r in results]
    p95s = [pct(r[1]["frames"], 0.95) for r in results]
    print(
        f"median: first rows {statistics.median(firsts):.0f} ms, "
        f"scroll frame p95 {statistics.median(p95s):.1f} ms"
    )


if __name__ == "__main__":
    main()
