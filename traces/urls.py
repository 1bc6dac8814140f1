from django.urls import path

from traces import views

urlpatterns = [
    path("", views.home, name="home"),
]
