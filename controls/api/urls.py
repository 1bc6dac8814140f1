from django.urls import path, re_path

from controls.api import decision_views, idempotency_views, policy_views, views

urlpatterns = [
    path("contracts/", views.ContractListView.as_view(), name="api-contract-list"),
    path("contracts/<int:pk>/", views.ContractDetailView.as_view(), name="api-contract-detail"),
    path("controls/violations/", views.ViolationsView.as_view(), name="api-controls-violations"),
    path(
        "controls/idempotency/",
        idempotency_views.IdempotencyView.as_view(),
        name="api-controls-idempotency",
    ),
    path(
        "controls/decisions/", decision_views.DecisionsView.as_view(), name="api-controls-decisions"
    ),
    re_path(r"^policy/check/?$", policy_views.PolicyCheckView.as_view(), name="api-policy-check"),
    re_path(r"^policy/try/?$", policy_views.PolicyTryView.as_view(), name="api-policy-try"),
    path("policies/", policy_views.PolicyVersionListView.as_view(), name="api-policy-list"),
    path(
        "policies/<int:number>/",
        policy_views.PolicyVersionDetailView.as_view(),
        name="api-policy-detail",
    ),
]
