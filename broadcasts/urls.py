from django.urls import path

from .views import calendar, dashboard

app_name = "broadcasts"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("calendar/", calendar.calendar_view, name="calendar"),
]
