from django.urls import path, re_path

from controls.api import idempotency_views, policy_views, views

urlpatterns = [
    path("contracts/", views.ContractListView.as_view(), name="api-contract-list"),
    path("contracts/<int:pk>/", views.ContractDetailView.as_view(), name="api-contract-detail"),
    path("controls/violations/", views.ViolationsView.as_view(), name="api-controls-violations"),
    path(
        "controls/idempotency/",
        idempotency_views.IdempotencyView.as_view(),
        name="api-controls-idempotency",
    ),
    re_path(r"^policy/check/?$", policy_views.PolicyCheckView.as_view(), name="api-policy-check"),
]
