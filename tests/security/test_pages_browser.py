"""Every page in a real browser under the production Content Security Policy: no console
error, no CSP violation, and the Plotly charts drawn (plotly.js runs without eval)."""

from __future__ import annotations

import os

import pytest

from tests.browser.test_timeline_browser import browser  # noqa: F401  (the Chromium fixture)
from tests.security.conftest import CHART_PAGES

# Playwright's sync API runs an event loop in this thread; Django would otherwise refuse
# the test's own database calls as "async unsafe".
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = pytest.mark.browser

# Playwright injects this before any page script and outside the page's policy.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push([e.violatedDirective, e.blockedURI, e.sourceFile, e.lineNumber].join(" "));
});
"""


def test_every_page_runs_under_the_policy_without_errors(
    transactional_db,
    live_server,
    project,
    user,
    site_pages,
    browser,  # noqa: F811
):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"{page.url}: uncaught {e}"))
    page.on(
        "console",
        lambda m: (
            problems.append(f"{page.url}: console {m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("pw-for-tests-1")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/overview/")

    for name, url in site_pages.items():
        response = page.goto(f"{live_server.url}{url}")
        assert response.status == 200, name
        assert "script-src 'self'" in response.headers["content-security-policy"], name
        page.wait_for_load_state("load")
        if name in CHART_PAGES:
            charts = page.locator("[data-figure]")
            assert charts.count() > 0, name
            for i in range(charts.count()):
                expect(charts.nth(i)).to_contain_class("is-drawn", timeout=10_000)
        violations = page.evaluate("window.__csp")
        assert violations == [], (name, violations)
    assert problems == []
    context.close()
