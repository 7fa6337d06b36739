"""A schedule's run history on its change page: read-only, newest first."""

from django.contrib import admin
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from queues.durations import duration_ms
from scheduling.models import ScheduleRun


class ScheduleRunInline(admin.TabularInline):
    model = ScheduleRun
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["-due_at"]
    fields = ["due_at", "fired_at", "trigger", "job", "job_status", "duration", "error"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("job")

    @admin.display(description=_("Outcome"))
    def job_status(self, run):
        return run.job.status if run.job else "-"

    @admin.display(description=_("Duration"))
    def duration(self, run):
        ms = duration_ms(run.job.started_at, run.job.finished_at) if run.job else None
        return "-" if ms is None else gettext("%(ms)s ms") % {"ms": ms}

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
