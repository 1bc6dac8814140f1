from django.urls import path

from controls import policy_pages, views

urlpatterns = [
    path("controls/", views.controls_page, name="controls"),
    path("controls/policies/", policy_pages.policies_page, name="controls-policies"),
    path(
        "controls/policies/<int:number>/",
        policy_pages.policy_version_page,
        name="controls-policy-version",
    ),
]
