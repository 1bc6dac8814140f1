from django.urls import path, re_path

from controls.api import policy_views, views

urlpatterns = [
    path("contracts/", views.ContractListView.as_view(), name="api-contract-list"),
    path("contracts/<int:pk>/", views.ContractDetailView.as_view(), name="api-contract-detail"),
    path("controls/violations/", views.ViolationsView.as_view(), name="api-controls-violations"),
    re_path(r"^policy/check/?$", policy_views.PolicyCheckView.as_view(), name="api-policy-check"),
]
