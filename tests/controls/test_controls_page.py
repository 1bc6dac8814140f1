"""The Controls page: per project and window, contract violations with links to the runs,
uncontracted tools, scoped to the user's projects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controls.checks import contract_checks_run
from tests.controls.test_checks import register, tool_span
from tests.factories import new_trace_id
from traces.ingest import span_batch_ingest


def _ingest(project, spans):
    span_batch_ingest(project_id=project.pk, spans=spans)
    contract_checks_run()


def test_violations_and_uncontracted_tools_are_listed_with_links(client_logged_in, project):
    register(project)
    now = datetime.now(UTC) - timedelta(minutes=5)
    bad, good, other = new_trace_id(), new_trace_id(), new_trace_id()
    _ingest(
        project,
        [
            tool_span(bad, "refund_order", start=now, args='{"order_id": 7, "amount": 1}'),
            tool_span(good, "refund_order", start=now, **{"agentops.idempotency_key": "k"}),
            tool_span(other, "lookup_order", start=now),
        ],
    )
    response = client_logged_in.get("/controls/?project=acme-support")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="violations-by-tool"' in page
    assert "Arguments invalid · 1" in page
    assert f"/p/acme-support/traces/{bad}/" in page
    # Not an offending run (other sections, e.g. ungated side effects, may link it).
    contracts = page[page.index('id="contracts"') :].split("</section>")[0]
    assert f"/p/acme-support/traces/{good}/" not in contracts
    assert "50 %" in page
    assert 'id="uncontracted"' in page and "lookup_order" in page
    assert f"/p/acme-support/traces/{other}/" in page


def test_the_window_excludes_older_calls(client_logged_in, project):
    register(project)
    _ingest(
        project,
        [tool_span(new_trace_id(), "refund_order", start=datetime.now(UTC) - timedelta(hours=3))],
    )
    assert 'id="violations-by-tool"' in client_logged_in.get("/controls/?hours=6").content.decode()
    page = client_logged_in.get("/controls/?hours=1").content.decode()
    assert 'id="no-checked-calls"' in page


def test_another_projects_page_is_a_404(outsider_client, project):
    assert outsider_client.get("/controls/?project=acme-support").status_code == 404


def test_login_is_required(client, project):
    response = client.get("/controls/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
