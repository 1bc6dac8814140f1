from django.urls import path

from traces.api import views

urlpatterns = [
    path("traces/", views.TraceListView.as_view(), name="api-trace-list"),
    path("traces/<str:trace_id>/", views.TraceDetailView.as_view(), name="api-trace-detail"),
]
