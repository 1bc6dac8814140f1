"""Local argument validation in `contracted_tool`: the registry's schema fetched with the
project key from a live console and cached, a call that breaks it refused before the tool
runs (and recorded on the span), and what happens when the registry cannot be reached."""

from __future__ import annotations

import pytest
from agentops_sdk import Client, ContractUnavailable, ContractViolation, RequestRefused
from agentops_sdk import contracted_tool as contracted
from agentops_sdk.client import Unavailable
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from controls.services import contract_upsert
from traces.services import ingest_key_create

REFUND = {
    "name": "refund_order",
    "side_effects": True,
    "requires_idempotency_key": True,
    "arguments_schema": {
        "type": "object",
        "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
        "required": ["order_id", "amount"],
    },
}


@pytest.fixture
def provider():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.exporter = exporter
    return provider


@pytest.fixture
def console(live_server, project):
    # 2.0.0 is the current version; 1.0.0 (order_id only) is deprecated but registered.
    contract_upsert(
        project=project,
        data={
            **REFUND,
            "version": "1.0.0",
            "status": "deprecated",
            "arguments_schema": {"type": "object", "required": ["order_id"]},
        },
    )
    contract_upsert(project=project, data={**REFUND, "version": "2.0.0"})
    return Client(live_server.url, ingest_key_create(project=project).secret, timeout=5)


def refund_tool(console, provider, ran, *, version="2.0.0", keyed=True, **options):
    key = (lambda args, kwargs: f"refund-{kwargs['order_id']}") if keyed else None

    @contracted(
        "refund_order",
        version,
        idempotency_key=key,
        validate=console,
        tracer_provider=provider,
        **options,
    )
    def refund_order(*, order_id, amount=None):
        ran.append(order_id)
        return {"refund_id": f"rf-{order_id}"}

    return refund_order


def counting(client, monkeypatch):
    calls = []
    real = client._request

    def request(method, path, body=None):
        calls.append(path)
        return real(method, path, body)

    monkeypatch.setattr(client, "_request", request)
    return calls


def test_a_valid_call_runs_and_the_span_says_it_was_checked(console, provider):
    ran = []
    refund = refund_tool(console, provider, ran)
    assert refund(order_id="A-1", amount=12.5) == {"refund_id": "rf-A-1"}
    assert ran == ["A-1"]
    (span,) = provider.exporter.get_finished_spans()
    assert span.attributes["agentops.contract.validation"] == "ok"
    assert span.attributes["agentops.contract.version"] == "2.0.0"
    assert span.attributes["agentops.idempotency_key"] == "refund-A-1"
    assert span.status.status_code is not StatusCode.ERROR


def test_invalid_arguments_are_refused_before_the_tool_runs(console, provider):
    ran = []
    refund = refund_tool(console, provider, ran)
    with pytest.raises(ContractViolation) as caught:
        refund(order_id="A-1", amount="lots")
    violation = caught.value
    assert (violation.outcome, violation.pointer) == ("arguments_invalid", "/amount")
    assert violation.message == "'lots' is not of type 'number'"
    assert str(violation) == (
        "refund_order 2.0.0: arguments invalid at /amount: 'lots' is not of type 'number'"
    )
    with pytest.raises(ContractViolation) as caught:
        refund(order_id="A-2")
    assert (caught.value.pointer, caught.value.message) == ("", "'amount' is a required property")
    assert ran == []

    first, _ = provider.exporter.get_finished_spans()
    assert first.attributes["agentops.contract.validation"] == "arguments_invalid"
    assert first.attributes["agentops.contract.violation.pointer"] == "/amount"
    assert first.attributes["agentops.contract.violation.message"] == violation.message
    assert first.status.status_code is StatusCode.ERROR
    (event,) = first.events
    assert event.attributes["exception.type"] == "agentops_sdk.contracts.ContractViolation"
    assert "gen_ai.tool.call.result" not in first.attributes


def test_the_violation_is_recorded_on_a_framework_tool_span(console, provider):
    ran = []
    refund = refund_tool(console, provider, ran)
    tracer = provider.get_tracer("framework")
    with (
        pytest.raises(ContractViolation),
        tracer.start_as_current_span(
            "refund", attributes={"gen_ai.operation.name": "execute_tool"}, record_exception=False
        ),
    ):
        refund(order_id=7, amount=1)
    (span,) = provider.exporter.get_finished_spans()
    assert span.name == "refund"
    assert span.attributes["agentops.contract.violation.pointer"] == "/order_id"
    assert span.status.status_code is StatusCode.ERROR
    (event,) = span.events
    assert event.attributes["exception.type"] == "agentops_sdk.contracts.ContractViolation"
    assert ran == []


