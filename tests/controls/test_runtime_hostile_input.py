"""Hostile bodies and query strings sent to the runtime APIs agents call before acting
(policy and budget checks) and to the controls reports: never a 500."""

from __future__ import annotations

import pytest
from django.test import Client

from controls.policies import policy_version_create

pytestmark = pytest.mark.django_db(transaction=True)

BODIES = [
    {"agent": "a\x00b", "tool": "t"},
    {"agent": "a", "tool": "t\x00"},
    {"agent": "a" * 5000, "tool": "t"},
    {"agent": "a", "tool": "t", "arguments": {"k\x00": "v\x00"}},
    {"agent": "a", "tool": "t", "arguments": [1, 2]},
    {"agent": "a", "tool": "t", "arguments": {"x": 2**80, "y": 1e308, "z": None}},
    {"agent": "a", "tool": "t", "amount": "1e400"},
    {"agent": "a", "tool": "t", "amount": "NaN"},
    {"agent": "a", "tool": "t", "confidence": "-5"},
    {"agent": "a", "tool": "t", "confidence": "Infinity"},
    {"agent": "a", "tool": "t", "phase": "x" * 100},
    {"agent": "a", "tool": "t", "risk": "\x00"},
    {"agent": "a", "tool": "t", "agent_version": "v" * 1000},
    {"agent": "", "tool": ""},
    {},
    [],
    "x",
]


def nested(depth):
    v = "leaf"
    for _ in range(depth):
        v = {"k": v}
    return v


def test_hostile_requests_are_answered_without_a_server_error(project, ingest_secret):
    policy_version_create(
        project=project, text="permit(principal, action, resource);", created_by="t"
    )
    c = Client(raise_request_exception=False, headers={"Authorization": f"Bearer {ingest_secret}"})
    bad = []
    for body in [*BODIES, {"agent": "a", "tool": "t", "arguments": nested(300)}]:
        for path in ("/api/policy/check", "/api/budgets/check"):
            r = c.post(path, body, content_type="application/json")
            if r.status_code >= 500:
                bad.append((path, repr(body)[:80], r.status_code, r.content[:200]))
    for raw in (b"{", b"\xff\xfe", b'{"agent": "\\ud800", "tool": "t"}'):
        for path in ("/api/policy/check", "/api/budgets/check", "/api/contracts/"):
            r = c.post(path, raw, content_type="application/json")
            if r.status_code >= 500:
                bad.append((path, raw, r.status_code, r.content[:200]))
    for q in ("since=x", "since=2026-13-01", "project=%00", "by=%00", "since=0001-01-01"):
        for path in ("/api/controls/violations/", "/api/controls/idempotency/"):
            r = c.get(f"{path}?project={project.slug}&{q}")
            if r.status_code >= 500:
                bad.append((path, q, r.status_code, r.content[:200]))
    assert not bad, bad
