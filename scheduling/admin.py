"""Schedules in the admin; django-celery-beat's schedule models stay editable, its
PeriodicTask admin is hidden (no celery beat process ever runs here)."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.translation import gettext, ngettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _
from django_celery_beat.models import PeriodicTask, SolarSchedule

from queues.durations import duration_ms
from scheduling import services
from scheduling.calendar import cron_expression
from scheduling.changes import update_schedule
from scheduling.cron import ScheduleError
from scheduling.models import ScheduledJob, ScheduleRun, ScheduleStatus
from scheduling.selectors import describe_schedule, next_runs, schedules_with_last_run

for model in (PeriodicTask, SolarSchedule):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


class ScheduledJobForm(forms.ModelForm):
    cron = forms.CharField(
        required=False,
        label=pgettext_lazy("schedule field", "Cron"),
        help_text=_(
            "5 fields (or 6 with seconds = 0 first), e.g. '0 2 * * *'. Fills in the crontab below."
        ),
    )
    timezone_name = forms.CharField(
        required=False,
        label=_("Time zone"),
        help_text=_("For the cron string; default TIME_ZONE."),
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
        # clean() checks "exactly one kind of schedule" (services.validate_kind) with a
        # message a user can act on; keep the model's CheckConstraint from repeating it.
        return super()._get_validation_exclusions() | {"crontab", "interval", "clocked"}

    def clean(self):
        data = super().clean()
        cron = (data.get("cron") or "").strip()
        try:
            if cron:
                data["crontab"] = services.crontab_for(
                    cron, data.get("timezone_name") or settings.TIME_ZONE
                )
            # The checks create_schedule and update_schedule run, on the edited copy.
            probe = ScheduledJob(**{k: data[k] for k in _model_fields(self) if k in data})
            services.validate_kind(probe)
            services.validate_schedule(probe, queue=None)
        except ScheduleError as exc:
            self.add_error("cron" if cron and not data.get("crontab") else None, str(exc))
        return data

    def schedule_changes(self) -> dict:
        """The model fields this form changes, for ``update_schedule``: only these are
        written, so counters the scheduler updates meanwhile are kept."""
        data = self.cleaned_data
        changed = set(self.changed_data)
        if (data.get("cron") or "").strip():
            changed |= {"crontab", "interval", "clocked"}
        return {f: data[f] for f in _model_fields(self) if f in changed and f in data}


def _model_fields(form: forms.ModelForm) -> list[str]:
    # The admin builds the form from its fieldsets, which add the cron string fields.
    names = {f.name for f in ScheduledJob._meta.concrete_fields}
    return [f for f in form._meta.fields if f in names]


def _create_arguments(data: dict) -> dict:
    """``create_schedule``'s arguments from the add form's cleaned data."""
    arguments = {
        f: data[f]
        for f in ScheduledJobForm.Meta.fields
        if f not in {"queue", "crontab", "interval", "clocked"} and f in data
    }
    arguments["queue"] = data["queue"].name if data.get("queue") else None
    if data.get("crontab"):
        crontab = data["crontab"]
        arguments["cron"] = cron_expression(ScheduledJob(crontab=crontab))
        arguments["timezone_name"] = str(crontab.timezone or settings.TIME_ZONE)
    elif data.get("interval"):
        arguments["every"], arguments["period"] = data["interval"].every, data["interval"].period
    else:
        arguments["run_at"] = data["clocked"].clocked_time
    return arguments


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
            _("When"),
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
        (_("Job options"), {"fields": ["priority", "retry_attempts", "retry_delay_ms", "timeout"]}),
        (
            _("State"),
            {"fields": ["next_run_at", "last_run_at", "run_count", "last_error", "upcoming"]},
        ),
    ]

    def get_queryset(self, request):
        return schedules_with_last_run()

    @admin.display(description=_("Schedule"))
    def schedule_text(self, obj):
        return describe_schedule(obj)

    @admin.display(description=_("Last outcome"))
    def last_outcome(self, obj):
        return getattr(obj, "last_run_status", None) or "-"

    @admin.display(description=_("Next runs"))
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
        # Through the services, as the API does: an edit writes only what the form
        # changed and replans only when the timing changed (missed runs are kept).
        if change:
            saved = update_schedule(schedule=obj, changes=form.schedule_changes())
        else:
            saved = services.create_schedule(**_create_arguments(form.cleaned_data))
        obj.pk, obj._state.adding, obj._state.db = saved.pk, False, saved._state.db
        form.instance = obj

    def _set_status(self, request, queryset, status):
        for schedule in queryset:
            services.set_status(schedule, status)
        count = queryset.count()
        if status == ScheduleStatus.ENABLED:
            text = ngettext(
                "%(count)d schedule(s) enabled.", "%(count)d schedule(s) enabled.", count
            )
        elif status == ScheduleStatus.DISABLED:
            text = ngettext(
                "%(count)d schedule(s) disabled.", "%(count)d schedule(s) disabled.", count
            )
        else:
            text = ngettext("%(count)d schedule(s) paused.", "%(count)d schedule(s) paused.", count)
        self.message_user(request, text % {"count": count}, messages.SUCCESS)

    @admin.action(description=_("Enable selected schedules"), permissions=["pause"])
    def enable_schedules(self, request, queryset):
        self._set_status(request, queryset, ScheduleStatus.ENABLED)

    @admin.action(description=_("Disable selected schedules"), permissions=["pause"])
    def disable_schedules(self, request, queryset):
        self._set_status(request, queryset, ScheduleStatus.DISABLED)

    @admin.action(description=_("Pause selected schedules"), permissions=["pause"])
    def pause_schedules(self, request, queryset):
        self._set_status(request, queryset, ScheduleStatus.PAUSED)

    @admin.action(description=_("Run selected schedules now"), permissions=["run"])
    def run_now(self, request, queryset):
        for schedule in queryset:
            services.run_now(schedule)
        count = queryset.count()
        text = ngettext("%(count)d schedule(s) run now.", "%(count)d schedule(s) run now.", count)
        self.message_user(request, text % {"count": count}, messages.SUCCESS)

    def has_pause_permission(self, request):
        return request.user.has_perm("scheduling.pause_schedule")

    def has_run_permission(self, request):
        return request.user.has_perm("scheduling.run_schedule")
