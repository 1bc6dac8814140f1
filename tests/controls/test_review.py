"""The review queue: auto-flagging by review rules, claim (a compare-and-set), release,
resolution (approval requests through approval_decide), interventions, time to decision,
the SLA alert (once, to real loopback receivers) and the pages."""

from __future__ import annotations

import hashlib
import hmac
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aiosmtpd.controller import Controller
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.utils import timezone

from budgets.models import Channel
from console.review_alerts import review_sla_alerts_send
from controls.approvals import approval_request
from controls.models import Approval, ReviewItem, ReviewRule, ReviewSla, ToolContract
from controls.review import (
    ReviewConflict,
    review_flags_scan,
    review_interventions_sync,
    review_item_claim,
    review_item_open,
    review_item_release,
    review_item_resolve,
    review_time_to_decision,
)
from tests.factories import MembershipFactory, UserFactory, new_trace_id, raw_span
from tests.receivers import Receiver, RecordingHandler, free_port
from traces.ingest import span_batch_ingest
from traces.models import Membership, Trace

pytestmark = pytest.mark.django_db

Source = ReviewItem.Source
AGENT = "support-agent"
WEBHOOK_SECRET = "s3cret-for-tests-0123456789"


def ingest(project, *spans, received_at=None):
    span_batch_ingest(project_id=project.pk, spans=list(spans), received_at=received_at)


def step(trace_id, name="decide", agent=AGENT, start=None, **attributes):
    return raw_span(
        trace_id=trace_id,
        name=name,
        start=start,
        attributes={"gen_ai.agent.name": agent, **attributes},
    )


def tool_call(trace_id, tool, agent=AGENT, **attributes):
    return step(
        trace_id,
        name=f"execute_tool {tool}",
        agent=agent,
        **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool, **attributes},
    )


def scan():
    return review_flags_scan(since=timezone.now() - timedelta(minutes=15))


def flagged(project):
    return list(ReviewItem.objects.filter(project=project).order_by("id"))


def open_item(project, *, trace_id="", risk="", created_at=None, agent=AGENT, version="1.0"):
    return review_item_open(
        project=project,
        source=Source.LOW_CONFIDENCE,
        created_at=created_at or timezone.now(),
        trace_id=trace_id,
        span_id="00f067aa0ba902b7" if trace_id else "",
        agent=agent,
        agent_version=version,
        risk=risk,
        confidence=Decimal("0.300"),
        reason="Confidence 0.300 below 0.600",
    )


# ------------------------------------------------------------------ auto-flagging


def test_it_flags_a_low_confidence_step_once(project):
    ReviewRule.objects.create(project=project, agent=AGENT, min_confidence=Decimal("0.6"))
    ReviewSla.objects.create(project=project, risk="", minutes=30)
    run = new_trace_id()
    ingest(
        project,
        step(run, name="unsure", **{"agentops.confidence": 0.4}),
        step(run, name="sure", **{"agentops.confidence": 0.9}),
    )

    assert scan() == 1
    assert scan() == 0  # the anti-join: a re-run queues nothing twice
    (item,) = flagged(project)
    assert item.source == Source.LOW_CONFIDENCE
    assert item.trace_id == run and item.agent == AGENT
    assert item.confidence == Decimal("0.400")
    assert item.sla_due_at - item.created_at == timedelta(minutes=30)


def test_it_flags_high_risk_from_the_attribute_and_from_the_tool_contract(project):
    ReviewRule.objects.create(project=project, risks=["high", "critical"])
    ToolContract.objects.create(
        project=project, name="refund_order", version="1.0", risk="critical"
    )
    ToolContract.objects.create(project=project, name="lookup_order", version="1.0", risk="low")
    run = new_trace_id()
    ingest(
        project,
        step(run, name="risky", **{"agentops.risk": "high"}),
        tool_call(run, "refund_order"),
        tool_call(run, "lookup_order"),
    )

    scan()

    items = flagged(project)
    assert {(i.source, i.risk, i.tool) for i in items} == {
        (Source.HIGH_RISK, "high", ""),
        (Source.HIGH_RISK, "critical", "refund_order"),
    }


def test_it_flags_escalation_steps_and_policy_escalations(project):
    ReviewRule.objects.create(project=project)
    run = new_trace_id()
    ingest(
        project,
        step(run, name="hand off", **{"agentops.step": "escalation"}),
        step(run, name="policy refund", **{"agentops.policy.decision": "escalate"}),
        step(run, name="policy lookup", **{"agentops.policy.decision": "allow"}),
    )

    scan()

    assert sorted(i.source for i in flagged(project)) == [
        Source.ESCALATION,
        Source.POLICY_ESCALATE,
    ]


