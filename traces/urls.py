from django.urls import path

from traces import views

urlpatterns = [
    path("", views.home, name="home"),
    path("traces/", views.trace_list_page, name="trace-list"),
    path("p/<slug:slug>/traces/<str:trace_id>/", views.trace_timeline_page, name="trace-timeline"),
    path(
        "p/<slug:slug>/traces/<str:trace_id>/spans/<str:span_id>/",
        views.span_detail_partial,
        name="span-detail",
    ),
    path(
        "p/<slug:slug>/sessions/<path:session_id>/",
        views.session_page,
        name="session-detail",
    ),
]
