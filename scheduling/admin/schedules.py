"""The schedule admin: one editor for the timing with a live preview, a list that shows
what ran, and the status and run-now actions, all through the audited services."""

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.urls import path, re_path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from queues.humanize import human_time
from scheduling import services
from scheduling.admin.changelist import DomainFilter, row_buttons_column, sparkline
from scheduling.admin.endpoints import ROW_ACTIONS, row_action, timing_preview
from scheduling.admin.forms import ScheduledJobForm
from scheduling.admin.runs import ScheduleRunInline
from scheduling.changes import update_schedule
from scheduling.models import ScheduledJob, ScheduleStatus
from scheduling.selectors import (
    attach_recent_runs,
    display_zone,
    next_runs,
    schedule_changelist,
    timing_text,
)


class ScheduleChangeList(ChangeList):
    """The schedule list, with each row's latest runs read for the whole page at once."""

    def get_results(self, request):
        super().get_results(request)
        self.result_list = list(self.result_list)
        attach_recent_runs(self.result_list)


@admin.register(ScheduledJob)
class ScheduledJobAdmin(admin.ModelAdmin):
    form = ScheduledJobForm
    list_filter = ["status", "queue", DomainFilter, "is_system", "misfire_policy"]
    search_fields = ["name", "handler", "description", "domain"]
    readonly_fields = [
        "schedule_preview",
        "next_run_at",
        "last_run_at",
        "run_count",
        "last_error",
        "upcoming",
    ]
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
                "classes": ["jp-timing"],
                "fields": [
                    "kind",
                    "cron",
                    ("every", "period"),
                    "run_at",
                    "timezone",
                    "schedule_preview",
                ],
            },
        ),
        (
            _("Limits"),
            {
                "fields": [
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

    class Media:
        css = {"all": ["scheduling/schedules.css"]}
        js = ["scheduling/schedule_form.js", "scheduling/schedule_list.js"]

    def get_queryset(self, request):
        return schedule_changelist()

    def get_changelist(self, request, **kwargs):
        return ScheduleChangeList

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []  # a new schedule has no runs

    def get_list_display(self, request):
        return [
            "name",
            "timing",
            "zone",
            "status",
            "queue",
            "next_run",
            "recent_runs",
            row_buttons_column(request, self),
        ]

    @admin.display(description=_("Schedule"))
    def timing(self, obj):
        return timing_text(obj)

    @admin.display(description=_("Time zone"))
    def zone(self, obj):
        return display_zone(obj) or "-"

    @admin.display(description=_("Next run"), ordering="next_run_at")
    def next_run(self, obj):
        return human_time(obj.next_run_at)

    @admin.display(description=_("Last runs"))
    def recent_runs(self, obj):
        return sparkline(getattr(obj, "recent_runs", []))

    @admin.display(description=_("Preview"))
    def schedule_preview(self, obj):
        # Filled in as the fields change (schedule_form.js); without JavaScript, the saved
        # timing in words, and the next runs below.
        text = timing_text(obj) if obj.pk else ""
        return format_html(
            '<div id="jp-schedule-preview" class="jp-schedule-preview" data-url="{}" '
            'aria-live="polite"><p class="jp-preview-description">{}</p></div>',
            reverse("admin:scheduling_scheduledjob_preview"),
            text,
        )

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
            saved = update_schedule(schedule=obj, changes=form.schedule_changes(), by=request.user)
        else:
            saved = services.create_schedule(**form.create_arguments())
        obj.pk, obj._state.adding, obj._state.db = saved.pk, False, saved._state.db
        form.instance = obj

    # --- endpoints ----------------------------------------------------------------------

    def get_urls(self):
        return [
            path(
                "preview/",
                self.admin_site.admin_view(self.preview_view),
                name="scheduling_scheduledjob_preview",
            ),
            re_path(
                rf"^(?P<pk>[0-9]+)/(?P<action>{'|'.join(ROW_ACTIONS)})/$",
                self.admin_site.admin_view(self.row_action_view),
                name="scheduling_scheduledjob_row_action",
            ),
            *super().get_urls(),
        ]

    # The views are in endpoints.py; these hand them this admin (its permissions, messages).
    def preview_view(self, request):
        return timing_preview(request, self)

    def row_action_view(self, request, pk, action):
        return row_action(request, self, pk, action)

    # --- bulk actions -------------------------------------------------------------------

    def _set_status(self, request, queryset, status):
        for schedule in queryset:
            services.set_status(schedule, status, by=request.user)
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
            services.run_now(schedule, by=request.user)
        count = queryset.count()
        text = ngettext("%(count)d schedule(s) run now.", "%(count)d schedule(s) run now.", count)
        self.message_user(request, text % {"count": count}, messages.SUCCESS)

    def has_pause_permission(self, request):
        return request.user.has_perm("scheduling.pause_schedule")

    def has_run_permission(self, request):
        return request.user.has_perm("scheduling.run_schedule")
