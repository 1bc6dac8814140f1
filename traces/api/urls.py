from django.urls import path

from traces.api import views
from traces.api.outcomes import OutcomeBatchView

urlpatterns = [
    path("outcomes/", OutcomeBatchView.as_view(), name="api-outcomes"),
    path("traces/", views.TraceListView.as_view(), name="api-trace-list"),
    path("traces/<str:trace_id>/", views.TraceDetailView.as_view(), name="api-trace-detail"),
]
