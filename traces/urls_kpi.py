from django.urls import path

from traces import views_kpi

urlpatterns = [
    path("overview/", views_kpi.overview_page, name="overview"),
    path("agents/", views_kpi.agents_page, name="agents"),
    path("agents/<str:agent>/compare/", views_kpi.compare_page, name="agent-compare"),
    path("kpis/", views_kpi.kpi_page, name="kpis"),
]
