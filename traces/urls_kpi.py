from django.urls import path

from traces import views_kpi

# Agent names are whatever clients send (slashes, "?", "#", "..", 200 characters), so
# they travel in the query string, never in the path.
urlpatterns = [
    path("overview/", views_kpi.overview_page, name="overview"),
    path("agents/", views_kpi.agents_page, name="agents"),
    path("agents/compare/", views_kpi.compare_page, name="agent-compare"),
    # Links of the earlier path form keep working.
    path("agents/<path:agent>/compare/", views_kpi.compare_redirect),
    path("kpis/", views_kpi.kpi_page, name="kpis"),
]
