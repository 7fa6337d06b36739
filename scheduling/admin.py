"""Schedules in the admin; django-celery-beat's schedule models stay editable, its
PeriodicTask admin is hidden (no celery beat process ever runs here)."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.utils import timezone
from django_celery_beat.models import PeriodicTask, SolarSchedule

from queues.durations import duration_ms
from queues.exceptions import EnqueueError
from queues.services import validate_job
from scheduling import services
from scheduling.cron import ScheduleError
from scheduling.models import ScheduledJob, ScheduleRun, ScheduleStatus
from scheduling.selectors import describe_schedule, next_runs, schedules_with_last_run

for model in (PeriodicTask, SolarSchedule):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


class ScheduledJobForm(forms.ModelForm):
    cron = forms.CharField(
        required=False,
        help_text="5 fields (or 6 with seconds = 0 first), e.g. '0 2 * * *'. "
        "Fills in the crontab below.",
    )
    timezone_name = forms.CharField(
        required=False, label="Time zone", help_text="For the cron string; default TIME_ZONE."
    )

    class Meta:
        model = ScheduledJob
        fields = [
            "name",
            "description",
            "domain",
            "status",
            "handler",
            "queue",
            "payload",
            "crontab",
            "interval",
            "clocked",
            "start_at",
            "end_at",
            "run_limit",
            "run_immediately",
            "misfire_policy",
            "max_catch_up",
            "priority",
            "retry_attempts",
            "retry_delay_ms",
            "timeout",
        ]

    def _get_validation_exclusions(self):
        # clean() checks "exactly one kind of schedule" with a message a user can act on;
        # keep the model's CheckConstraint from repeating it in raw form.
        return super()._get_validation_exclusions() | {"crontab", "interval", "clocked"}

    def clean(self):
        data = super().clean()
        cron = (data.get("cron") or "").strip()
        try:
            if cron:
                data["crontab"] = services.crontab_for(
                    cron, data.get("timezone_name") or settings.TIME_ZONE
                )
                self.instance.crontab = data["crontab"]
        except ScheduleError as exc:
            self.add_error("cron", str(exc))
            return data
        kinds = [data.get(k) for k in ("crontab", "interval", "clocked")]
        if sum(k is not None for k in kinds) != 1:
            raise forms.ValidationError(
                "Choose exactly one of a cron string / crontab, an interval or a clocked time."
            )
        if data.get("handler"):
            probe = ScheduledJob(**{k: v for k, v in data.items() if k in _PROBE_FIELDS})
            try:
                validate_job(data["handler"], data.get("payload"), **services.job_options(probe))
            except EnqueueError as exc:
                raise forms.ValidationError(str(exc)) from None
        return data


_PROBE_FIELDS = {"queue", "priority", "retry_attempts", "retry_delay_ms", "timeout"}


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

    @admin.display(description="Outcome")
    def job_status(self, run):
        return run.job.status if run.job else "-"

    @admin.display(description="Duration")
    def duration(self, run):
        ms = duration_ms(run.job.started_at, run.job.finished_at) if run.job else None
        return "-" if ms is None else f"{ms} ms"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ScheduledJob)
class ScheduledJobAdmin(admin.ModelAdmin):
    form = ScheduledJobForm
    list_display = [
        "name",
        "schedule_text",
        "status",
        "queue",
        "next_run_at",
        "last_run_at",
        "last_outcome",
        "run_count",
    ]
    list_filter = ["status", "queue", "domain", "is_system", "misfire_policy"]
    search_fields = ["name", "handler", "description", "domain"]
    readonly_fields = ["next_run_at", "last_run_at", "run_count", "last_error", "upcoming"]
    inlines = [ScheduleRunInline]
    actions = ["enable_schedules", "disable_schedules", "pause_schedules", "run_now"]
    fieldsets = [
        (
            None,
            {"fields": ["name", "description", "domain", "status", "handler", "queue", "payload"]},
        ),
        (
            "When",
            {
                "fields": [
                    "cron",
                    "timezone_name",
                    "crontab",
                    "interval",
                    "clocked",
                    "start_at",
                    "end_at",
                    "run_limit",
                    "run_immediately",
                    "misfire_policy",
                    "max_catch_up",
                ]
            },
        ),
        ("Job options", {"fields": ["priority", "retry_attempts", "retry_delay_ms", "timeout"]}),
        (
            "State",
            {"fields": ["next_run_at", "last_run_at", "run_count", "last_error", "upcoming"]},
        ),
    ]

    def get_queryset(self, request):
        return schedules_with_last_run()

    @admin.display(description="Schedule")
    def schedule_text(self, obj):
        return describe_schedule(obj)

    @admin.display(description="Last outcome")
    def last_outcome(self, obj):
        return getattr(obj, "last_run_status", None) or "-"

    @admin.display(description="Next runs")
    def upcoming(self, obj):
        if obj.pk is None:
            return "-"
        return (
            ", ".join(
                f"{t.astimezone(timezone.get_current_timezone()):%Y-%m-%d %H:%M:%S}"
                for t in next_runs(obj, 5)
            )
            or "-"
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.reschedule(obj)
        if not change and obj.run_immediately and obj.status == ScheduleStatus.ENABLED:
            services.fire_immediately(obj)

    def _set_status(self, request, queryset, status, label):
        for schedule in queryset:
            services.set_status(schedule, status)
        self.message_user(request, f"{queryset.count()} schedule(s) {label}.", messages.SUCCESS)

    @admin.action(description="Enable selected schedules", permissions=["pause"])
    def enable_schedules(self, request, queryset):
        self._set_status(request, queryset, ScheduleStatus.ENABLED, "enabled")

    @admin.action(description="Disable selected schedules", permissions=["pause"])
    def disable_schedules(self, request, queryset):
        self._set_status(request, queryset, ScheduleStatus.DISABLED, "disabled")

    @admin.action(description="Pause selected schedules", permissions=["pause"])
    def pause_schedules(self, request, queryset):
        self._set_status(request, queryset, ScheduleStatus.PAUSED, "paused")

    @admin.action(description="Run selected schedules now", permissions=["run"])
    def run_now(self, request, queryset):
        for schedule in queryset:
            services.run_now(schedule)
        self.message_user(request, f"{queryset.count()} schedule(s) run now.", messages.SUCCESS)

    def has_pause_permission(self, request):
        return request.user.has_perm("scheduling.pause_schedule")

    def has_run_permission(self, request):
        return request.user.has_perm("scheduling.run_schedule")
