from django.urls import path, re_path

from controls.api import (
    approval_views,
    decision_memory_views,
    decision_views,
    idempotency_views,
    policy_views,
    readiness_views,
    views,
)

urlpatterns = [
    path("contracts/", views.ContractListView.as_view(), name="api-contract-list"),
    path("agents/readiness/", readiness_views.ReadinessView.as_view(), name="api-agent-readiness"),
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
    path("decisions/", decision_memory_views.DecisionListView.as_view(), name="api-decisions"),
    path(
        "decisions/<int:pk>/",
        decision_memory_views.DecisionDetailView.as_view(),
        name="api-decision-detail",
    ),
    re_path(
        r"^decisions/action/?$",
        decision_memory_views.DecisionActionView.as_view(),
        name="api-decision-action",
    ),
    path(
        "controls/approvals/",
        approval_views.ApprovalReportView.as_view(),
        name="api-controls-approvals",
    ),
    re_path(r"^approvals/?$", approval_views.ApprovalListView.as_view(), name="api-approval-list"),
    re_path(
        r"^approvals/(?P<approval_id>[^/]+)/?$",
        approval_views.ApprovalDetailView.as_view(),
        name="api-approval-detail",
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
