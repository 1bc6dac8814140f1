"""Idempotency and retries: a corpus with planted duplicates, unkeyed retries and retry
storms (and their near misses) gives exactly those, and never another project's."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client

from controls.findings import findings_detect
from controls.idempotency import (
    derived_key,
    duplicate_side_effects,
    retried_model_cost,
    retry_storms,
    side_effecting_tools,
    unkeyed_retries,
)
from controls.services import contract_upsert
from tests.controls.test_checks import T0, WINDOW
from tests.factories import llm_attrs, new_trace_id, raw_span
from traces.ingest import span_batch_ingest

SINCE, UNTIL = T0 - timedelta(hours=12), T0 + timedelta(hours=12)
ERROR = 2  # OTLP STATUS_CODE_ERROR


def call(trace_id, tool, args, *, minutes=0, failed=False, key=None, **attrs):
    if key:
        attrs["agentops.idempotency_key"] = key
    return raw_span(
        trace_id=trace_id,
        name=f"execute_tool {tool}",
        start=T0 + timedelta(minutes=minutes),
        status_code=ERROR if failed else 0,
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "gen_ai.tool.call.arguments": args,
            "gen_ai.agent.name": "support-agent",
            **attrs,
        },
    )


def model_call(trace_id, attempt, *, agent="support-agent", cost=0.25, minutes=0):
    return raw_span(
        trace_id=trace_id,
        name="chat gpt-4o-mini",
        start=T0 + timedelta(minutes=minutes),
        attributes=llm_attrs(
            **{
                "gen_ai.agent.name": agent,
                "gen_ai.usage.cost": cost,
                "agentops.retry.attempt": attempt,
            }
        ),
    )


def register(project):
    def contract(name, version, side_effects, status="active"):
        contract_upsert(
            project=project,
            data={"name": name, "version": version, "side_effects": side_effects, "status": status},
        )

    contract("refund_order", "1.0.0", True)
    # The latest active version decides: send_email gained side effects, cancel_order's
    # side-effecting version is deprecated, so it has none.
    contract("send_email", "1.0.0", False)
    contract("send_email", "2.0.0", True)
    contract("cancel_order", "1.0.0", False)
    contract("cancel_order", "2.0.0", True, status="deprecated")
    contract("lookup_order", "1.0.0", False)


@pytest.fixture
def corpus(project, other_project):
    register(project)
    register(other_project)
    runs = {name: new_trace_id() for name in "abcdefsx"}
    a, b, c, d, e, f, s, x = (runs[n] for n in "abcdefsx")
    spans = [
        # Planted: one key executed twice in one run.
        call(a, "refund_order", '{"order_id": "A1"}', key="K-in-run"),
        call(a, "refund_order", '{"order_id": "A1"}', key="K-in-run", minutes=1),
        # Near miss: the same key, but the first execution failed.
        call(a, "refund_order", '{"order_id": "A9"}', key="K-failed", failed=True),
        call(a, "refund_order", '{"order_id": "A9"}', key="K-failed", minutes=1),
        # Planted: retried without a key (arguments in another order are the same call);
        # one success only, so not a duplicate.
        call(a, "refund_order", '{"order_id": "A2", "amount": 5}', failed=True),
        call(a, "refund_order", '{"amount": 5, "order_id": "A2"}', minutes=2),
        # Planted: one key executed in two runs two hours apart.
        call(b, "refund_order", '{"order_id": "B1"}', key="K-across"),
        call(c, "refund_order", '{"order_id": "B1"}', key="K-across", minutes=120),
        # Planted: no key, twice successfully in one run: an unkeyed retry and a duplicate.
        call(c, "send_email", '{"to": "ada@example.com"}'),
        call(c, "send_email", '{"to": "ada@example.com"}', minutes=1),
        # Near misses: the same arguments without a key in two runs; a tool without side
        # effects (deprecated side-effecting version) and one with no contract, twice each.
        call(d, "refund_order", '{"order_id": "D1"}'),
        call(e, "refund_order", '{"order_id": "D1"}'),
        call(d, "cancel_order", '{"order_id": "D2"}'),
        call(d, "cancel_order", '{"order_id": "D2"}'),
        call(e, "uncontracted", '{"q": 1}'),
        call(e, "uncontracted", '{"q": 1}'),
    ]
    # Planted storms: six attempts of one lookup and seven of one model call; near miss:
    # exactly five attempts of another lookup.
    spans += [call(s, "lookup_order", '{"id": 1}', minutes=i, failed=i < 5) for i in range(6)]
    spans += [call(s, "lookup_order", '{"id": 2}', minutes=i, failed=True) for i in range(5)]
    spans += [model_call(s, attempt, minutes=attempt) for attempt in range(7)]
    # Retried model calls of another agent; a first try (attempt 0) is not a retry.
    spans += [model_call(f, 0, agent="billing-agent"), model_call(f, 1, agent="billing-agent")]
    span_batch_ingest(project_id=project.pk, spans=spans)
    # Another project's duplicate, unkeyed retry and storm are never seen.
    span_batch_ingest(
        project_id=other_project.pk,
        spans=[call(x, "refund_order", "{}", key="K-in-run") for _ in range(7)]
        + [model_call(x, 3)],
    )
    return runs


def window(project):
    return {"project_id": project.pk, "since": SINCE, "until": UNTIL}


def test_side_effecting_tools_follow_the_latest_active_contract(project):
    register(project)
    assert side_effecting_tools(project_id=project.pk) == {"refund_order", "send_email"}


def test_the_derived_key_is_the_documented_hash():
    key = derived_key(trace_id="t1", tool="refund_order", arguments='{"b": 1, "a": [1, 2]}')
    expected = hashlib.sha256(b't1\nrefund_order\n{"a":[1,2],"b":1}').hexdigest()
    assert key == expected
    assert key != derived_key(trace_id="t2", tool="refund_order", arguments='{"a":[1,2],"b":1}')


def test_it_finds_exactly_the_planted_duplicate_side_effects(project, corpus):
    rows = duplicate_side_effects(**window(project))
    derived = derived_key(
        trace_id=corpus["c"], tool="send_email", arguments='{"to":"ada@example.com"}'
    )
    assert sorted(
        (r["key"], r["key_source"], r["tool"], r["executions"], r["runs"]) for r in rows
    ) == sorted(
        [
            ("K-in-run", "explicit", "refund_order", 2, [corpus["a"]]),
            ("K-across", "explicit", "refund_order", 2, [corpus["b"], corpus["c"]]),
            (derived, "derived", "send_email", 2, [corpus["c"]]),
        ]
    )
    assert all(len(r["spans"]) == 2 and r["spans"][0]["span_id"] for r in rows)


def test_the_duplicate_window_is_configurable(project, corpus, settings):
    settings.IDEMPOTENCY_WINDOW_HOURS = 1
    keys = {r["key"] for r in duplicate_side_effects(**window(project))}
    assert "K-across" not in keys
    assert "K-in-run" in keys


def test_it_finds_exactly_the_planted_unkeyed_retries(project, corpus):
    rows = unkeyed_retries(**window(project))
    assert [
        (r["trace_id"], r["tool"], r["arguments"], r["attempts"], r["succeeded"]) for r in rows
    ] == [
        (corpus["a"], "refund_order", '{"amount":5,"order_id":"A2"}', 2, 1),
        (corpus["c"], "send_email", '{"to":"ada@example.com"}', 2, 2),
    ]


def test_it_finds_exactly_the_planted_retry_storms(project, corpus):
    rows = retry_storms(**window(project))
    assert [(r["trace_id"], r["step"], r["call"], r["attempts"], r["failed"]) for r in rows] == [
        (corpus["s"], "llm", "chat gpt-4o-mini", 7, 0),
        (corpus["s"], "tool", "lookup_order", 6, 5),
    ]
    assert retry_storms(**window(project), attempts=6)[0]["attempts"] == 7
    assert len(retry_storms(**window(project), attempts=4)) == 3


def test_it_sums_the_cost_of_retried_model_calls_per_agent(project, corpus):
    rows = retried_model_cost(**window(project))
    assert [(r["agent"], r["retried_calls"], r["cost_usd"], r["runs"]) for r in rows] == [
        ("support-agent", 6, Decimal("1.5"), [corpus["s"]]),
        ("billing-agent", 1, Decimal("0.25"), [corpus["f"]]),
    ]


def test_a_window_that_misses_the_runs_finds_nothing(project, corpus):
    late = {"project_id": project.pk, "since": UNTIL, "until": UNTIL + timedelta(hours=1)}
    assert duplicate_side_effects(**late) == []
    assert unkeyed_retries(**late) == []
    assert retry_storms(**late) == []
    assert retried_model_cost(**late) == []


URL = "/api/controls/idempotency/"
PARAMS = {"project": "acme-support", **WINDOW}


def test_the_api_answers_the_four_lists(client_logged_in, corpus, ingest_secret):
    findings_detect(since=SINCE, until=UNTIL)  # the API reads the stored findings
    response = client_logged_in.get(URL, PARAMS)
    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["duplicate_side_effects"]) == 3
    assert len(body["unkeyed_retries"]) == 2
    assert [r["attempts"] for r in body["retry_storms"]] == [7, 6]
    assert Decimal(body["retried_model_cost"][0]["cost_usd"]) == Decimal("1.5")
    key = Client(headers={"Authorization": f"Bearer {ingest_secret}"})
    assert len(key.get(URL, PARAMS).json()["unkeyed_retries"]) == 2


def test_the_api_refuses_an_outsider_and_bad_windows(outsider_client, client_logged_in, corpus):
    assert outsider_client.get(URL, PARAMS).status_code == 404
    bad = client_logged_in.get(URL, {"project": "acme-support", "since": "yesterday"})
    assert bad.status_code == 400 and "since" in bad.json()
    backwards = {**PARAMS, "since": WINDOW["until"], "until": WINDOW["since"]}
    assert client_logged_in.get(URL, backwards).status_code == 400
    assert client_logged_in.get(URL, {}).json() == {"project": ["Required: a project slug."]}
