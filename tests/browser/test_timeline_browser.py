"""The timeline in a real browser: log in, open a trace, select a span, read its details."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.factories import agent_run

# Playwright's sync API runs an event loop in this thread; Django would otherwise refuse
# the test's own database calls as "async unsafe".
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.browser


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found: install Debian's chromium package to run browser tests"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
        # Inside Playwright's event loop Django hands this context its own database
        # connection; close it, or the test database cannot be dropped afterwards.
        from django.db import connections

        connections.close_all()


def test_selecting_a_span_shows_its_tool_arguments(
    transactional_db, live_server, project, user, browser
):
    from playwright.sync_api import expect

    trace_id, _ = agent_run(project=project, tools=1)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(f"{live_server.url}/accounts/login/?next=/traces/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("pw-for-tests-1")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/traces/")

    page.get_by_role("link", name="invoke_agent support-agent").click()
    page.wait_for_url(f"**/p/{project.slug}/traces/{trace_id}/")
    rows = page.locator(".wf-row")
    expect(rows).to_have_count(4)

    rows.filter(has_text="execute_tool lookup_order").click()
    args = page.locator("#span-panel pre.tool-args")
    expect(args).to_contain_text('"order_id": 42')
    expect(page.locator("#span-panel pre.tool-result")).to_contain_text('"status": "shipped"')
    expect(rows.filter(has_text="execute_tool lookup_order")).to_have_attribute(
        "aria-selected", "true"
    )

    # Collapsing the root hides its subtree; the caret brings it back.
    page.locator(".wf-row").first.locator(".caret").click()
    expect(page.locator(".wf-row:visible")).to_have_count(1)
    page.locator(".wf-row").first.locator(".caret").click()
    expect(page.locator(".wf-row:visible")).to_have_count(4)
    assert errors == []
