from django.urls import path

from budgets import views

urlpatterns = [
    path("budgets/", views.budget_list_page, name="budget-list"),
    path("budgets/<int:envelope_id>/", views.budget_detail_page, name="budget-detail"),
    path("alerts/", views.alert_list_page, name="alert-list"),
    path("alerts/<int:alert_id>/", views.alert_detail_page, name="alert-detail"),
    path(
        "alerts/<int:alert_id>/acknowledge/",
        views.alert_acknowledge_view,
        name="alert-acknowledge",
    ),
    path("cost/", views.cost_page, name="cost"),
]
