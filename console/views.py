"""The Overview: today's and this week's figures of one project, across the apps."""

from __future__ import annotations

from django.shortcuts import render

from console.selectors import overview_cards
from rollouts.pages import utc_today
from traces.selectors import project_from_query


def overview_page(request):
    projects, project = project_from_query(user=request.user, slug=request.GET.get("project", ""))
    context = {"projects": projects, "nav_projects": projects, "project": project}
    if project is not None:
        today = utc_today()
        cards, has_runs = overview_cards(project=project, today=today)
        context.update({"cards": cards, "today": today, "has_runs": has_runs})
    return render(request, "console/overview.html", context)
