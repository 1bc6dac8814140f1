"""An agent built with the SDK asks for a person's approval; a person approves it in the
console through headless Chromium and the agent proceeds; a second request nobody answers
expires and the agent stops; the approved call replayed with other arguments is flagged."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta

import pytest
from agentops_sdk import Client, contracted_tool
from django.utils import timezone
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from controls.approvals import approval_violations
from controls.models import Approval
from tests.browser.test_timeline_browser import browser  # noqa: F401  (the fixture)
from traces.services import ingest_key_create

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = pytest.mark.browser


def test_a_person_approves_in_the_console_and_the_agent_proceeds(
    transactional_db,
    live_server,
    project,
    user,
    browser,  # noqa: F811
):
    from playwright.sync_api import expect

    secret = ingest_key_create(project=project).secret
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(
                endpoint=f"{live_server.url}/v1/traces",
                headers={"authorization": f"Bearer {secret}"},
                timeout=10,
            )
        )
    )
    console = Client(live_server.url, secret, timeout=5, tracer_provider=provider)
    ran: list[dict] = []
    wait = {"timeout_s": 60}  # not an argument of the tool: the approval binds those

    @contracted_tool("issue_refund", "1", tracer_provider=provider)
    def issue_refund(*, order_id, amount):
        approval = console.request_approval(
            "support-agent",
            "issue_refund",
            {"order_id": order_id, "amount": amount},
            risk="high",
            reason="refund over 100",
            timeout_s=wait["timeout_s"],
        )
        if not approval.approved:
            return {"refused": approval.status}
        ran.append({"order_id": order_id})
        return {"refund_id": f"rf-{order_id}"}

    tracer = provider.get_tracer("support-agent")
    results: dict[str, dict] = {}

    def agent_run():
        with tracer.start_as_current_span("invoke_agent support-agent") as root:
            results["first"] = issue_refund(order_id=7, amount=150)
            results["trace_id"] = format(root.get_span_context().trace_id, "032x")
            # The approved call replayed with another amount, under the same approval.
            approval_id = Approval.objects.values_list("public_id", flat=True).get()
            with tracer.start_as_current_span(
                "execute_tool issue_refund",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "issue_refund",
                    "gen_ai.tool.call.arguments": '{"order_id": 7, "amount": 15000}',
                    "agentops.approval.id": str(approval_id),
                },
            ):
                pass
            # Nobody answers this one: it expires and the agent stops.
            wait["timeout_s"] = 2
            results["second"] = issue_refund(order_id=8, amount=900)

    agent = threading.Thread(target=agent_run, daemon=True)
    agent.start()
    deadline = time.monotonic() + 20
    while not Approval.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    item_id = Approval.objects.get().review_item.pk

    # The reviewer, in a browser: log in, open the item, claim it, approve it.
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{live_server.url}/accounts/login/?next=/review/?project={project.slug}")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("pw-for-tests-1")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/review/**")
    page.goto(f"{live_server.url}/review/{item_id}/")
    expect(page.locator("#approval-arguments")).to_contain_text("150")
    page.locator("#claim").click()
    page.locator("#note").fill("Customer confirmed")
    page.locator("#approve").click()
    expect(page.locator("#item-status")).to_contain_text("Approved by ada")

    agent.join(30)
    assert not agent.is_alive()
    assert provider.force_flush(10_000)
    provider.shutdown()

    assert results["first"] == {"refund_id": "rf-7"}
    assert results["second"] == {"refused": "expired"}
    assert ran == [{"order_id": 7}]
    statuses = dict(Approval.objects.values_list("arguments_hash", "status"))
    assert sorted(statuses.values()) == ["approved", "expired"]
    now = timezone.now()
    deadline = time.monotonic() + 10
    flagged: list[dict] = []
    while not flagged and time.monotonic() < deadline:  # the spans land asynchronously
        flagged = approval_violations(
            project_id=project.pk,
            since=now - timedelta(hours=1),
            until=now + timedelta(minutes=1),
        )
        time.sleep(0.2)
    assert [(r["trace_id"], r["outcome"]) for r in flagged] == [
        (results["trace_id"], "other_arguments")
    ]
