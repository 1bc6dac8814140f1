from django.urls import path

from console import views

urlpatterns = [
    path("overview/", views.overview_page, name="overview"),
]