def test_the_most_specific_rule_wins_per_agent_and_phase(project):
    ReviewRule.objects.create(project=project, min_confidence=Decimal("0.5"))
    ReviewRule.objects.create(
        project=project, agent=AGENT, phase="expanded", min_confidence=None, on_escalation=False
    )
    expanded, bounded, other = new_trace_id(), new_trace_id(), new_trace_id()
    phase = "agentops.autonomy.phase"
    ingest(
        project,
        step(expanded, **{"agentops.confidence": 0.2, phase: "expanded"}),
        step(expanded, name="esc", **{"agentops.step": "escalation", phase: "expanded"}),
        step(bounded, **{"agentops.confidence": 0.2, phase: "bounded"}),
        step(other, agent="billing-agent", **{"agentops.confidence": 0.2}),
    )

    scan()

    assert {i.trace_id for i in flagged(project)} == {bounded, other}


def test_a_run_without_a_phase_takes_its_agents_declared_phase(project):
    from rollouts.models import AgentPhase

    AgentPhase.objects.create(
        project=project, agent=AGENT, phase="shadow", since=timezone.now() - timedelta(days=1)
    )
    ReviewRule.objects.create(project=project, min_confidence=Decimal("0.5"))
    ReviewRule.objects.create(project=project, phase="shadow", min_confidence=None)
    shadow, other = new_trace_id(), new_trace_id()
    ingest(
        project,
        step(shadow, **{"agentops.confidence": 0.2}),
        step(other, agent="billing-agent", **{"agentops.confidence": 0.2}),
    )

    scan()

    assert [(i.trace_id, i.phase) for i in flagged(project)] == [(other, "")]


def test_it_leaves_spans_outside_the_window_and_approved_calls_alone(project, other_project):
    ReviewRule.objects.create(project=project, min_confidence=Decimal("0.5"))
    old, approved, foreign = new_trace_id(), new_trace_id(), new_trace_id()
    ingest(
        project,
        step(old, **{"agentops.confidence": 0.1}),
        received_at=timezone.now() - timedelta(hours=2),
    )
    ingest(project, step(approved, **{"agentops.confidence": 0.1, "agentops.approval.id": "x"}))
    # A project without rules is not scanned.
    ingest(other_project, step(foreign, **{"agentops.confidence": 0.1}))

    assert scan() == 0
    assert ReviewItem.objects.count() == 0


# ------------------------------------------------------------------ claim, release, resolve


def test_a_claim_is_held_by_one_reviewer(project, user):
    bob = UserFactory(username="bob")
    item = open_item(project)

    assert review_item_claim(item_id=item.pk, user=user) is True
    assert review_item_claim(item_id=item.pk, user=bob) is False
    assert review_item_release(item_id=item.pk, user=bob) is False
    assert review_item_release(item_id=item.pk, user=user) is True
    assert review_item_claim(item_id=item.pk, user=bob) is True
    item.refresh_from_db()
    assert item.claimed_by == bob


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_claiming_at_once_exactly_one_wins(project):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    reviewers = [UserFactory(username=f"reviewer{i}") for i in range(2)]
    items = [open_item(project, trace_id=new_trace_id()) for _ in range(20)]
    wins: dict[int, list[int]] = {r.pk: [] for r in reviewers}
    errors = []
    barrier = threading.Barrier(2)

    def reviewer(user):
        try:
            barrier.wait()
            for item in items:
                if review_item_claim(item_id=item.pk, user=user):
                    wins[user.pk].append(item.pk)
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=reviewer, args=(u,)) for u in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    won = wins[reviewers[0].pk] + wins[reviewers[1].pk]
    assert sorted(won) == sorted(i.pk for i in items)  # each item won exactly once
    for item in items:
        item.refresh_from_db()
        assert item.claimed_by_id in wins and item.pk in wins[item.claimed_by_id]


