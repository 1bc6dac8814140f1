"""The navigation comes from one context processor: the current tab, where the project
switch goes and which project it shows, for every page."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from budgets.models import BudgetEnvelope
from tests.factories import ProjectFactory, agent_run
from traces.models import Membership

pytestmark = pytest.mark.django_db


def _selected_project(html: str) -> str:
    select = re.search(r'<select id="nav-project".*?</select>', html, re.S).group(0)
    chosen = re.search(r'<option value="([^"]*)" selected>', select)
    return chosen.group(1) if chosen else ""


def _current_tab(html: str) -> str:
    return re.search(r'<a href="[^"]*" aria-current="page">([^<]+)', html).group(1)


def _switch_action(html: str) -> str:
    return re.search(r'<form class="project-switch" method="get" action="([^"]*)"', html).group(1)


@pytest.fixture
def second_project(user):
    second = ProjectFactory(slug="zeta", name="Zeta")
    Membership.objects.create(project=second, user=user)
    return second


@pytest.mark.parametrize(
    ("name", "tab", "switch"),
    [
        ("overview", "Overview", "overview"),
        ("agents", "Agents", "agents"),
        ("kpis", "KPI lift", "kpis"),
        ("trace-list", "Traces", "trace-list"),
        ("budget-list", "Budgets", "budget-list"),
        ("alert-list", "Alerts", "alert-list"),
        ("cost", "Cost", "cost"),
    ],
)
def test_each_page_marks_its_tab_and_keeps_the_chosen_project(
    client_logged_in, project, second_project, name, tab, switch
):
    html = client_logged_in.get(reverse(name), {"project": "zeta"}).content.decode()
    assert _current_tab(html) == tab
    assert _switch_action(html) == reverse(switch)
    assert _selected_project(html) == "zeta"


def test_a_trace_page_shows_its_project_and_switches_to_the_trace_list(
    client_logged_in, project, second_project
):
    trace_id, _spans = agent_run(project=second_project)
    url = reverse("trace-timeline", args=[second_project.slug, trace_id])
    html = client_logged_in.get(url).content.decode()
    assert (_current_tab(html), _switch_action(html)) == ("Traces", reverse("trace-list"))
    assert _selected_project(html) == "zeta"


def test_a_budget_page_shows_its_envelopes_project(client_logged_in, project, second_project):
    envelope = BudgetEnvelope.objects.create(
        project=second_project,
        name="Spend",
        metric=BudgetEnvelope.Metric.COST,
        limit=Decimal("100"),
        period=BudgetEnvelope.Period.MONTH,
        thresholds=[80, 100],
    )
    html = client_logged_in.get(reverse("budget-detail", args=[envelope.pk])).content.decode()
    assert (_current_tab(html), _switch_action(html)) == ("Budgets", reverse("budget-list"))
    assert _selected_project(html) == "zeta"


def test_a_page_with_no_project_named_shows_the_one_it_chose(
    client_logged_in, project, second_project
):
    html = client_logged_in.get(reverse("agents")).content.decode()
    assert _selected_project(html) == project.slug
