"""The review queue on a phone (390 px): a reviewer opens an item from an alert, claims
it and approves it, and nothing makes the page scroll sideways."""

from __future__ import annotations

import os

import pytest

from controls.approvals import approval_request
from controls.models import Approval, ReviewSla
from tests.browser.test_timeline_browser import browser  # noqa: F401  (the fixture)

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = pytest.mark.browser

NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"


def test_a_reviewer_approves_from_a_phone(
    transactional_db,
    live_server,
    project,
    user,
    browser,  # noqa: F811
):
    from playwright.sync_api import expect

    ReviewSla.objects.create(project=project, risk="high", minutes=15)
    approval = approval_request(
        project=project,
        agent="support-agent-with-a-rather-long-name",
        tool="refund_order_through_the_payments_gateway",
        arguments={"order_id": "A-1042", "amount": 1200, "reason": "x" * 300},
        risk="high",
        reason="Refund above the bounded phase's limit " * 4,
    )
    page = browser.new_page(viewport={"width": 390, "height": 844})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    item_id = approval.review_item.pk

    page.goto(f"{live_server.url}/accounts/login/?next=/review/{item_id}/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("pw-for-tests-1")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**/review/{item_id}/")
    expect(page.locator("#approval-arguments")).to_contain_text("A-1042")
    assert page.evaluate(NO_SIDEWAYS_SCROLL)

    page.locator("#claim").click()
    page.locator("#note").fill("Checked with the customer")
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    page.locator("#approve").click()
    expect(page.locator("#item-status")).to_contain_text("Approved by ada")

    page.goto(f"{live_server.url}/review/?project={project.slug}&state=resolved")
    expect(page.locator(".review-card")).to_have_count(1)
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    assert errors == []
    approval.refresh_from_db()
    assert approval.status == Approval.Status.APPROVED
