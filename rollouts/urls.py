from django.urls import path

from rollouts import views

# Agent names are whatever clients send (slashes, "?", "#", "..", 200 characters), so
# they travel in the query string, never in the path.
urlpatterns = [
    path("agents/", views.agents_page, name="agents"),
    path("agents/compare/", views.compare_page, name="agent-compare"),
    # Links of the earlier path form keep working.
    path("agents/<path:agent>/compare/", views.compare_redirect),
    path("kpis/", views.kpi_page, name="kpis"),
]
