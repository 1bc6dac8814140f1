from django.urls import path, re_path

from budgets.api import views

urlpatterns = [
    path("budgets/", views.EnvelopeListView.as_view(), name="api-budget-list"),
    re_path(r"^budgets/check/?$", views.BudgetCheckView.as_view(), name="api-budget-check"),
    path("budgets/<int:pk>/", views.EnvelopeDetailView.as_view(), name="api-budget-detail"),
    path("channels/", views.ChannelListView.as_view(), name="api-channel-list"),
    path("channels/<int:pk>/", views.ChannelDetailView.as_view(), name="api-channel-detail"),
    path("alerts/", views.AlertListView.as_view(), name="api-alert-list"),
    path(
        "alerts/acknowledge/",
        views.AlertsAcknowledgeView.as_view(),
        name="api-alerts-acknowledge",
    ),
    path("budgets/<int:pk>/snooze/", views.EnvelopeSnoozeView.as_view(), name="api-budget-snooze"),
    path("channels/<int:pk>/mute/", views.ChannelMuteView.as_view(), name="api-channel-mute"),
    path("alerts/<int:pk>/", views.AlertDetailView.as_view(), name="api-alert-detail"),
    path(
        "alerts/<int:pk>/acknowledge/",
        views.AlertAcknowledgeView.as_view(),
        name="api-alert-acknowledge",
    ),
    path("cost/", views.CostSeriesView.as_view(), name="api-cost"),
]
