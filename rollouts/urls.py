from django.urls import path

from rollouts import setup_pages, views

# Agent names are whatever clients send (slashes, "?", "#", "..", 200 characters), so
# they travel in the query string, never in the path.
urlpatterns = [
    path("agents/", views.agents_page, name="agents"),
    path("agents/compare/", views.compare_page, name="agent-compare"),
    # Links of the earlier path form keep working.
    path("agents/<path:agent>/compare/", views.compare_redirect),
    path("kpis/", views.kpi_page, name="kpis"),
    # Set up in the console (rollouts/setup_pages.py).
    path("kpis/setup/", setup_pages.kpi_setup_page, name="kpi-setup"),
    path("kpis/setup/new/", setup_pages.kpi_create_page, name="kpi-create"),
    path("kpis/setup/<int:kpi_id>/edit/", setup_pages.kpi_edit_page, name="kpi-edit"),
    path("agents/criteria/", setup_pages.criteria_setup_page, name="criteria-setup"),
    path("agents/criteria/new/", setup_pages.criteria_create_page, name="criteria-create"),
    path(
        "agents/criteria/<int:criteria_id>/edit/",
        setup_pages.criteria_edit_page,
        name="criteria-edit",
    ),
]
