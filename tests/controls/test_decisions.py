"""Policy decisions from the traces and the check API, seen together: a corpus of gate spans
of each convention, API decisions (some recorded on spans) and side-effecting calls with
and without a decision before them gives exactly the expected counts, rates, latencies and
ungated runs, and never another project's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from controls.decisions import (
    percentile,
    policy_decision_report,
    policy_decisions,
    ungated_side_effects,
)
from controls.models import PolicyDecision
from controls.policies import policy_check, policy_version_create
from tests.controls.test_checks import T0
from tests.controls.test_idempotency import register
from tests.factories import new_trace_id, raw_span
from traces.ingest import span_batch_ingest

SINCE, UNTIL = T0 - timedelta(hours=12), T0 + timedelta(hours=12)
ERROR = 2  # OTLP STATUS_CODE_ERROR


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def api_decision(project, decision, policies, version, latency_us, when, *, tool="refund_order"):
    row = PolicyDecision.objects.create(
        public_id=uuid.uuid4(),
        project=project,
        agent="support-agent",
        tool=tool,
        decision=decision,
        policy_ids=policies,
        policy_version=version,
        latency_us=latency_us,
    )
    PolicyDecision.objects.filter(pk=row.pk).update(created_at=when)
    return str(row.public_id)


def agentops_gate(trace_id, minutes, duration_ms=4.0, **attrs):
    return raw_span(
        trace_id=trace_id,
        name="policy refund",
        start=at(minutes),
        duration_ms=duration_ms,
        attributes={"agentops.step": "policy", **attrs},
    )


def oi_guardrail(trace_id, minutes, duration_ms, *, failed=False):
    return raw_span(
        trace_id=trace_id,
        name="content-filter",
        start=at(minutes),
        duration_ms=duration_ms,
        status_code=ERROR if failed else 1,
        attributes={"openinference.span.kind": "GUARDRAIL", "input.value": "hello"},
    )


def langfuse_guardrail(trace_id, minutes, duration_ms, **attrs):
    return raw_span(
        trace_id=trace_id,
        name="pii-guard",
        start=at(minutes),
        duration_ms=duration_ms,
        attributes={"langfuse.observation.type": "guardrail", **attrs},
    )


def tool(trace_id, name, minutes, *, agent="support-agent", **attrs):
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.arguments": "{}",
        **attrs,
    }
    if agent:
        attributes["gen_ai.agent.name"] = agent
    return raw_span(
        trace_id=trace_id, name=f"execute_tool {name}", start=at(minutes), attributes=attributes
    )


@pytest.fixture
def corpus(project, other_project):
    register(project)
    register(other_project)
    runs = {name: new_trace_id() for name in "abcdefghx"}
    a, b, c, d, e, f, g, h, x = (runs[n] for n in "abcdefghx")
    ids = {
        # Recorded on two spans of run a: still one decision.
        "d1": api_decision(project, "allow", ["refund-limit"], 2, 1000, at(0)),
        "d2": api_decision(project, "deny", ["refund-limit", "fraud-check"], 2, 3000, at(1)),
        # Recorded by the SDK on the tool span itself (run c).
        "d3": api_decision(project, "escalate", ["refund-limit"], 2, 2000, at(2)),
        "d4": api_decision(project, "deny", [], 2, 500, at(3)),  # no permit matched
        "d5": api_decision(project, "deny", [], None, 400, at(4)),  # no active version
        "d6": api_decision(project, "allow", ["refund-limit"], 1, 800, at(5)),
        # Made after the window, recorded on a span inside it: counted in its own window.
        "late": api_decision(project, "allow", ["refund-limit"], 2, 900, UNTIL + timedelta(1)),
        "before": api_decision(project, "deny", ["refund-limit"], 2, 900, SINCE - timedelta(1)),
    }
    other_id = api_decision(other_project, "deny", ["refund-limit"], 2, 100, at(0))
    spans = [
        # Run a: a side effect before the gate (ungated), the gate (D1, recorded again on
        # a lookup without side effects), a side effect after it (gated).
        tool(a, "send_email", -1),
        tool(a, "lookup_order", 0.5, **{"agentops.policy.decision_id": ids["d1"]}),
        agentops_gate(
            a,
            0,
            **{
                "agentops.policy.decision": "allow",
                "agentops.policy.name": "refund-limit",
                "agentops.policy.decision_id": ids["d1"],
            },
        ),
        tool(a, "refund_order", 1),
        # Run b: a traced-only deny of policy refund-limit v2, and a side effect that
        # starts at the same instant (gated: at or before).
        agentops_gate(
            b,
            10,
            duration_ms=4.0,
            **{
                "agentops.policy.decision": "deny",
                "agentops.policy.name": "refund-limit",
                "agentops.policy.version": "2",
            },
        ),
        tool(b, "refund_order", 10),
        # Run c: the SDK recorded D3 on the tool span itself (stored as a policy step that
        # keeps its tool name): one decision, one gated call.
        tool(
            c,
            "refund_order",
            20,
            **{
                "agentops.policy.decision": "escalate",
                "agentops.policy.name": "refund-limit",
                "agentops.policy.decision_id": ids["d3"],
            },
        ),
        # Run d: a side effect with no decision anywhere in the run.
        tool(d, "refund_order", 30),
        # Run e: the gate started before the window; the side effect inside it is gated.
        agentops_gate(
            e,
            -13 * 60,
            **{
                "agentops.policy.decision": "allow",
                "agentops.policy.name": "refund-limit",
                "agentops.policy.decision_id": ids["before"],
            },
        ),
        tool(e, "refund_order", -11 * 60),
        # Run f: a tool span carrying only a decision id the API never gave: gated by the
        # id on it, but no decision to count. And the late decision, counted elsewhere.
        tool(f, "refund_order", 40, **{"agentops.policy.decision_id": str(uuid.uuid4())}),
        agentops_gate(
            f,
            11 * 60,
            **{
                "agentops.policy.decision": "allow",
                "agentops.policy.name": "refund-limit",
                "agentops.policy.decision_id": ids["late"],
            },
        ),
        # Run g: OpenInference guardrails (one failed) before a side effect; Langfuse
        # guardrails, one failed (level ERROR), one stating its decision.
        oi_guardrail(g, 50, 10.0),
        oi_guardrail(g, 51, 30.0, failed=True),
        tool(g, "send_email", 52),
        langfuse_guardrail(g, 53, 6.0, **{"langfuse.observation.level": "ERROR"}),
        langfuse_guardrail(g, 54, 2.0, **{"agentops.policy.decision": "allow"}),
        # Run h: an ungated side effect named by its contract, on a span that names no
        # agent (the run's agent is shown), with another project's decision id on a gate
        # that starts after it.
        raw_span(
            trace_id=h,
            name="invoke_agent billing-agent",
            start=at(59),
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "billing"},
        ),
        tool(h, "do_refund", 60, agent="", **{"agentops.contract.name": "refund_order"}),
        agentops_gate(
            h,
            61,
            duration_ms=8.0,
            **{
                "agentops.policy.decision": "deny",
                "agentops.policy.name": "fraud-check",
                "agentops.policy.version": "2",
                "agentops.policy.decision_id": other_id,
            },
        ),
    ]
    span_batch_ingest(project_id=project.pk, spans=spans)
    # Another project's gates and ungated side effects are never seen.
    span_batch_ingest(
        project_id=other_project.pk,
        spans=[
            tool(x, "refund_order", 0),
            agentops_gate(x, 1, **{"agentops.policy.decision_id": ids["d2"]}),
            oi_guardrail(x, 2, 5.0),
        ],
    )
    return {**runs, **ids}


def window(project):
    return {"project_id": project.pk, "since": SINCE, "until": UNTIL}


def rows_of(report):
    return {(r["policy"], r["policy_version"]): r for r in report["by_policy"]}


def test_each_decision_is_counted_once_from_both_sources(project, corpus):
    decisions = policy_decisions(**window(project))
    assert len(decisions) == 12
    by_id = {d.decision_id: d for d in decisions if d.decision_id}
    assert by_id[corpus["d1"]].source == "api+trace"
    assert (by_id[corpus["d1"]].trace_id, by_id[corpus["d1"]].decision) == (corpus["a"], "allow")
    assert by_id[corpus["d3"]].source == "api+trace"
    assert by_id[corpus["d2"]].source == "api"
    assert corpus["late"] not in by_id and corpus["before"] not in by_id
    assert sum(d.source.startswith("api") for d in decisions) == 6


def test_rates_per_policy_and_version_are_exactly_the_planted_ones(project, corpus):
    report = policy_decision_report(**window(project))
    rows = rows_of(report)
    assert [(r["policy"], r["policy_version"], r["decisions"]) for r in report["by_policy"]] == [
        ("refund-limit", "2", 4),
        ("content-filter", "", 2),
        ("fraud-check", "2", 2),
        ("pii-guard", "", 2),
        ("refund-limit", "1", 1),
        (None, "", 1),
        (None, "2", 1),
    ]
    limit = rows[("refund-limit", "2")]
    assert (limit["allow"], limit["deny"], limit["escalate"], limit["not_reported"]) == (1, 2, 1, 0)
    assert (limit["allow_rate"], limit["deny_rate"], limit["escalate_rate"]) == (0.25, 0.5, 0.25)
    # Latency: D1 1 ms, D3 2 ms, D2 3 ms (server time), the traced deny's span 4 ms.
    assert (limit["latency_p50_ms"], limit["latency_p95_ms"]) == (2.0, 4.0)
    assert limit["sources"] == {"api": 1, "api+trace": 2, "agentops": 1}

    fraud = rows[("fraud-check", "2")]
    # D2 (API) and run h's traced deny: another project's decision id is not ours.
    assert (fraud["deny"], fraud["deny_rate"], fraud["sources"]) == (
        2,
        1.0,
        {"api": 1, "agentops": 1},
    )
    assert (fraud["latency_p50_ms"], fraud["latency_p95_ms"]) == (3.0, 8.0)

    oi = rows[("content-filter", "")]
    assert (oi["deny"], oi["not_reported"], oi["allow"]) == (1, 1, 0)
    assert (oi["not_reported_rate"], oi["sources"]) == (0.5, {"openinference": 2})
    assert (oi["latency_p50_ms"], oi["latency_p95_ms"]) == (10.0, 30.0)

    lf = rows[("pii-guard", "")]
    assert (lf["deny"], lf["allow"], lf["sources"]) == (1, 1, {"langfuse": 2})

    assert rows[("refund-limit", "1")]["allow"] == 1
    # API decisions that matched no policy are their own rows, per version.
    assert (rows[(None, "2")]["deny"], rows[(None, "2")]["sources"]) == (1, {"api": 1})
    assert (rows[(None, "")]["deny"], rows[(None, "")]["latency_p50_ms"]) == (1, 0.4)


def test_the_totals_count_each_decision_once(project, corpus):
    totals = policy_decision_report(**window(project))["totals"]
    # 6 API decisions (2 of them also on spans) + 6 traced only: the agentops denies of
    # runs b and h, 2 OpenInference and 2 Langfuse guardrails; none twice.
    assert totals["decisions"] == 12
    assert (totals["allow"], totals["deny"], totals["escalate"], totals["not_reported"]) == (
        3,
        7,
        1,
        1,
    )
    assert totals["deny_rate"] == 7 / 12
    assert totals["sources"] == {
        "api": 4,
        "api+trace": 2,
        "agentops": 2,
        "openinference": 2,
        "langfuse": 2,
    }


def test_it_finds_exactly_the_ungated_side_effects(project, corpus):
    found = ungated_side_effects(**window(project))
    assert (found["side_effect_calls"], found["ungated_calls"], found["ungated_runs"]) == (9, 3, 3)
    assert [(r["trace_id"], r["agent"], r["tools"], len(r["calls"])) for r in found["runs"]] == [
        (corpus["h"], "billing", ["refund_order"], 1),
        (corpus["d"], "support-agent", ["refund_order"], 1),
        (corpus["a"], "support-agent", ["send_email"], 1),
    ]
    call = found["runs"][-1]["calls"][0]
    assert call["tool"] == "send_email" and len(call["span_id"]) == 16
    assert call["started_at"] == at(-1)
    assert len(ungated_side_effects(**window(project), runs=1)["runs"]) == 1


def test_a_project_without_side_effecting_contracts_has_no_ungated_calls(project):
    span_batch_ingest(project_id=project.pk, spans=[tool(new_trace_id(), "refund_order", 0)])
    assert ungated_side_effects(**window(project))["side_effect_calls"] == 0


def test_a_window_that_misses_everything_is_empty(project, corpus):
    late = {
        "project_id": project.pk,
        "since": UNTIL + timedelta(days=2),
        "until": UNTIL + timedelta(days=3),
    }
    report = policy_decision_report(**late)
    assert report["totals"]["decisions"] == 0 and report["by_policy"] == []
    assert report["totals"]["allow_rate"] is None
    assert report["ungated"]["ungated_runs"] == 0


def test_a_real_check_recorded_on_its_span_is_one_decision(project, ingest_secret):
    policy_version_create(
        project=project,
        text='@id("all") permit(principal, action, resource);',
        created_by="ada",
    )
    answer = policy_check(project_id=project.pk, agent="support-agent", tool="refund_order")
    now = datetime.now(UTC)
    span_batch_ingest(
        project_id=project.pk,
        spans=[
            raw_span(
                trace_id=new_trace_id(),
                name="policy refund_order",
                start=now,
                attributes={
                    "agentops.policy.decision": answer.decision,
                    "agentops.policy.name": answer.policy_ids[0],
                    "agentops.policy.decision_id": answer.decision_id,
                },
            )
        ],
    )
    report = policy_decision_report(
        project_id=project.pk, since=now - timedelta(hours=1), until=now + timedelta(hours=1)
    )
    assert report["totals"]["decisions"] == 1
    [row] = report["by_policy"]
    assert (row["policy"], row["policy_version"], row["allow"]) == ("all", "1", 1)
    assert row["sources"] == {"api+trace": 1}


def test_the_report_reads_a_fixed_number_of_queries(project, corpus, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        policy_decision_report(**window(project))


def test_percentile_is_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.95) == 4.0
    assert percentile(list(map(float, range(1, 21))), 0.95) == 19.0
    assert percentile([7.0], 0.05) == 7.0


# ---------------------------------------------------------------------------- the API

URL = "/api/controls/decisions/"
PARAMS = {"project": "acme-support", "since": SINCE.isoformat(), "until": UNTIL.isoformat()}


def test_the_api_answers_rates_and_ungated_runs(client_logged_in, corpus, ingest_secret):
    response = client_logged_in.get(URL, PARAMS)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["project"] == "acme-support"
    assert body["totals"]["decisions"] == 12
    assert body["by_policy"][0]["policy"] == "refund-limit"
    assert body["by_policy"][-1]["policy"] is None
    assert [r["trace_id"] for r in body["ungated"]["runs"]] == [corpus[n] for n in "hda"]
    key = Client(headers={"Authorization": f"Bearer {ingest_secret}"})
    assert key.get(URL, PARAMS).json()["ungated"]["ungated_calls"] == 3


def test_the_api_is_scoped_and_refuses_bad_windows(outsider_client, client_logged_in, corpus):
    assert outsider_client.get(URL, PARAMS).status_code == 404
    assert Client().get(URL, PARAMS).status_code in (401, 403)
    bad = client_logged_in.get(URL, {"project": "acme-support", "since": "yesterday"})
    assert bad.status_code == 400 and "since" in bad.json()
    backwards = {**PARAMS, "since": PARAMS["until"], "until": PARAMS["since"]}
    assert client_logged_in.get(URL, backwards).status_code == 400
    long = {**PARAMS, "since": (UNTIL - timedelta(days=91)).isoformat()}
    assert client_logged_in.get(URL, long).status_code == 400
    assert client_logged_in.get(URL, {}).json() == {"project": ["Required: a project slug."]}
    assert client_logged_in.get(URL, {**PARAMS, "project": "x\x00y"}).status_code in (400, 404)


# ---------------------------------------------------------------------------- the page


def test_the_controls_page_shows_decisions_and_ungated_runs(client_logged_in, project):
    register(project)
    now = datetime.now(UTC) - timedelta(minutes=5)
    gated, ungated = new_trace_id(), new_trace_id()
    api_decision(project, "deny", [], 3, 700, now)
    span_batch_ingest(
        project_id=project.pk,
        spans=[
            raw_span(
                trace_id=gated,
                name="policy refund",
                start=now,
                attributes={
                    "agentops.policy.decision": "escalate",
                    "agentops.policy.name": "refund-limit",
                },
            ),
            raw_span(
                trace_id=gated,
                name="execute_tool refund_order",
                start=now + timedelta(seconds=1),
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "refund_order",
                },
            ),
            raw_span(
                trace_id=ungated,
                name="execute_tool send_email",
                start=now,
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "send_email",
                },
            ),
        ],
    )
    response = client_logged_in.get("/controls/?project=acme-support")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="decisions-by-policy"' in page
    assert "refund-limit" in page and "(no matching policy)" in page
    assert "check API · 1" in page and "agentops.policy.* span · 1" in page
    assert 'id="ungated-runs"' in page
    assert "1 of 2 side-effecting calls in 1 run" in page
    assert f"/p/acme-support/traces/{ungated}/" in page
    assert f"/p/acme-support/traces/{gated}/" not in page


def test_the_controls_page_says_when_there_is_nothing(client_logged_in, project):
    page = client_logged_in.get("/controls/?project=acme-support").content.decode()
    assert 'id="no-decisions"' in page and 'id="no-side-effects"' in page
