"""/api/docs/ in a real browser under the site's Content Security Policy: Swagger UI
starts from our static files, shows the API and its operations, and nothing is refused."""

from __future__ import annotations

import os

import pytest

from tests.browser.test_timeline_browser import browser  # noqa: F401 (fixture)

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = pytest.mark.browser


def test_swagger_ui_runs_under_the_csp(transactional_db, live_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "console",
        lambda m: problems.append(m.text) if m.type == "error" else None,
    )
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))

    page.goto(f"{live_server.url}/api/docs/")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("AgentOps Console API")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert page.locator(".opblock-summary-path", has_text="/api/traces/").count() >= 1
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p]
    assert not problems, problems
    assert all(url.startswith(live_server.url) for url in requests), requests
