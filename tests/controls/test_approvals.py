"""Approvals at runtime: the request API and its long-poll, the compare-and-set decision,
expiry as a decision, the binding of an approval to its tool and arguments (badges, the
Controls page, the report API), project scoping and hostile input."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from controls.approvals import (
    approval_decide,
    approval_request,
    approval_violations,
    approval_wait,
    approvals_expire,
)
from controls.models import Approval, ReviewItem, ReviewSla
from controls.tasks import expire_approvals
from tests.controls.test_checks import tool_span
from tests.factories import new_trace_id
from traces.annotations import span_badges
from traces.ingest import span_batch_ingest
from traces.models import Trace
from traces.services import ingest_key_create

ARGS = {"order_id": 7, "amount": 30, "note": "ünïcode"}


def key_client(secret: str) -> Client:
    return Client(raise_request_exception=False, headers={"Authorization": f"Bearer {secret}"})


@pytest.fixture
def agent(ingest_secret):
    return key_client(ingest_secret)


def ask(client, **fields):
    body = {
        "trace_id": "a" * 32,
        "span_id": "b" * 16,
        "agent": "support-agent",
        "tool": "refund_order",
        "arguments": ARGS,
        "risk": "high",
        "confidence": "0.42",
        "reason": "refund over the limit",
        "timeout_s": 60,
        **fields,
    }
    return client.post("/api/approvals/", body, content_type="application/json")


def pending(project, *, timeout_s=60, now=None, arguments=ARGS, tool="refund_order"):
    return approval_request(
        project=project,
        agent="support-agent",
        tool=tool,
        arguments=arguments,
        timeout_s=timeout_s,
        risk="high",
        now=now,
    )


# ------------------------------------------------------------------ request


def test_it_stores_a_pending_request_bound_to_its_canonical_arguments(agent, project):
    ReviewSla.objects.create(project=project, risk="high", minutes=15)
    before = timezone.now()
    r = ask(agent, arguments={"note": "ünïcode", "amount": 30, "order_id": 7})
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["status"] == "pending"
    approval = Approval.objects.get(public_id=body["id"])
    assert approval.project == project
    canonical = json.dumps(ARGS, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert approval.arguments_hash == hashlib.sha256(canonical.encode()).hexdigest()
    assert approval.arguments == ARGS
    assert (approval.trace_id, approval.span_id, approval.risk) == ("a" * 32, "b" * 16, "high")
    assert str(approval.confidence) == "0.420"
    assert (
        before + timedelta(seconds=59)
        < approval.expires_at
        <= timezone.now() + timedelta(seconds=60)
    )
    assert datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")) == approval.expires_at
    item = approval.review_item
    assert (item.source, item.status, item.tool, item.risk) == (
        "approval",
        "open",
        "refund_order",
        "high",
    )
    assert item.sla_due_at == approval.created_at + timedelta(minutes=15)


def test_arguments_sent_as_json_text_hash_like_the_same_object(agent, project):
    a = ask(agent, arguments=json.dumps(ARGS)).json()
    b = ask(agent, arguments=ARGS).json()
    hashes = {Approval.objects.get(public_id=x["id"]).arguments_hash for x in (a, b)}
    assert len(hashes) == 1


def test_it_takes_only_a_project_key(client_logged_in, project):
    r = client_logged_in.post(
        "/api/approvals/", {"agent": "a", "tool": "t", "arguments": {}}, "application/json"
    )
    assert r.status_code == 403
    assert Client().post("/api/approvals/", {}, "application/json").status_code == 401
    assert not Approval.objects.exists()


# ------------------------------------------------------------------ decide (compare-and-set)


def test_a_decision_is_taken_once_and_resolves_the_review_item(project, user):
    approval = pending(project)
    assert approval_decide(approval, "approved", user, "fine by me") is True
    assert (approval.status, approval.decided_by, approval.note) == (
        "approved",
        "ada",
        "fine by me",
    )
    # The second decision loses: what stands is the first.
    assert approval_decide(approval=approval, decision="denied", by="bob", note="no") is False
    approval.refresh_from_db()
    assert (approval.status, approval.decided_by) == ("approved", "ada")
    item = ReviewItem.objects.get(approval=approval)
    assert (item.status, item.resolution, item.resolved_by, item.note) == (
        "resolved",
        "approved",
        "ada",
        "fine by me",
    )
    assert item.resolved_at == approval.decided_at


def test_a_decision_must_be_approved_or_denied(project):
    with pytest.raises(ValueError):
        approval_decide(pending(project), "expired", "ada")


def test_a_request_past_its_deadline_cannot_be_approved(project):
    approval = pending(project, timeout_s=5, now=timezone.now() - timedelta(seconds=10))
    assert approval_decide(approval, "approved", "ada") is False
    assert approval.status == "expired"
    assert approval.decided_at == approval.expires_at
    assert ReviewItem.objects.get(approval=approval).status == "expired"


# ------------------------------------------------------------------ expiry


def test_the_expiry_task_expires_pending_requests_past_their_deadline(project):
    past = timezone.now() - timedelta(seconds=120)
    late = pending(project, timeout_s=60, now=past)
    decided = pending(project, timeout_s=600, now=past)
    approval_decide(decided, "denied", "ada")
    live = pending(project, timeout_s=600)
    assert expire_approvals() == 1
    assert approvals_expire() == 0
    statuses = dict(Approval.objects.values_list("pk", "status"))
    assert statuses == {late.pk: "expired", decided.pk: "denied", live.pk: "pending"}
    item = ReviewItem.objects.get(approval=late)
    assert (item.status, item.resolution) == ("expired", "")
    assert item.resolved_at is not None


def test_a_read_past_the_deadline_answers_expired_never_pending(agent, project):
    approval = pending(project, timeout_s=5, now=timezone.now() - timedelta(seconds=6))
    r = agent.get(f"/api/approvals/{approval.public_id}/")
    assert r.status_code == 200
    assert r.json()["status"] == "expired"
    assert r.json()["decided_at"] is not None
    approval.refresh_from_db()
    assert approval.status == "expired"


# ------------------------------------------------------------------ long-poll


def test_the_long_poll_returns_the_decision_with_who_and_why(agent, project):
    approval = pending(project)
    approval_decide(approval, "denied", "ada", "amount too high")
    started = time.monotonic()
    r = agent.get(f"/api/approvals/{approval.public_id}/?wait=30")
    assert time.monotonic() - started < 2
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == str(approval.public_id)
    assert (body["status"], body["decided_by"], body["note"]) == (
        "denied",
        "ada",
        "amount too high",
    )
    assert body["decided_at"]


def test_a_wait_ends_when_a_person_decides(project):
    approval = pending(project)
    naps = []

    def sleep(seconds):
        naps.append(seconds)
        if len(naps) == 3:
            approval_decide(Approval.objects.get(pk=approval.pk), "approved", "ada")

    answer, admitted = approval_wait(approval, wait_s=30, poll_s=0.25, sleep=sleep)
    assert admitted
    assert answer.status == "approved"
    assert naps == [0.25, 0.25, 0.25]


def test_a_wait_ends_at_the_deadline_with_expired(project):
    approval = pending(project, timeout_s=1)
    started = time.monotonic()
    answer, _ = approval_wait(approval, wait_s=10, poll_s=0.25)
    assert answer.status == "expired"
    assert time.monotonic() - started < 2.5


def test_a_wait_without_a_decision_answers_pending_after_wait_seconds(agent, project):
    approval = pending(project)
    started = time.monotonic()
    r = agent.get(f"/api/approvals/{approval.public_id}/?wait=0.6")
    assert 0.5 < time.monotonic() - started < 3
    assert r.json()["status"] == "pending"
    assert "Retry-After" not in r.headers


def test_past_the_waiter_cap_a_poll_answers_at_once(agent, project, settings):
    settings.APPROVAL_MAX_WAITERS = 0
    approval = pending(project)
    started = time.monotonic()
    r = agent.get(f"/api/approvals/{approval.public_id}/?wait=30")
    assert time.monotonic() - started < 1
    assert r.status_code == 200
    assert r.json()["status"] == "pending"
    assert r.headers["Retry-After"] == "1"


@pytest.mark.parametrize("wait", ["31", "-1", "abc", "nan", "inf", "1e9"])
def test_a_bad_wait_is_a_400(agent, project, wait):
    approval = pending(project)
    r = agent.get(f"/api/approvals/{approval.public_id}/?wait={wait}")
    assert r.status_code == 400
    assert "wait" in r.json()


# ------------------------------------------------------------------ scoping


def test_another_projects_key_gets_a_404(project, other_project):
    approval = pending(project)
    stranger = key_client(ingest_key_create(project=other_project).secret)
    r = stranger.get(f"/api/approvals/{approval.public_id}/")
    assert r.status_code == 404
    assert "pending" not in r.content.decode()


@pytest.mark.parametrize("ref", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_an_unknown_id_is_a_404(agent, project, ref):
    assert agent.get(f"/api/approvals/{ref}/").status_code == 404


def test_a_nul_in_the_id_is_a_400(agent, project):
    assert agent.get("/api/approvals/%00/").status_code == 400


# ------------------------------------------------------------------ hostile input


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": 86_401}, "timeout_s"),
        ({"timeout_s": "soon"}, "timeout_s"),
        ({"arguments": [1, 2]}, "arguments"),
        ({"arguments": None}, "arguments"),
        ({"arguments": "x" * 70_000}, "arguments"),
        ({"arguments": {"k": "v\x00"}}, "arguments"),
        ({"arguments": "[" * 5000 + "]" * 5000}, "arguments"),
        ({"risk": "apocalyptic"}, "risk"),
        ({"confidence": "1.5"}, "confidence"),
        ({"confidence": "NaN"}, "confidence"),
        ({"trace_id": "xyz"}, "trace_id"),
        ({"span_id": "B" * 16}, "span_id"),
        ({"agent": ""}, "agent"),
        ({"tool": "t" * 201}, "tool"),
        ({"reason": "r" * 501}, "reason"),
    ],
)
def test_a_bad_field_is_a_400_that_names_it(agent, project, fields, field):
    r = ask(agent, **fields)
    assert r.status_code == 400, r.content
    assert field in r.json()
    assert not Approval.objects.exists()


def nested(depth):
    v = "leaf"
    for _ in range(depth):
        v = {"k": v}
    return v


def test_hostile_bodies_are_never_a_server_error(agent, project):
    bodies = [
        {"agent": "a\x00", "tool": "t", "arguments": {}},
        {"agent": "a", "tool": "t", "arguments": nested(300)},
        {"agent": "a", "tool": "t", "arguments": {"x": 2**80, "y": 1e308}},
        {"agent": "a", "tool": "t", "arguments": '{"x": NaN}'},
        {"agent": "a", "tool": "t", "arguments": "\\u0000"},
        {},
        [],
        "x",
    ]
    bad = []
    for body in bodies:
        r = agent.post("/api/approvals/", body, content_type="application/json")
        if r.status_code >= 500:
            bad.append((repr(body)[:60], r.status_code))
    for raw in (b"{", b"\xff\xfe", b'{"agent": "\\ud800", "tool": "t", "arguments": {}}'):
        r = agent.post("/api/approvals/", raw, content_type="application/json")
        if r.status_code >= 500:
            bad.append((raw, r.status_code))
    assert bad == []


# ------------------------------------------------------------------ binding


@pytest.fixture
def bound(project, other_project):
    """A run whose tool calls carry approvals: one as approved, one replayed with other
    arguments, one with a denied approval, one refused at its gate, one naming an unknown
    id, one another project's approval, one another tool, one that finished before its
    approval was given."""
    ok = pending(project)
    approval_decide(ok, "approved", "ada")
    denied = pending(project)
    approval_decide(denied, "denied", "ada")
    foreign = pending(other_project)
    approval_decide(foreign, "approved", "mallory")
    trace_id = new_trace_id()
    # The calls start while their approval is asked (a second before it was given) and end
    # after it, as the SDK's do: that is not a violation.
    start = ok.decided_at - timedelta(seconds=1)
    same = json.dumps({"amount": 30, "note": "ünïcode", "order_id": 7}, indent=2)
    other = json.dumps({**ARGS, "amount": 3000})

    def call(ref, args=same, tool="refund_order", at=start, **attrs):
        return tool_span(
            trace_id, tool, args=args, start=at, **{"agentops.approval.id": ref, **attrs}
        )

    spans = {
        "ok": call(str(ok.public_id)),
        "replayed": call(str(ok.public_id), args=other),
        "denied": call(str(denied.public_id)),
        "refused": call(str(denied.public_id), **{"agentops.approval.status": "denied"}),
        "unknown": call("no-such-approval"),
        "foreign": call(str(foreign.public_id)),
        "other_tool": call(str(ok.public_id), tool="delete_account"),
        # Ended (100 ms spans) 3 s before the approval: beyond the 2 s of clock skew forgiven.
        "early": call(str(ok.public_id), at=ok.decided_at - timedelta(seconds=3.1)),
        "skewed": call(str(ok.public_id), at=ok.decided_at - timedelta(seconds=1.9)),
    }
    span_batch_ingest(project_id=project.pk, spans=list(spans.values()))
    return trace_id, {name: s.span_id for name, s in spans.items()}


def test_calls_outside_their_approval_are_violations(project, bound):
    trace_id, ids = bound
    now = timezone.now()
    rows = approval_violations(project_id=project.pk, since=now - timedelta(hours=1), until=now)
    found = {r["span_id"]: r["outcome"] for r in rows}
    assert found == {
        ids["replayed"]: "other_arguments",
        ids["denied"]: "not_approved",
        ids["unknown"]: "unknown_approval",
        ids["foreign"]: "unknown_approval",
        ids["other_tool"]: "other_tool",
        ids["early"]: "before_decision",
    }
    assert {r["trace_id"] for r in rows} == {trace_id}
    (early,) = [r for r in rows if r["outcome"] == "before_decision"]
    assert "before the approval was given" in early["message"]


def test_each_bound_call_gets_a_badge_on_the_timeline(project, bound):
    trace_id, ids = bound
    trace = Trace.objects.get(project=project, trace_id=trace_id)
    badges = {
        k: [b for b in v if b.source == "Approval"] for k, v in span_badges(trace=trace).items()
    }
    assert badges[ids["ok"]][0].label == "approval ✓"
    assert badges[ids["ok"]][0].tone == "ok"
    assert badges[ids["refused"]][0].tone == "info"
    assert badges[ids["replayed"]][0].label == "approval ✗ other arguments"
    assert badges[ids["replayed"]][0].tone == "danger"
    assert badges[ids["denied"]][0].title == "Ran with an approval that is denied."
    only = span_badges(trace=trace, span_ids=[ids["foreign"]])
    assert [b.label for b in only[ids["foreign"]] if b.source == "Approval"] == [
        "approval ✗ unknown approval"
    ]


def test_the_report_api_lists_them_scoped_to_the_users_projects(
    client_logged_in, outsider_client, project, bound
):
    r = client_logged_in.get(f"/api/controls/approvals/?project={project.slug}")
    assert r.status_code == 200
    body = r.json()
    assert body["requests"] == {"pending": 0, "approved": 1, "denied": 1, "expired": 0}
    assert len(body["violations"]) == 6
    assert {v["outcome"] for v in body["violations"]} == {
        "before_decision",
        "other_arguments",
        "not_approved",
        "unknown_approval",
        "other_tool",
    }
    assert (
        outsider_client.get(f"/api/controls/approvals/?project={project.slug}").status_code == 404
    )
    assert client_logged_in.get("/api/controls/approvals/?project=").status_code == 400
    bad = client_logged_in.get(f"/api/controls/approvals/?project={project.slug}&since=x")
    assert bad.status_code == 400


def test_the_controls_page_shows_them(client_logged_in, project, bound):
    _trace_id, ids = bound
    r = client_logged_in.get(reverse("controls") + f"?project={project.slug}")
    html = r.content.decode()
    assert 'id="approval-violations"' in html
    assert f"#span-{ids['replayed']}" in html
    assert "other arguments" in html
    assert f"#span-{ids['ok']}" not in html


def test_the_controls_page_says_when_there_are_none(client_logged_in, project):
    r = client_logged_in.get(reverse("controls") + f"?project={project.slug}")
    assert 'id="no-approval-violations"' in r.content.decode()
