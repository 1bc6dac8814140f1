from django.urls import path

from controls.api import views

urlpatterns = [
    path("contracts/", views.ContractListView.as_view(), name="api-contract-list"),
    path("contracts/<int:pk>/", views.ContractDetailView.as_view(), name="api-contract-detail"),
]
