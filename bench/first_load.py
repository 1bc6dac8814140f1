#!/usr/bin/env python3
"""The first load of the Overview page in a real browser, served as in production.

    .venv/bin/python bench/first_load.py [--repeat 5] [--port 8204]

Production settings (AGENTOPS_ENV=production, DEBUG off, `collectstatic` into a
temporary STATIC_ROOT, whitenoise serving it) on a fresh SQLite database with 200 agent
runs over the last day, behind the production web server (`bench/_server.py`). Headless
Chromium (/usr/bin/chromium) logs in, then loads /overview/:

- cold: the browser cache emptied before the load;
- warm: the same page opened again (what a user who came before gets).

For each it prints the bytes transferred (sum of the encoded sizes over the network, as
Chrome's DevTools count them), the number of requests that reached the server and the
time to the load event, unthrottled on loopback and with the network throttled to
20 Mbit/s down and 40 ms round trip. Medians of --repeat loads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._server import start

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "bench-password-1"  # noqa: S105 (a throwaway database)
THROTTLED = {
    "offline": False,
    "latency": 40,
    "downloadThroughput": 20_000_000 / 8,
    "uploadThroughput": 5_000_000 / 8,
}


def prepare(env: dict, *, reuse: bool = False) -> None:
    """Migrate, seed and collect static files in a child process with `env`; with
    `reuse`, only collect the static files that changed since."""
    if reuse:
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        return
    code = (
        "import django, os; django.setup();"
        "from datetime import timedelta;"
        "from django.core.management import call_command;"
        "from django.utils import timezone;"
        "call_command('migrate', verbosity=0);"
        "call_command('collectstatic', interactive=False, verbosity=0);"
        "from tests.factories import MembershipFactory, ProjectFactory, UserFactory, agent_run;"
        "p = ProjectFactory(slug='bench', name='Bench');"
        f"u = UserFactory(username='bench', password={PASSWORD!r});"
        "MembershipFactory(project=p, user=u, role='admin');"
        "now = timezone.now();"
        "[agent_run(project=p, agent=f'agent-{i % 4}', start=now - timedelta(minutes=7 * i),"
        " error=i % 13 == 0) for i in range(200)];"
        "call_command('rollup_spans', verbosity=0)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)


def measure(page, cdp, url: str, *, cold: bool) -> tuple[int, int, float]:
    received: dict[str, float] = {}

    def finished(event):
        received[event["requestId"]] = event["encodedDataLength"]

    cdp.on("Network.loadingFinished", finished)
    if cold:
        cdp.send("Network.clearBrowserCache")
    page.goto(url, wait_until="load")
    page.wait_for_timeout(200)  # the last loadingFinished events
    timing = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return n.loadEventEnd - n.startTime; }"
    )
    served = sum(1 for size in received.values() if size > 0)
    return int(sum(received.values())), served, float(timing)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--port", type=int, default=8204)
    parser.add_argument("--reuse", type=Path, help="the folder of an earlier run to use again")
    args = parser.parse_args()

    tmp = args.reuse or Path(tempfile.mkdtemp(prefix="agentops-first-load-"))
    base = f"http://127.0.0.1:{args.port}"
    env = {
        **os.environ,
        "AGENTOPS_ENV": "production",
        "DEBUG": "false",
        "SECRET_KEY": "first-load-bench-" + "x" * 40,
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "VAR_DIR": str(tmp),
        "STATIC_ROOT": str(tmp / "static"),
        "PUBLIC_URL": base,
        "SECURE_COOKIES": "false",
        "DJANGO_SETTINGS_MODULE": "agentops_site.settings",
    }
    prepare(env, reuse=args.reuse is not None)
    server = start(server="asgi", port=args.port, workers=1, env=env)
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
            )
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{base}/accounts/login/?next=/overview/")
            page.get_by_label("Username").fill("bench")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{base}/overview/")
            cdp = context.new_cdp_session(page)
            cdp.send("Network.enable")
            plotly = page.evaluate(
                "() => document.querySelector('script[src*=plotly]').getAttribute('src')"
            )
            answer = context.request.get(base + plotly, headers={"Accept-Encoding": "gzip, br"})
            print(
                f"{plotly}: {answer.headers.get('content-encoding')},"
                f" Cache-Control: {answer.headers.get('cache-control')}"
            )
            for label, conditions in (("loopback", None), ("20 Mbit/s, 40 ms", THROTTLED)):
                if conditions:
                    cdp.send("Network.emulateNetworkConditions", conditions)
                for kind in ("cold", "warm"):
                    runs = [
                        measure(page, cdp, f"{base}/overview/", cold=kind == "cold")
                        for _ in range(args.repeat)
                    ]
                    size = statistics.median(r[0] for r in runs)
                    served = statistics.median(r[1] for r in runs)
                    ms = statistics.median(r[2] for r in runs)
                    print(
                        f"{label:18} {kind}: {size / 1024:8.1f} KiB transferred,"
                        f" {served:g} responses, load event at {ms:7.1f} ms"
                    )
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
