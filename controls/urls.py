from django.urls import path

from controls import views

urlpatterns = [
    path("controls/", views.controls_page, name="controls"),
]
