"""The navigation every page draws: which tab is current, where the project switch goes,
the user's projects, the firing-alert badge and, for staff, the quarantined batches.

Views pass the `project` they show (if any); base.html prefers its slug to the query's.
"""

from __future__ import annotations

import functools

from django.urls import reverse

from budgets.selectors import firing_alert_count_for_user
from traces.rollups import quarantined_batch_count
from traces.selectors import project_list_for_user

# url name → navigation tab, and each tab's page the project switch submits to.
TAB_OF_URL = {
    "overview": "overview",
    "agents": "agents",
    "agent-compare": "agents",
    "kpis": "kpis",
    "trace-list": "traces",
    "trace-timeline": "traces",
    "span-detail": "traces",
    "session-detail": "traces",
    "budget-list": "budgets",
    "budget-detail": "budgets",
    "alert-list": "alerts",
    "alert-detail": "alerts",
    "cost": "cost",
    "controls": "controls",
    "contracts": "controls",
    "review-queue": "review",
    "review-item": "review",
}
SWITCH_URL_OF_TAB = {
    "overview": "overview",
    "agents": "agents",
    "kpis": "kpis",
    "traces": "trace-list",
    "budgets": "budget-list",
    "alerts": "alert-list",
    "cost": "cost",
    "controls": "controls",
    "review": "review-queue",
}


def navigation(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    match = getattr(request, "resolver_match", None)
    tab = TAB_OF_URL.get(match.url_name if match else "", "")
    context = {
        "nav": tab,
        "switch_url": reverse(SWITCH_URL_OF_TAB[tab]) if tab else "",
        "current_project": (match.kwargs.get("slug") if match else None)
        or request.GET.get("project", "").strip(),
        "nav_projects": project_list_for_user(user=user),
        # Callables: counted only where the navigation draws them, once per page however
        # often it is drawn (the menu's badge and the tab's).
        "firing_alert_count": functools.cache(lambda: firing_alert_count_for_user(user=user)),
    }
    if user.is_staff:
        context["quarantined_batches"] = quarantined_batch_count
    return context
