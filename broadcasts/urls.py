from django.urls import path

from .views import dashboard

app_name = "broadcasts"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
]
