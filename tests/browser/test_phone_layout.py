"""The console on a phone (390 × 844): no page scrolls sideways, the "Menu" opens the
navigation (with and without JavaScript), and a firing alert's Acknowledge button is on
screen."""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from budgets.demo import demo_budgets_ensure
from budgets.models import Alert, BudgetEnvelope
from controls.approvals import approval_request
from controls.demo import demo_controls_ensure
from controls.models import DecisionRecord
from rollouts.demo import demo_declarations_ensure
from tests.browser.test_timeline_browser import browser  # noqa: F401  (the fixture)
from tests.factories import agent_run, new_span_id

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = pytest.mark.browser

# What sticks out to the right, to name in the failure message.
OFFENDERS = """[...document.querySelectorAll('main *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
  .slice(0, 5).map(e => e.tagName.toLowerCase() + '.' + e.className)"""
PHONE = {"width": 390, "height": 844}
LONG_AGENT = "support-agent-for-the-northern-european-enterprise-accounts"


@pytest.fixture
def console_data(project):
    """Something on every page: runs (one in a session, one failing, one with a long agent
    name), the demo budgets, contracts and policies, a firing alert, a review item and a
    decision."""
    now = timezone.now()
    trace_id, _ = agent_run(project=project, session_id="sess-phone-1", tools=2)
    agent_run(project=project, agent=LONG_AGENT, error=True)
    demo_budgets_ensure(project=project)
    demo_controls_ensure(project=project)
    demo_declarations_ensure(project=project)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    envelope = BudgetEnvelope.objects.create(
        project=project,
        name="Daily spend of the northern European enterprise support agents",
        metric=BudgetEnvelope.Metric.COST,
        limit=Decimal("10"),
        period=BudgetEnvelope.Period.DAY,
        thresholds=[50, 80, 100],
        state="warning",
        state_since=now - timedelta(hours=1),
        last_value=Decimal("8.2"),
        last_forecast=Decimal("13"),
        last_period_start=start,
        last_period_end=start + timedelta(hours=24),
        last_evaluated_at=now - timedelta(minutes=1),
    )
    alert = Alert.objects.create(
        envelope=envelope,
        project=project,
        kind=Alert.Kind.THRESHOLD,
        threshold=80,
        period_start=start,
        period_end=start + timedelta(hours=24),
        value=Decimal("8.2"),
        limit=envelope.limit,
        message=f"{envelope.name} is at 80% of its daily limit. " * 3,
        trace_ids=[trace_id],
        status="firing",
        created_at=now - timedelta(minutes=30),
    )
    approval = approval_request(
        project=project,
        agent=LONG_AGENT,
        tool="refund_order_through_the_payments_gateway",
        arguments={"order_id": "A-1042", "amount": 1200, "reason": "x" * 200},
        risk="high",
        reason="Refund above the bounded phase's limit " * 3,
    )
    decision = DecisionRecord.objects.create(
        project=project,
        trace_id=trace_id,
        span_id=new_span_id(),
        agent="support-agent",
        action="refund_order_through_the_payments_gateway",
        context="A customer asks for a refund of a damaged parcel " * 4,
        decided_at=now - timedelta(minutes=20),
    )
    return {
        "trace": f"/p/{project.slug}/traces/{trace_id}/",
        "session": f"/p/{project.slug}/sessions/sess-phone-1/",
        "budget": f"/budgets/{envelope.pk}/",
        "alert": f"/alerts/{alert.pk}/",
        "review_item": f"/review/{approval.review_item.pk}/",
        "decision": f"/decisions/{decision.pk}/",
    }


def phone_page(browser, live_server, *, javascript=True, next_url="/alerts/"):  # noqa: F811
    context = browser.new_context(viewport=PHONE, java_script_enabled=javascript)
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/?next={next_url}")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("pw-for-tests-1")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**{next_url}")
    return page


def in_viewport(page, locator) -> bool:
    box = locator.bounding_box()
    assert box is not None, "not rendered"
    return box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]


def test_no_page_scrolls_sideways_on_a_phone(
    transactional_db,
    live_server,
    user,
    console_data,
    browser,  # noqa: F811
):
    page = phone_page(browser, live_server)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    urls = [
        "/overview/",
        "/agents/",
        "/agents/compare/?agent=support-agent",
        "/kpis/",
        "/traces/",
        console_data["trace"],
        console_data["session"],
        "/budgets/",
        console_data["budget"],
        "/alerts/",
        console_data["alert"],
        "/cost/",
        "/controls/",
        "/controls/contracts/",
        "/controls/policies/",
        "/review/",
        console_data["review_item"],
        "/decisions/",
        console_data["decision"],
        "/alerts/channels/",
        "/budgets/new/",
        "/accounts/time-zone/",
        "/api/docs/",
        "/no-such-page/",
    ]
    too_wide = {}
    for url in urls:
        page.goto(live_server.url + url)
        page.wait_for_load_state("load")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            too_wide[url] = (width, page.evaluate(OFFENDERS))
    assert too_wide == {}
    assert errors == []


def test_the_menu_opens_the_navigation_on_a_phone(
    transactional_db,
    live_server,
    user,
    console_data,
    browser,  # noqa: F811
):
    from playwright.sync_api import expect

    page = phone_page(browser, live_server)
    nav = page.get_by_role("navigation", name="Main")
    traces = nav.get_by_role("link", name="Traces")
    expect(traces).to_be_hidden()  # folded away until asked for
    page.locator(".nav-toggle").click()
    for name in ("Overview", "Agents", "KPI lift", "Traces", "Budgets", "Alerts", "Cost"):
        link = nav.get_by_role("link", name=name)
        expect(link).to_be_visible()
        assert in_viewport(page, link), name
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    expect(page.locator(".tz-link")).to_be_visible()
    page.keyboard.press("Escape")
    expect(traces).to_be_hidden()
    page.locator(".nav-toggle").click()
    traces.click()
    page.wait_for_url("**/traces/")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_the_menu_works_without_javascript(
    transactional_db,
    live_server,
    user,
    console_data,
    browser,  # noqa: F811
):
    from playwright.sync_api import expect

    page = phone_page(browser, live_server, javascript=False)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Review")).to_be_hidden()
    page.locator(".nav-toggle").click()
    nav.get_by_role("link", name="Review").click()
    page.wait_for_url("**/review/")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_a_firing_alert_can_be_acknowledged_on_a_phone(
    transactional_db,
    live_server,
    user,
    console_data,
    browser,  # noqa: F811
):
    from playwright.sync_api import expect

    page = phone_page(browser, live_server)
    # The page is not scrolled sideways: the button must be reachable as it is.
    button = page.locator("#alerts-table").get_by_role("button", name="Acknowledge").first
    assert in_viewport(page, button)

    page.goto(live_server.url + console_data["alert"])
    button = page.get_by_role("button", name="Acknowledge", exact=True)
    assert in_viewport(page, button)
    button.click()
    expect(page.get_by_text("Acknowledged").first).to_be_visible()
    assert Alert.objects.get().status == "acknowledged"
