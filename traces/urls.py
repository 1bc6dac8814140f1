from django.urls import path

from traces import preference_pages, views

urlpatterns = [
    path("", views.home, name="home"),
    path("traces/", views.trace_list_page, name="trace-list"),
    path("accounts/time-zone/", preference_pages.time_zone_page, name="time-zone"),
    path("p/<slug:slug>/traces/<str:trace_id>/", views.trace_timeline_page, name="trace-timeline"),
    path(
        "p/<slug:slug>/traces/<str:trace_id>/rows/",
        views.timeline_rows_json,
        name="trace-timeline-rows",
    ),
    path(
        "p/<slug:slug>/traces/<str:trace_id>/rows/next/",
        views.timeline_next_json,
        name="trace-timeline-next",
    ),
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
