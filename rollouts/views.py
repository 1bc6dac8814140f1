"""Agents, KPI lift and version comparison pages: pick the project, window and groups, read
through `rollouts.pages`, render."""

from __future__ import annotations

from datetime import timedelta

from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from rollouts.pages import (
    DIMS,
    Window,
    agents_page_read,
    compare_page_read,
    kpi_page_read,
    utc_today,
)
from rollouts.stats import MIN_SAMPLES, NOT_ENOUGH_DATA
from traces.selectors import project_from_query

WINDOWS = {"7": 7, "14": 14, "30": 30, "90": 90}
COMPARE_DIMS = ("agent_version", "prompt_version")


def _window(request) -> Window:
    days = WINDOWS.get(request.GET.get("days", ""), 14)
    today = utc_today()
    return Window(days=days, start_day=today - timedelta(days=days - 1), end_day=today)


def _context(request):
    projects, project = project_from_query(user=request.user, slug=request.GET.get("project", ""))
    window = _window(request)
    return (
        project,
        window,
        {
            "projects": projects,
            "nav_projects": projects,
            "project": project,
            "days": window.days,
            "windows": list(WINDOWS),
            "start_day": window.start_day,
            "end_day": window.end_day,
        },
    )


def agents_page(request):
    project, window, context = _context(request)
    if project is not None:
        context["rows"] = agents_page_read(project=project, window=window)
    return render(request, "rollouts/agents.html", context)


def kpi_page(request):
    project, window, context = _context(request)
    if project is not None:
        dim = request.GET.get("dim", "agent_version")
        if dim not in DIMS:
            dim = "agent_version"
        agent = request.GET.get("agent", "").strip()
        context.update(kpi_page_read(project=project, window=window, dim=dim, agent=agent))
        context.update(
            {"dim": dim, "dims": DIMS, "dim_label": DIMS[dim], "min_samples": MIN_SAMPLES}
        )
    return render(request, "rollouts/kpis.html", context)


def compare_redirect(request, agent: str):
    query = request.GET.copy()
    query["agent"] = agent
    return redirect(f"{reverse('agent-compare')}?{query.urlencode()}", permanent=True)


def compare_page(request):
    project, window, context = _context(request)
    if project is None:
        raise Http404("No such project")
    agent = request.GET.get("agent", "")
    if not agent:
        raise Http404("No agent named")
    dim = request.GET.get("dim", "agent_version")
    if dim not in COMPARE_DIMS:
        dim = "agent_version"
    read = compare_page_read(
        project=project,
        window=window,
        agent=agent,
        dim=dim,
        a=request.GET.get("a", ""),
        b=request.GET.get("b", ""),
    )
    if read is None:
        raise Http404("No runs of this agent in the window")
    context.update(read)
    context.update(
        {"agent": agent, "dim": dim, "dim_label": DIMS[dim], "not_enough": NOT_ENOUGH_DATA}
    )
    return render(request, "rollouts/compare.html", context)