def test_resolving_needs_the_claim_and_marks_the_run_intervened(project, user):
    run = new_trace_id()
    ingest(project, step(run, **{"agentops.confidence": 0.1}))
    before = Trace.objects.get(trace_id=run)
    assert before.intervened is False
    item = open_item(project, trace_id=run)

    with pytest.raises(ReviewConflict):
        review_item_resolve(item=item, user=user, resolution="overridden", note="x")
    review_item_claim(item_id=item.pk, user=user)
    with pytest.raises(ValueError):
        review_item_resolve(item=item, user=user, resolution="maybe")
    review_item_resolve(item=item, user=user, resolution="overridden", note="Refunded by hand")

    item.refresh_from_db()
    assert item.status == ReviewItem.Status.RESOLVED
    assert item.resolution == "overridden" and item.resolved_by == "ada"
    assert item.note == "Refunded by hand" and item.resolved_at is not None
    after = Trace.objects.get(trace_id=run)
    assert after.intervened is True
    assert after.last_received_at > before.last_received_at  # the run rollups recompute it
    with pytest.raises(ReviewConflict):  # resolved once
        review_item_resolve(item=item, user=user, resolution="denied")


def test_an_approval_is_decided_through_approval_decide(project, user):
    approval = approval_request(
        project=project, agent=AGENT, tool="refund_order", arguments={"order_id": "A1"}
    )
    item = approval.review_item
    review_item_claim(item_id=item.pk, user=user)

    with pytest.raises(ValueError):
        review_item_resolve(item=item, user=user, resolution="overridden", note="no")
    review_item_resolve(item=item, user=user, resolution="approved", note="ok")

    approval.refresh_from_db()
    item.refresh_from_db()
    assert approval.status == Approval.Status.APPROVED and approval.decided_by == "ada"
    assert item.status == ReviewItem.Status.RESOLVED and item.resolution == "approved"


def test_an_expired_approval_cannot_be_approved(project, user):
    approval = approval_request(
        project=project, agent=AGENT, tool="refund_order", arguments={}, timeout_s=1
    )
    item = approval.review_item
    review_item_claim(item_id=item.pk, user=user)

    with pytest.raises(ReviewConflict, match="expired"):
        review_item_resolve(
            item=item, user=user, resolution="approved", now=timezone.now() + timedelta(hours=1)
        )

    approval.refresh_from_db()
    assert approval.status == Approval.Status.EXPIRED


def test_a_run_that_arrives_after_its_decision_is_marked_intervened(project, user):
    run = new_trace_id()
    item = open_item(project, trace_id=run)
    review_item_claim(item_id=item.pk, user=user)
    review_item_resolve(item=item, user=user, resolution="denied")
    ingest(project, step(run))  # the agent exported its spans after the decision
    assert Trace.objects.get(trace_id=run).intervened is False

    assert review_interventions_sync(since=timezone.now() - timedelta(minutes=15)) == 1

    assert Trace.objects.get(trace_id=run).intervened is True


def test_time_to_decision_per_agent_and_version(project, user):
    t0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    ReviewSla.objects.create(project=project, risk="", minutes=5)
    for minutes, version in ((1, "1.0"), (2, "1.0"), (9, "1.0"), (4, "2.0")):
        item = open_item(project, trace_id=new_trace_id(), created_at=t0, version=version)
        review_item_claim(item_id=item.pk, user=user)
        review_item_resolve(
            item=item, user=user, resolution="approved", now=t0 + timedelta(minutes=minutes)
        )

    rows = review_time_to_decision(project_id=project.pk, since=t0, until=t0 + timedelta(hours=1))

    assert rows == [
        {"agent": AGENT, "agent_version": "1.0", "decisions": 3, "median_s": 120.0,
         "p95_s": 540.0, "late": 1},
        {"agent": AGENT, "agent_version": "2.0", "decisions": 1, "median_s": 240.0,
         "p95_s": 240.0, "late": 0},
    ]  # fmt: skip


# ------------------------------------------------------------------ the SLA alert


@pytest.fixture
def receiver(settings):
    settings.ALERTS_ALLOW_PRIVATE_URLS = True
    settings.PUBLIC_URL = "https://console.example.test"
    settings.ALERT_HTTP_TIMEOUT = 5
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_server(settings):
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    yield handler
    controller.stop()


def late_item(project, trace_id=""):
    ReviewSla.objects.get_or_create(project=project, risk="high", defaults={"minutes": 10})
    return open_item(
        project, trace_id=trace_id, risk="high", created_at=timezone.now() - timedelta(minutes=12)
    )


