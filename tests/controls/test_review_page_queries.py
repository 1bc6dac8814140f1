"""The review pages' query count is a constant: the same for one item as for a full page of
items with approval requests, runs, claims by several reviewers and a history of decisions
(bench/review_queue.py measures the same pages with 10,000 open items)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from controls.approvals import approval_request
from controls.models import ReviewItem, ReviewSla
from controls.review import review_item_claim, review_item_open, review_item_resolve
from tests.factories import MembershipFactory, UserFactory, new_trace_id
from traces.models import Membership

pytestmark = pytest.mark.django_db

# Session, user, the user's projects, the viewer's role; then the page itself: the queue
# counts its items, reads one page of them (with project, claimant and approval joined),
# counts the open ones and reads the decisions of 30 days; an item is one read.
PINNED = {"open": 9, "mine": 9, "resolved": 9, "item": 6}


def _flagged(project, *, risk="", agent="support", version="1.0", ago=timedelta(0)):
    return review_item_open(
        project=project,
        source=ReviewItem.Source.LOW_CONFIDENCE,
        created_at=timezone.now() - ago,
        trace_id=new_trace_id(),
        span_id="00f067aa0ba902b7",
        agent=agent,
        agent_version=version,
        risk=risk,
        confidence=Decimal("0.300"),
        reason="Confidence 0.300 below 0.600",
    )


def _queue(project, user, *, n: int, other_reviewer=None) -> None:
    """n open items (every third an approval request; claimed by `user` or another
    reviewer, some past their SLA) and n resolved ones over agents and versions."""
    for i in range(n):
        risk = ["", "low", "high", "critical"][i % 4]
        if i % 3 == 0:
            item = approval_request(
                project=project,
                agent=f"agent-{i % 3}",
                tool="issue_refund",
                arguments={"order_id": f"o-{i}"},
                risk=risk,
                trace_id=new_trace_id(),
            ).review_item
        else:
            item = _flagged(project, risk=risk, agent=f"agent-{i % 3}", ago=timedelta(hours=i))
        holder = [user, None, other_reviewer][i % 3]
        if holder is not None:
            review_item_claim(item_id=item.pk, user=holder)
    for i in range(n):
        item = _flagged(project, agent=f"agent-{i % 4}", version=f"1.{i % 3}")
        review_item_claim(item_id=item.pk, user=user)
        item.refresh_from_db()
        review_item_resolve(item=item, user=user, resolution="overridden", note="done")


def _queries(client, url, params=None) -> int:
    cache.clear()  # the time to decision is cached for a minute: count a cold load
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("state", ["open", "mine", "resolved"])
def test_the_queue_reads_the_same_queries_for_one_item_and_a_full_page(
    client_logged_in, project, other_project, user, state
):
    ReviewSla.objects.create(project=project, risk="", minutes=30)
    _queue(project, user, n=1)
    params = {"project": project.slug, "state": state}
    few = _queries(client_logged_in, "/review/", params)

    other = UserFactory(username="grace")
    MembershipFactory(project=project, user=other, role=Membership.Role.ADMIN)
    MembershipFactory(project=other_project, user=other, role=Membership.Role.ADMIN)
    _queue(project, user, n=30, other_reviewer=other)
    _queue(other_project, other, n=5)
    html = client_logged_in.get("/review/", params).content.decode()

    assert html.count('class="card review-card') == (11 if state == "mine" else 25)
    assert _queries(client_logged_in, "/review/", params) == few == PINNED[state]


def test_an_items_page_reads_the_same_queries_whatever_the_item(client_logged_in, project, user):
    other = UserFactory(username="grace")
    MembershipFactory(project=project, user=other, role=Membership.Role.ADMIN)
    flagged = _flagged(project)
    approval = approval_request(
        project=project, agent="a", tool="issue_refund", arguments={"order_id": "o-1"}
    ).review_item
    review_item_claim(item_id=approval.pk, user=other)
    _queue(project, user, n=10, other_reviewer=other)

    counts = {_queries(client_logged_in, f"/review/{i.pk}/") for i in (flagged, approval)}

    assert counts == {PINNED["item"]}
