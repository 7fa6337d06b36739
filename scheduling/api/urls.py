from django.urls import path

from scheduling.api import views

ID = "<int:pk>"

urlpatterns = [
    path("schedules/", views.ScheduleList.as_view(), name="schedule-list"),
    path(f"schedules/{ID}/", views.ScheduleDetail.as_view(), name="schedule-detail"),
    path(f"schedules/{ID}/run/", views.ScheduleRunNow.as_view(), name="schedule-run"),
    path(f"schedules/{ID}/runs/", views.ScheduleRuns.as_view(), name="schedule-runs"),
]
