"""Contract checks: a corpus with one tool call per outcome gives exactly those counts,
once, whatever the re-runs or concurrent workers, and never across projects."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from controls.checks import contract_checks_run
from controls.models import ContractCheck
from controls.selectors import contract_violation_rates, uncontracted_tools
from controls.services import contract_upsert
from tests.concurrency import run_concurrently
from tests.factories import new_trace_id, raw_span
from traces.ingest import span_batch_ingest

REFUND_ARGS = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["order_id", "amount"],
}
REFUND_RESULT = {
    "type": "object",
    "properties": {"refund_id": {"type": "string"}},
    "required": ["refund_id"],
}
GOOD_ARGS = '{"order_id": "A1", "amount": 5}'
GOOD_RESULT = '{"refund_id": "R1"}'
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def tool_span(trace_id, tool, *, args=GOOD_ARGS, result=GOOD_RESULT, start=T0, **attrs):
    return raw_span(
        trace_id=trace_id,
        name=f"execute_tool {tool}",
        start=start,
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "gen_ai.tool.call.arguments": args,
            "gen_ai.tool.call.result": result,
            "gen_ai.agent.name": "support-agent",
            "agentops.agent.version": "2.0",
            **attrs,
        },
    )


def register(project):
    for version, status in (("1.0.0", "deprecated"), ("1.1.0", "active")):
        contract_upsert(
            project=project,
            data={
                "name": "refund_order",
                "version": version,
                "status": status,
                "arguments_schema": REFUND_ARGS,
                "result_schema": REFUND_RESULT,
                "side_effects": True,
                "requires_idempotency_key": version == "1.1.0",
            },
        )


# One tool call per outcome, keyed by the trace it is in.
CORPUS = {
    "ok": {"agentops.idempotency_key": "k1"},
    "ok_named_old": {"agentops.contract.version": "1.0.0"},
    "no_contract": {"tool": "lookup_order"},
    "unknown_version": {"agentops.contract.version": "9.9.9"},
    "arguments_invalid": {"args": '{"order_id": 7, "amount": 5}', "agentops.idempotency_key": "k"},
    "arguments_not_json": {"args": "order A1", "agentops.idempotency_key": "k"},
    "result_invalid": {"result": '{"refund": 1}', "agentops.idempotency_key": "k"},
    "idempotency_key_missing": {},
}
EXPECTED = {
    "ok": 2,
    "no_contract": 1,
    "unknown_version": 1,
    "arguments_invalid": 2,
    "result_invalid": 1,
    "idempotency_key_missing": 1,
}


def ingest_corpus(project, start=T0) -> dict[str, str]:
    traces = {}
    spans = []
    for case, opts in CORPUS.items():
        opts = dict(opts)
        trace_id = traces[case] = new_trace_id()
        tool = opts.pop("tool", "refund_order")
        kw = {k: opts.pop(k) for k in ("args", "result") if k in opts}
        spans.append(tool_span(trace_id, tool, start=start, **kw, **opts))
        # A model call in the same run is not a tool span and is never checked.
        spans.append(
            raw_span(trace_id=trace_id, start=start, attributes={"gen_ai.operation.name": "chat"})
        )
    span_batch_ingest(project_id=project.pk, spans=spans)
    return traces


def outcomes(project) -> Counter:
    return Counter(ContractCheck.objects.filter(project=project).values_list("outcome", flat=True))


def test_the_corpus_gives_exactly_the_known_counts(project):
    register(project)
    traces = ingest_corpus(project)

    assert contract_checks_run() == len(CORPUS)

    assert outcomes(project) == EXPECTED
    by_trace = {c.trace_id: c for c in ContractCheck.objects.filter(project=project)}
    invalid = by_trace[traces["arguments_invalid"]]
    assert invalid.detail["pointer"] == "/order_id"
    assert "'string'" in invalid.detail["message"]
    assert invalid.contract_version == "1.1.0"
    assert (invalid.agent, invalid.agent_version) == ("support-agent", "2.0")
    assert by_trace[traces["arguments_not_json"]].detail["message"].startswith("Not valid JSON")
    assert by_trace[traces["result_invalid"]].detail["pointer"] == ""
    assert "refund_id" in by_trace[traces["result_invalid"]].detail["message"]
    # A named old version is checked against that version, which needs no key.
    old = by_trace[traces["ok_named_old"]]
    assert (old.outcome, old.contract_version) == ("ok", "1.0.0")
    assert by_trace[traces["unknown_version"]].contract is None
    assert by_trace[traces["no_contract"]].tool_name == "lookup_order"


def test_running_twice_counts_once_and_later_spans_are_picked_up(project):
    register(project)
    ingest_corpus(project)
    contract_checks_run()
    assert contract_checks_run() == 0
    call_command("check_contracts")
    assert sum(outcomes(project).values()) == len(CORPUS)

    # Spans committed later (whatever their id order) are found by the anti-join.
    ingest_corpus(project, start=T0 + timedelta(minutes=1))
    assert contract_checks_run(chunk=3) == len(CORPUS)
    assert outcomes(project) == {k: 2 * v for k, v in EXPECTED.items()}


def test_another_projects_spans_are_checked_against_its_own_registry(project, other_project):
    register(project)
    ingest_corpus(other_project)
    contract_checks_run(project_id=project.pk)
    assert not ContractCheck.objects.exists()

    contract_checks_run()
    # The other project registered nothing: every one of its tool calls is uncontracted.
    assert outcomes(other_project) == {"no_contract": len(CORPUS)}
    assert outcomes(project) == {}


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_count_once(project):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    register(project)
    for i in range(4):
        ingest_corpus(project, start=T0 + timedelta(seconds=i))
    _, errors = run_concurrently(lambda: contract_checks_run(chunk=5))
    assert errors == []
    assert outcomes(project) == {k: 4 * v for k, v in EXPECTED.items()}
    assert ContractCheck.objects.count() == 4 * len(CORPUS)


# ------------------------------------------------------------------ rates and the API

WINDOW = {"since": "2026-03-02T00:00:00Z", "until": "2026-03-03T00:00:00Z"}


def test_violation_rates_and_uncontracted_tools_have_known_answers(project):
    register(project)
    traces = ingest_corpus(project)
    later = ingest_corpus(project, start=T0 + timedelta(hours=1))
    contract_checks_run()

    rows = contract_violation_rates(project.pk, T0, T0 + timedelta(days=1), by=("tool_version",))
    assert [(r["tool_version"], r["checked"], r["violations"]) for r in rows] == [
        ("1.1.0", 10, 8),
        ("", 2, 2),  # the unknown version: no contract version to attribute it to
        ("1.0.0", 2, 0),
    ]
    assert rows[0]["rate"] == 0.8
    assert rows[0]["outcomes"] == {
        "arguments_invalid": 4,
        "idempotency_key_missing": 2,
        "result_invalid": 2,
    }
    # Offending runs, latest first: the later corpus's before the earlier one's.
    cases = ("arguments_invalid", "arguments_not_json", "result_invalid", "idempotency_key_missing")
    assert set(rows[0]["runs"][:4]) == {later[c] for c in cases}
    assert set(rows[0]["runs"][4:]) == {traces[c] for c in cases}
    assert rows[2]["runs"] == []

    tools = uncontracted_tools(project.pk, T0, T0 + timedelta(days=1))
    assert [(t["tool_name"], t["calls"]) for t in tools] == [("lookup_order", 2)]
    assert tools[0]["runs"] == [later["no_contract"], traces["no_contract"]]


def test_the_violations_api_is_scoped_and_refuses_bad_params(
    project, other_project, client_logged_in, outsider_client, ingest_secret
):
    register(project)
    ingest_corpus(project)
    contract_checks_run()
    url = "/api/controls/violations/"

    resp = client_logged_in.get(url, {"project": "acme-support", "by": "tool", **WINDOW})
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert [(r["tool"], r["checked"], r["violations"]) for r in body["rates"]] == [
        ("refund_order", 7, 5)
    ]
    assert [t["tool_name"] for t in body["uncontracted_tools"]] == ["lookup_order"]

    key = Client(headers={"Authorization": f"Bearer {ingest_secret}"})
    assert key.get(url, {"project": "acme-support", **WINDOW}).json()["rates"]
    assert outsider_client.get(url, {"project": "acme-support", **WINDOW}).status_code == 404
    assert Client().get(url, {"project": "acme-support"}).status_code in (401, 403)

    for bad in ({"by": "colour"}, {"since": "yesterday"}, {"since": WINDOW["until"]}, {}):
        params = {"project": "acme-support", **WINDOW, **bad} if bad else {}
        resp = client_logged_in.get(url, params)
        assert resp.status_code == 400, (bad, resp.content)


def test_the_beat_runs_the_check_every_30_seconds_and_the_task_checks(project, settings):
    from controls.tasks import check_contracts

    entry = settings.CELERY_BEAT_SCHEDULE["check-contracts"]
    assert (entry["task"], entry["schedule"], entry["options"]["expires"]) == (
        check_contracts.name,
        30,
        30,
    )
    register(project)
    ingest_corpus(project)
    assert check_contracts.apply().get() == len(CORPUS)
    assert outcomes(project) == EXPECTED


def test_the_task_checks_a_trailing_window_and_the_command_sweeps_everything(project):
    from controls.tasks import check_contracts
    from traces.models import Span

    register(project)
    ingest_corpus(project)
    old = Span.objects.filter(project=project, step="tool").order_by("id").first()
    Span.objects.filter(pk=old.pk).update(received_at=datetime.now(UTC) - timedelta(days=2))

    assert check_contracts.apply().get() == len(CORPUS) - 1
    assert not ContractCheck.objects.filter(span_id=old.span_id).exists()
    call_command("check_contracts")
    assert ContractCheck.objects.filter(span_id=old.span_id).exists()
