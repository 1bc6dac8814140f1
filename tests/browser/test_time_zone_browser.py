"""A reader in Kolkata whose browser says so: after logging in, every time is theirs."""

from __future__ import annotations

import os
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from tests.browser.test_timeline_browser import browser  # noqa: F401  (the fixture)
from tests.factories import agent_run

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = pytest.mark.browser


def test_the_browser_zone_is_used_and_the_filters_are_24_hour(
    transactional_db,
    live_server,
    project,
    user,
    browser,  # noqa: F811
):
    from playwright.sync_api import expect

    start = (timezone.now() - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    agent_run(project=project, start=start)
    local = start.astimezone(ZoneInfo("Asia/Kolkata"))
    context = browser.new_context(timezone_id="Asia/Kolkata", locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))

    page.goto(f"{live_server.url}/accounts/login/?next=/traces/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("pw-for-tests-1")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/traces/")

    # Chromium's ICU may give the zone's older name, which is in the IANA list too.
    zone = {c["name"]: c["value"] for c in context.cookies()}["tz"]
    assert zone in ("Asia/Kolkata", "Asia/Calcutta")
    expect(page.locator(".tz-link")).to_have_text(zone)
    expect(page.locator("table.traces tbody td.num").first).to_have_text(
        local.strftime("%Y-%m-%d %H:%M:%S")
    )

    page.locator("#f-since").fill(local.strftime("%Y-%m-%d"))
    page.get_by_label(f"Since, time (24-hour, {zone})").fill("17:45")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**since_time=17%3A45**")
    expect(page.get_by_label(f"Since, time (24-hour, {zone})")).to_have_value("17:45")
    assert errors == []
    context.close()
