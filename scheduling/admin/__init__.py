"""Schedules in the admin: one editor for the timing (a cron string and its zone, an
interval, or a one-off time), a live preview, and a list that shows what ran. The
django-celery-beat rows behind a schedule are the services' business, so beat's own admin
pages are gone (no celery beat process ever runs here)."""

from django.contrib import admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from scheduling.admin.changelist import DomainFilter, row_buttons, sparkline
from scheduling.admin.forms import PreviewForm, ScheduledJobForm, TimingFields
from scheduling.admin.runs import ScheduleRunInline
from scheduling.admin.schedules import ScheduledJobAdmin  # registers it

for model in (PeriodicTask, SolarSchedule, CrontabSchedule, IntervalSchedule, ClockedSchedule):
    if admin.site.is_registered(model):
        admin.site.unregister(model)

__all__ = [
    "DomainFilter",
    "PreviewForm",
    "ScheduleRunInline",
    "ScheduledJobAdmin",
    "ScheduledJobForm",
    "TimingFields",
    "row_buttons",
    "sparkline",
]