def test_a_required_idempotency_key_must_be_given(console, provider):
    ran = []
    refund = refund_tool(console, provider, ran, keyed=False)
    with pytest.raises(ContractViolation) as caught:
        refund(order_id="A-1", amount=3)
    assert caught.value.outcome == "idempotency_key_missing"
    assert ran == []


def test_the_named_version_is_the_schema_deprecated_or_not(console, provider):
    ran = []
    # 1.0.0 does not require the amount.
    refund_tool(console, provider, ran, version="1.0.0")(order_id="A-1")
    assert ran == ["A-1"]
    with pytest.raises(ContractViolation) as caught:
        refund_tool(console, provider, ran, version="3.0.0")(order_id="A-1", amount=1)
    assert caught.value.outcome == "unknown_version"
    assert "registered: 1.0.0, 2.0.0" in caught.value.message

    @contracted("never_registered", "1", validate=console, tracer_provider=provider)
    def other():
        ran.append("other")

    with pytest.raises(ContractViolation) as caught:
        other()
    assert caught.value.outcome == "no_contract"
    assert ran == ["A-1"]


def test_another_projects_contract_is_not_the_keys(console, live_server, provider):
    """The registry answers with the key's project only: a key of a project without the
    contract finds none."""
    from tests.factories import ProjectFactory

    other = ProjectFactory(slug="elsewhere")
    stranger = Client(live_server.url, ingest_key_create(project=other).secret, timeout=5)
    with pytest.raises(ContractViolation) as caught:
        refund_tool(stranger, provider, [])(order_id="A-1", amount=1)
    assert caught.value.outcome == "no_contract"


def test_contracts_are_cached_for_the_ttl(console, provider, monkeypatch):
    calls = counting(console, monkeypatch)
    refund = refund_tool(console, provider, [])
    for n in range(3):
        refund(order_id=f"A-{n}", amount=1)
    assert len(calls) == 1
    assert calls[0].startswith("/api/contracts/?name=refund_order")

    console.contract_ttl = 0  # every call asks again
    refund(order_id="A-9", amount=1)
    refund(order_id="A-9", amount=1)
    assert len(calls) == 3


def test_a_registry_outage_keeps_the_schema_fetched_before(console, provider, monkeypatch):
    ran = []
    console.contract_ttl = 0
    refund = refund_tool(console, provider, ran)
    refund(order_id="A-1", amount=1)

    def down(method, path, body=None):
        raise Unavailable("ConnectionRefusedError: [Errno 111] Connection refused")

    monkeypatch.setattr(console, "_request", down)
    refund(order_id="A-2", amount=1)
    with pytest.raises(ContractViolation):
        refund(order_id="A-3", amount="lots")
    assert ran == ["A-1", "A-2"]


def test_with_nothing_fetched_an_outage_refuses_the_call(closed_port, provider):
    ran = []
    console = Client(f"http://127.0.0.1:{closed_port}", "key", timeout=1)
    refund = refund_tool(console, provider, ran)
    with pytest.raises(ContractUnavailable, match="cannot be reached"):
        refund(order_id="A-1", amount=1)
    assert ran == []
    (span,) = provider.exporter.get_finished_spans()
    assert span.attributes["agentops.contract.validation"] == "unavailable"
    assert span.status.status_code is StatusCode.ERROR


def test_on_unavailable_run_or_a_client_failing_open_runs_unvalidated(closed_port, provider):
    ran = []
    closed = Client(f"http://127.0.0.1:{closed_port}", "key", timeout=1)
    refund_tool(closed, provider, ran, on_unavailable="run")(order_id="A-1", amount="x")
    open_ = Client(f"http://127.0.0.1:{closed_port}", "key2", timeout=1, fail_closed=False)
    refund_tool(open_, provider, ran)(order_id="A-2", amount="x")
    assert ran == ["A-1", "A-2"]
    spans = provider.exporter.get_finished_spans()
    assert [s.attributes["agentops.contract.validation"] for s in spans] == ["unavailable"] * 2


def test_after_a_failure_the_registry_is_not_asked_at_every_call(
    closed_port, provider, monkeypatch
):
    console = Client(f"http://127.0.0.1:{closed_port}", "key", timeout=1)
    calls = counting(console, monkeypatch)
    refund = refund_tool(console, provider, [], on_unavailable="run")
    for n in range(3):
        refund(order_id=f"A-{n}", amount=1)
    assert len(calls) == 1


def test_a_wrong_key_raises(live_server, project, provider):
    console = Client(live_server.url, "ak_not-a-key", timeout=5)
    with pytest.raises(RequestRefused) as caught:
        refund_tool(console, provider, [])(order_id="A-1", amount=1)
    assert caught.value.status == 401
