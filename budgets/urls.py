from django.urls import path

from budgets import setup_pages, views

urlpatterns = [
    path("budgets/", views.budget_list_page, name="budget-list"),
    path("budgets/<int:envelope_id>/", views.budget_detail_page, name="budget-detail"),
    path("alerts/", views.alert_list_page, name="alert-list"),
    path("alerts/acknowledge/", views.alerts_acknowledge_view, name="alerts-acknowledge"),
    path("budgets/<int:envelope_id>/snooze/", views.envelope_snooze_view, name="budget-snooze"),
    path(
        "budgets/<int:envelope_id>/unsnooze/",
        views.envelope_unsnooze_view,
        name="budget-unsnooze",
    ),
    path("alerts/channels/<int:channel_id>/mute/", views.channel_mute_view, name="channel-mute"),
    path(
        "alerts/channels/<int:channel_id>/unmute/",
        views.channel_unmute_view,
        name="channel-unmute",
    ),
    path("alerts/<int:alert_id>/", views.alert_detail_page, name="alert-detail"),
    path(
        "alerts/<int:alert_id>/acknowledge/",
        views.alert_acknowledge_view,
        name="alert-acknowledge",
    ),
    path("cost/", views.cost_page, name="cost"),
    # Set up in the console (budgets/setup_pages.py).
    path("budgets/new/", setup_pages.envelope_create_page, name="budget-create"),
    path("budgets/<int:envelope_id>/edit/", setup_pages.envelope_edit_page, name="budget-edit"),
    path("alerts/channels/", setup_pages.channel_list_page, name="channel-list"),
    path("alerts/channels/new/", setup_pages.channel_create_page, name="channel-create"),
    path(
        "alerts/channels/<int:channel_id>/", setup_pages.channel_detail_page, name="channel-detail"
    ),
    path(
        "alerts/channels/<int:channel_id>/edit/", setup_pages.channel_edit_page, name="channel-edit"
    ),
    path(
        "alerts/channels/<int:channel_id>/test/", setup_pages.channel_test_view, name="channel-test"
    ),
]