def test_an_item_past_its_sla_alerts_once_by_webhook_and_email(
    project, other_project, receiver, smtp_server
):
    Channel.objects.create(
        project=project,
        name="hook",
        kind="webhook",
        config={"url": receiver.url(), "secret": WEBHOOK_SECRET},
    )
    Channel.objects.create(
        project=project, name="mail", kind="email", config={"to": ["oncall@example.com"]}
    )
    Channel.objects.create(
        project=other_project, name="theirs", kind="email", config={"to": ["x@example.com"]}
    )
    run = new_trace_id()
    item = late_item(project, trace_id=run)
    open_item(project)  # no SLA: never late

    assert review_sla_alerts_send() == {"due": 1, "alerted": 1}
    assert review_sla_alerts_send() == {"due": 0, "alerted": 0}

    (request,) = receiver.requests
    body = request.json()
    assert body["alert"]["kind"] == "review_sla"
    assert body["event"] == request.headers["x-agentops-event"] == "review_sla"
    assert body["alert"]["url"] == f"https://console.example.test/review/{item.pk}/"
    assert body["traces"][0]["trace_id"] == run
    timestamp = request.headers["x-agentops-timestamp"]
    signed = hmac.new(
        WEBHOOK_SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    assert request.headers["x-agentops-signature"] == f"t={timestamp},v1={signed}"
    (mail,) = smtp_server.messages
    assert "past its SLA" in mail["Subject"]
    assert mail["To"] == "oncall@example.com"
    item.refresh_from_db()
    assert item.sla_alerted_at is not None


def test_an_sla_alert_no_channel_took_is_tried_again(project, receiver):
    Channel.objects.create(
        project=project,
        name="hook",
        kind="webhook",
        config={"url": receiver.url(), "secret": WEBHOOK_SECRET},
    )
    item = late_item(project)
    receiver.fail(1, status=503)

    review_sla_alerts_send()
    item.refresh_from_db()
    assert item.sla_alerted_at is None
    review_sla_alerts_send()
    review_sla_alerts_send()

    assert len(receiver.requests) == 2
    item.refresh_from_db()
    assert item.sla_alerted_at is not None


def test_a_resolved_item_raises_no_sla_alert(project, user, receiver):
    Channel.objects.create(
        project=project,
        name="hook",
        kind="webhook",
        config={"url": receiver.url(), "secret": WEBHOOK_SECRET},
    )
    item = late_item(project)
    review_item_claim(item_id=item.pk, user=user)
    review_item_resolve(item=item, user=user, resolution="approved")

    assert review_sla_alerts_send()["due"] == 0
    assert receiver.requests == []


# ------------------------------------------------------------------ pages


def test_the_queue_shows_waiting_time_against_the_sla(client_logged_in, project):
    run = new_trace_id()
    item = late_item(project, trace_id=run)

    response = client_logged_in.get("/review/", {"project": project.slug})

    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="item-{item.pk}"' in html
    assert "of 10 min SLA — late" in html
    assert f"/p/{project.slug}/traces/{run}/" in html
    assert 'name="csrfmiddlewaretoken"' in html and 'value="claim"' in html
    assert '<a href="/review/" aria-current="page">Review</a>' in html


def test_the_queue_filters_and_pages(client_logged_in, project, user):
    for _ in range(30):
        open_item(project, trace_id=new_trace_id())
    mine = open_item(project, trace_id=new_trace_id())
    review_item_claim(item_id=mine.pk, user=user)

    first = client_logged_in.get("/review/", {"project": project.slug}).content.decode()
    second = client_logged_in.get("/review/", {"project": project.slug, "page": 2}).content
    held = client_logged_in.get("/review/", {"project": project.slug, "state": "mine"})
    done = client_logged_in.get("/review/", {"project": project.slug, "state": "resolved"})

    assert first.count('class="card review-card') == 25 and "Page 1 of 2" in first
    assert second.decode().count('class="card review-card') == 6
    assert held.content.decode().count('class="card review-card') == 1
    assert 'id="no-items"' in done.content.decode()


def test_the_empty_queue_says_what_feeds_it(client_logged_in, project):
    html = client_logged_in.get("/review/", {"project": project.slug}).content.decode()
    assert 'id="no-items"' in html and "Nothing is waiting for a person" in html


def test_a_reviewer_claims_and_decides_from_the_pages(client_logged_in, project, user):
    approval = approval_request(
        project=project, agent=AGENT, tool="refund_order", arguments={"order_id": "A-77"}
    )
    item = approval.review_item
    url = f"/review/{item.pk}/"

    page = client_logged_in.get(url).content.decode()
    assert "A-77" in page and 'id="claim"' in page
    assert client_logged_in.post(url, {"action": "claim"}).status_code == 302
    page = client_logged_in.get(url).content.decode()
    assert 'id="approve"' in page and 'id="override"' not in page  # an approval: yes or no
    assert client_logged_in.post(url, {"action": "approved", "note": "fine"}).status_code == 302

    approval.refresh_from_db()
    assert approval.status == Approval.Status.APPROVED and approval.note == "fine"


def test_a_second_reviewer_is_told_the_item_is_taken(client_logged_in, project, user):
    bob = UserFactory(username="bob")
    MembershipFactory(project=project, user=bob, role=Membership.Role.ADMIN)
    item = open_item(project)
    review_item_claim(item_id=item.pk, user=user)
    other = Client()
    other.force_login(bob)

    claim = other.post(f"/review/{item.pk}/", {"action": "claim"})
    resolve = other.post(f"/review/{item.pk}/", {"action": "denied"})

    assert claim.status_code == 409 and "claimed it first" in claim.content.decode()
    assert resolve.status_code == 409
    item.refresh_from_db()
    assert item.claimed_by == user and item.status == ReviewItem.Status.OPEN


def test_override_needs_a_note(client_logged_in, project, user):
    item = open_item(project)
    review_item_claim(item_id=item.pk, user=user)

    response = client_logged_in.post(f"/review/{item.pk}/", {"action": "overridden"})

    assert response.status_code == 400
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.OPEN


def test_hostile_and_unauthorised_requests_are_refused(
    client_logged_in, outsider_client, project, user
):
    item = open_item(project)
    viewer = UserFactory(username="vic")
    MembershipFactory(project=project, user=viewer, role=Membership.Role.VIEWER)
    viewer_client = Client()
    viewer_client.force_login(viewer)
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(user)

    assert outsider_client.get(f"/review/{item.pk}/").status_code == 404
    assert outsider_client.post(f"/review/{item.pk}/", {"action": "claim"}).status_code == 404
    assert outsider_client.get("/review/", {"project": project.slug}).status_code == 404
    assert viewer_client.get(f"/review/{item.pk}/").status_code == 200
    assert viewer_client.post(f"/review/{item.pk}/", {"action": "claim"}).status_code == 403
    assert csrf_client.post(f"/review/{item.pk}/", {"action": "claim"}).status_code == 403
    assert client_logged_in.post(f"/review/{item.pk}/", {"action": "nuke"}).status_code == 400
    long_note = {"action": "denied", "note": "x" * 6000}
    assert client_logged_in.post(f"/review/{item.pk}/", long_note).status_code == 400
    assert client_logged_in.get("/review/99999999/").status_code == 404
    assert client_logged_in.get("/review/", {"state": "<script>"}).status_code == 200
    assert Client().get("/review/").status_code == 302  # login first
    item.refresh_from_db()
    assert item.claimed_by is None


def test_the_queue_shows_time_to_decision(client_logged_in, project, user):
    item = open_item(project, created_at=timezone.now() - timedelta(minutes=3))
    review_item_claim(item_id=item.pk, user=user)
    review_item_resolve(item=item, user=user, resolution="approved")

    html = client_logged_in.get("/review/", {"project": project.slug}).content.decode()

    assert 'id="time-to-decision"' in html and "<td>1.0</td>" in html


# ------------------------------------------------------------------ admin


def test_the_admin_sets_rules_with_known_risks_and_a_confidence_in_0_1(project):
    admin = Client()
    admin.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    form = {
        "project": project.pk,
        "agent": AGENT,
        "phase": "bounded",
        "min_confidence": "1.5",
        "risks": '["high", "apocalyptic"]',
        "on_escalation": "on",
    }

    refused = admin.post("/admin/controls/reviewrule/add/", form)
    saved = admin.post(
        "/admin/controls/reviewrule/add/", {**form, "min_confidence": "0.6", "risks": '["high"]'}
    )

    assert refused.status_code == 200 and b"between 0 and 1" in refused.content
    assert b"risk levels among" in refused.content
    assert saved.status_code == 302
    rule = ReviewRule.objects.get()
    assert rule.risks == ["high"] and rule.min_confidence == Decimal("0.6")


def test_the_queue_reads_a_fixed_number_of_queries(client_logged_in, project, user):
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        cache.clear()  # the time to decision is cached for a minute: count a cold load
        with CaptureQueriesContext(connection) as ctx:
            assert client_logged_in.get("/review/", {"project": project.slug}).status_code == 200
        return len(ctx.captured_queries)

    open_item(project, trace_id=new_trace_id())
    few = queries()
    for _ in range(20):
        item = open_item(project, trace_id=new_trace_id())
        review_item_claim(item_id=item.pk, user=user)

    assert queries() == few
