"""The timeline in a real browser: log in, open a trace, select a span, read its details."""

from __future__ import annotations

import itertools
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


def log_in(page, live_server, next_url: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/?next={next_url}")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("pw-for-tests-1")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}{next_url}")


AXIS_LABELS = """() => Array.from(document.querySelectorAll('#wf-axis span')).map((s) => {
  const r = s.getBoundingClientRect();
  return [s.textContent, r.left, r.right];
})"""


def assert_round_ticks(labels) -> None:
    """Labels are multiples of one 1, 2 or 5 × 10^n step, in order, none overlapping."""
    import math

    values = []
    for text, _left, _right in labels:
        if text == "0":
            values.append(0.0)
        else:
            number, unit = text.split(" ")
            values.append(float(number) * (1000 if unit == "s" else 1))
    assert len(values) >= 2, labels
    steps = {round(b - a, 6) for a, b in itertools.pairwise(values)}
    assert len(steps) == 1, labels
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 5), labels
    for (_t1, _l1, right), (_t2, left, _r2) in itertools.pairwise(labels):
        assert right <= left, labels


def test_a_big_trace_loads_its_rows_as_they_scroll_into_view(
    transactional_db, live_server, project, user, browser, settings
):
    from playwright.sync_api import expect

    from tests.traces.test_timeline_windows import loop_trace

    settings.TIMELINE_FULL_ROWS = 60
    settings.TIMELINE_WINDOW_ROWS = 50
    trace_id, _ids = loop_trace(project, 400, errors={300}, slow={350})
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    url = f"/p/{project.slug}/traces/{trace_id}/"
    log_in(page, live_server, url)

    rows = page.locator(".wf-row[role=treeitem]")
    expect(rows.first).to_contain_text("root")
    expect(rows.first).to_contain_text("400 spans")  # the trace's totals on its root row
    assert rows.count() < 100  # only what the screen shows, not 400 rows
    assert_round_ticks(page.evaluate(AXIS_LABELS))

    # Scrolled to the end, the last rows are fetched and drawn.
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    expect(page.locator(".wf-row[role=treeitem]", has_text="step 399")).to_be_visible()
    assert page.locator(".wf-row").count() < 100

    # Next error / next slow span jump to rows that may not be loaded yet.
    page.evaluate("window.scrollTo(0, 0)")
    page.get_by_role("button", name="Next error").click()
    selected = page.locator(".wf-row[aria-selected=true]")
    expect(selected).to_contain_text("step 300")
    expect(selected).to_be_in_viewport()
    expect(page.locator("#span-panel")).to_contain_text("step 300")
    page.get_by_role("button", name="Next slow span").click()
    expect(selected).to_contain_text("step 350")

    # Zooming rescales the axis to round ticks again and narrows the minimap's window.
    page.get_by_role("button", name="Zoom in").click()
    page.get_by_role("button", name="Zoom in").click()
    assert_round_ticks(page.evaluate(AXIS_LABELS))
    box = page.locator("#wf-minimap-view").bounding_box()
    whole = page.locator("#wf-minimap").bounding_box()
    assert box["width"] < whole["width"] / 3
    assert errors == []


def test_the_timeline_fits_a_phone(transactional_db, live_server, project, user, browser):
    from playwright.sync_api import expect

    trace_id, _ = agent_run(project=project, tools=2)
    page = browser.new_page(viewport={"width": 390, "height": 844})
    url = f"/p/{project.slug}/traces/{trace_id}/"
    log_in(page, live_server, url)
    expect(page.locator(".wf-row[role=treeitem]")).to_have_count(5)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert_round_ticks(page.evaluate(AXIS_LABELS))
