from django.urls import path

from controls import contract_pages, decision_pages, policy_pages, review_pages, views

urlpatterns = [
    path("controls/", views.controls_page, name="controls"),
    path("controls/contracts/", contract_pages.contracts_page, name="contracts"),
    path("decisions/", decision_pages.decisions_page, name="decisions"),
    path("decisions/<int:pk>/", decision_pages.decision_page, name="decision"),
    path("controls/policies/", policy_pages.policies_page, name="controls-policies"),
    path(
        "controls/policies/<int:number>/",
        policy_pages.policy_version_page,
        name="controls-policy-version",
    ),
    path("review/", review_pages.review_queue_page, name="review-queue"),
    path("review/<int:item_id>/", review_pages.review_item_page, name="review-item"),
]
