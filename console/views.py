"""The Overview: is anything wrong? Today's and this week's figures of one project, the
runs that stand out today, the latest alerts and what waits for a person."""

from __future__ import annotations

from django.shortcuts import render
from django.utils import timezone

from budgets.selectors import alert_list_for_user
from console.selectors import overview_cards, runs_of_the_day
from controls.review import review_open_summary, sla_text
from rollouts.pages import utc_today
from traces import display
from traces.selectors import project_from_query

RECENT_ALERTS = 5


def overview_page(request):
    projects, project = project_from_query(user=request.user, slug=request.GET.get("project", ""))
    context = {"projects": projects, "nav_projects": projects, "project": project}
    if project is not None:
        today = utc_today()
        runs = runs_of_the_day(project=project, today=today)
        cards, has_runs = overview_cards(
            project=project, today=today, received_today=runs["received"]
        )
        context.update(
            {
                "cards": cards,
                "today": today,
                "has_runs": has_runs,
                "runs": runs,
                "alerts": list(
                    alert_list_for_user(user=request.user, project_slug=project.slug)[
                        :RECENT_ALERTS
                    ]
                ),
                "review": _review(project),
            }
        )
    return render(request, "console/overview.html", context)


def _review(project) -> dict:
    review = review_open_summary(project_id=project.pk, now=timezone.now())
    for row in review["oldest"]:
        row["waited_text"] = display.duration(row["waited"].total_seconds() * 1000)
        row["sla_text"] = sla_text(row["sla"]) if row["sla"] else ""
    return review
