"""Agent names are data: whatever a client sends as gen_ai.agent.name, every page that
lists or links the agent answers 200, shows the name escaped, and its links lead back to it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import escape, unescape
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from budgets.models import BudgetEnvelope
from rollouts.services import run_rollups_refresh
from tests.factories import agent_run
from traces.ingest import span_batch_ingest
from traces.models import Trace
from traces.rollups import rollup_pending

pytestmark = pytest.mark.django_db

NAMES = [
    "billing/refunds",
    "../../etc/passwd",
    "..",
    "with space",
    "ünïcødé 代理 🤖",
    "what?now",
    "hash#tag",
    "100% sure",
    "a%2Fb",
    "<script>alert(1)</script>",
    "quote\"and'apostrophe&amp",
    "x" * 200,
]

LINK = re.compile(r'href="([^"]+)"')


@pytest.fixture
def weird_agents(project):
    start = datetime.now(UTC) - timedelta(hours=1)
    for name in NAMES:
        for minutes, version in ((0, "v1"), (5, "v2")):
            _trace_id, spans = agent_run(
                project=project, agent=name, start=start + timedelta(minutes=minutes), store=False
            )
            spans[-1].attributes["gen_ai.agent.version"] = version
            span_batch_ingest(project_id=project.pk, spans=spans)
    rollup_pending()
    run_rollups_refresh()
    assert set(Trace.objects.values_list("agent", flat=True)) == set(NAMES)
    return NAMES


def _links(body: str) -> list[str]:
    return [unescape(h) for h in LINK.findall(body)]


def _agent_links(body: str) -> list[str]:
    """Links on a page that carry an agent name: the trace list and the comparison (each
    once: the readiness checklist links to them again)."""
    return list(dict.fromkeys(h for h in _links(body) if "agent=" in h))


def _get(client, url):
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def _assert_names_escaped(body: str, names) -> None:
    for name in names:
        assert escape(name) in body, name
    assert "<script>alert(1)</script>" not in body


def test_the_agents_page_lists_and_links_every_name(client_logged_in, project, weird_agents):
    body = _get(client_logged_in, f"/agents/?project={project.slug}")
    _assert_names_escaped(body, weird_agents)

    links = _agent_links(body)
    compare = [h for h in links if urlsplit(h).path == "/agents/compare/"]
    traces = [h for h in links if urlsplit(h).path == "/traces/"]
    # The name travels in the query string, so each link decodes back to exactly one agent.
    assert sorted(parse_qs(urlsplit(h).query)["agent"][0] for h in compare) == sorted(NAMES)
    assert sorted(parse_qs(urlsplit(h).query)["agent"][0] for h in traces) == sorted(NAMES)

    for href in compare:
        name = parse_qs(urlsplit(href).query)["agent"][0]
        page = _get(client_logged_in, href)
        _assert_names_escaped(page, [name])
        assert "v1" in page and "v2" in page
    for href in traces:
        name = parse_qs(urlsplit(href).query)["agent"][0]
        page = _get(client_logged_in, href)
        # The filtered list holds that agent's two runs and no other agent's.
        assert page.count('class="agent"') == 2, name
        assert escape(name) in page


def test_the_kpi_page_and_its_agent_choice_take_every_name(client_logged_in, project, weird_agents):
    body = _get(client_logged_in, f"/kpis/?project={project.slug}")
    _assert_names_escaped(body, weird_agents)
    for name in weird_agents:
        page = _get(client_logged_in, "/kpis/?" + urlencode({"agent": name}))
        assert f'value="{escape(name)}" selected' in page


def test_the_trace_list_filter_and_the_cost_page_show_every_name(
    client_logged_in, project, weird_agents
):
    body = _get(client_logged_in, f"/traces/?project={project.slug}")
    _assert_names_escaped(body, weird_agents)
    for href in _links(body):
        if href.startswith(f"/p/{project.slug}/traces/"):
            _assert_names_escaped(_get(client_logged_in, href), [])
    cost = _get(client_logged_in, f"/cost/?project={project.slug}&group=agent")
    _assert_names_escaped(cost, weird_agents)


def test_a_budget_on_an_odd_agent_links_to_its_runs(client_logged_in, project, weird_agents):
    name = "billing/refunds?#100%"
    agent_run(project=project, agent=name, start=datetime.now(UTC) - timedelta(minutes=1))
    envelope = BudgetEnvelope.objects.create(
        project=project,
        name="Refunds",
        agent=name,
        metric=BudgetEnvelope.Metric.COST,
        limit=Decimal("100"),
        period=BudgetEnvelope.Period.MONTH,
        thresholds=[80, 100],
    )
    _assert_names_escaped(_get(client_logged_in, "/budgets/"), [])
    detail = _get(client_logged_in, f"/budgets/{envelope.pk}/")
    assert escape(name) in detail
    to_traces = [h for h in _agent_links(detail) if urlsplit(h).path == "/traces/"]
    assert to_traces and {parse_qs(urlsplit(h).query)["agent"][0] for h in to_traces} == {name}
    listed = _get(client_logged_in, to_traces[0])
    assert listed.count('class="agent"') == 1 and escape(name) in listed


@pytest.mark.parametrize("name", NAMES)
def test_the_comparison_of_an_unknown_agent_is_a_404(client_logged_in, project, name):
    response = client_logged_in.get("/agents/compare/", {"project": project.slug, "agent": name})
    assert response.status_code == 404


def test_the_comparison_without_an_agent_is_a_404(client_logged_in, project):
    assert client_logged_in.get("/agents/compare/").status_code == 404


def test_old_comparison_links_redirect_to_the_query_form(client_logged_in, project):
    response = client_logged_in.get("/agents/billing/refunds/compare/?project=acme-support&a=v2")
    assert response.status_code == 301
    query = parse_qs(urlsplit(response.url).query)
    assert urlsplit(response.url).path == "/agents/compare/"
    assert query == {"agent": ["billing/refunds"], "project": ["acme-support"], "a": ["v2"]}
