"""Schedules in the admin: one editor for the timing (a cron string and its zone, an
interval, or a one-off time), a live preview, and a list that shows what ran. The
django-celery-beat rows behind a schedule are the services' business, so beat's own admin
pages are gone (no celery beat process ever runs here)."""

from datetime import datetime
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, re_path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from queues.admin.common import STATUS_COLORS, human_time, status_label
from queues.durations import duration_ms
from queues.exceptions import UnknownHandler
from queues.registry import get_handler, handler_names
from scheduling import services
from scheduling.calendar import cron_expression, zone_name
from scheduling.changes import update_schedule
from scheduling.cron import ScheduleError, get_zone, next_after, parse_cron, zone_names
from scheduling.models import ScheduledJob, ScheduleRun, ScheduleStatus
from scheduling.selectors import (
    display_zone,
    next_runs,
    preview,
    run_outcome,
    schedule_changelist,
    timing_text,
)

for model in (PeriodicTask, SolarSchedule, CrontabSchedule, IntervalSchedule, ClockedSchedule):
    if admin.site.is_registered(model):
        admin.site.unregister(model)

CRON, INTERVAL, ONE_OFF = "cron", "interval", "one_off"
# The sparkline's colours: a job status's own (as on the job list), and two of a run's.
RUN_COLORS = {**STATUS_COLORS, "error": "#ba2121", "gone": "#999"}


def default_zone() -> str:
    return settings.TIME_ZONE or "UTC"


class ZoneField(forms.ChoiceField):
    """An IANA time zone from a select; a name typed by hand (no JavaScript, an API-like
    post) is accepted when Python knows it, else refused with get_zone's reason."""

    def __init__(self, **kwargs):
        super().__init__(choices=[(z, z) for z in zone_names()], **kwargs)

    def validate(self, value):
        forms.Field.validate(self, value)
        if value:
            try:
                get_zone(value)
            except ScheduleError as exc:
                raise forms.ValidationError(str(exc), code="invalid_choice") from None


class WallClockField(forms.CharField):
    """A date and time on the chosen zone's wall clock (``datetime-local``)."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"})

    def to_python(self, value):
        text = super().to_python(value).strip()
        if not text:
            return None
        try:
            return datetime.fromisoformat(text.replace(" ", "T"))
        except ValueError:
            raise forms.ValidationError(
                _("Enter a date and time such as 2030-01-31 09:00."), code="invalid"
            ) from None

    def prepare_value(self, value):
        return value.strftime("%Y-%m-%dT%H:%M:%S") if isinstance(value, datetime) else value


class TimingFields(forms.Form):
    """The timing of a schedule, in one of three kinds; ``clean_timing`` turns it into
    the services' arguments (``cron`` + ``timezone_name``, ``every`` + ``period`` or
    ``run_at``) without writing anything."""

    kind = forms.ChoiceField(
        label=_("Kind"),
        choices=[(CRON, _("Cron")), (INTERVAL, _("Interval")), (ONE_OFF, _("One-off"))],
        widget=forms.RadioSelect(attrs={"class": "jp-kind"}),
        initial=CRON,
    )
    cron = forms.CharField(
        required=False,
        label=_("Cron string"),
        widget=forms.TextInput(attrs={"class": "jp-cron", "spellcheck": "false"}),
        help_text=_("minute hour day-of-month month day-of-week, e.g. 0 9 * * 1-5"),
    )
    every = forms.IntegerField(required=False, min_value=1, label=_("Every"))
    period = forms.ChoiceField(
        required=False,
        label=_("Unit"),
        choices=[
            ("", "---------"),
            ("seconds", _("seconds")),
            ("minutes", _("minutes")),
            ("hours", _("hours")),
            ("days", _("days")),
        ],
    )
    run_at = WallClockField(required=False, label=_("Date and time"))
    timezone = ZoneField(
        required=False,
        initial=default_zone,  # called per form: settings.TIME_ZONE as it is then
        label=_("Time zone"),
        help_text=_("The wall clock of the cron string or the date and time."),
    )

    def clean_timing(self, data: dict, *, now: datetime) -> dict | None:
        """The services' timing arguments, or None after adding an error to the field
        at fault."""
        kind = data.get("kind")
        zone_key = data.get("timezone") or default_zone()
        if "timezone" in self.errors:
            return None
        if kind == CRON:
            cron = (data.get("cron") or "").strip()
            if not cron:
                self.add_error("cron", gettext("Enter a cron string, e.g. 0 2 * * *."))
                return None
            try:
                normalized = parse_cron(cron)
                next_after(normalized, get_zone(zone_key), now)  # one that never fires
            except ScheduleError as exc:
                self.add_error("cron", str(exc))
                return None
            return {"cron": normalized, "timezone_name": zone_key}
        if kind == INTERVAL:
            if data.get("every") is None and "every" not in self.errors:
                self.add_error("every", gettext("Enter a whole number, 1 or more."))
            if not data.get("period") and "period" not in self.errors:
                self.add_error("period", gettext("Choose a unit: seconds, minutes, hours or days."))
            if "every" in self.errors or "period" in self.errors:
                return None
            return {"every": data["every"], "period": data["period"]}
        if kind == ONE_OFF:
            run_at = data.get("run_at")
            if run_at is None:
                if "run_at" not in self.errors:
                    self.add_error("run_at", gettext("Enter the date and time it runs at."))
                return None
            if timezone.is_naive(run_at):
                run_at = run_at.replace(tzinfo=ZoneInfo(zone_key))
            return {"run_at": run_at}
        return None  # the kind field has its own error


class PreviewForm(TimingFields):
    """The preview endpoint's query string: the editor's timing fields, the viewer's zone
    and (for tests) the instant to count from."""

    viewer_tz = forms.CharField(required=False)
    now = forms.DateTimeField(required=False)

    def clean(self):
        data = super().clean()
        self.timing = self.clean_timing(data, now=self.instant())
        return data

    def instant(self) -> datetime:
        """The instant the next runs count from: ``now`` if given, else the clock."""
        return self.cleaned_data.get("now") or timezone.now()

    def viewer_zone(self) -> ZoneInfo:
        """The browser's zone (Intl's resolvedOptions), or the project's when it sent none
        Python knows."""
        try:
            return get_zone(self.cleaned_data.get("viewer_tz") or default_zone())
        except ScheduleError:
            return get_zone(default_zone())


class ScheduledJobForm(TimingFields, forms.ModelForm):
    handler = forms.ChoiceField(
        label=capfirst(_("handler")),
        help_text=_("A registered job handler; the job it enqueues."),
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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = self.instance
        names = handler_names()
        choices = [(n, n) for n in names]
        if instance.handler and instance.handler not in names:
            # Shown as it is, so the page does not silently pick another; saving refuses it.
            label = gettext("%(name)s (not registered)") % {"name": instance.handler}
            choices.insert(0, (instance.handler, label))
        if "handler" in self.fields:
            self.fields["handler"].choices = [("", "---------"), *choices]
        for key, value in current_timing(instance).items():
            self.initial.setdefault(key, value)  # the add page's ?kind=… wins
        zone = self.initial.get("timezone")
        if "timezone" in self.fields and zone and zone not in zone_names():
            self.fields["timezone"].choices = [(zone, zone), *self.fields["timezone"].choices]

    def clean_handler(self):
        name = self.cleaned_data["handler"]
        try:
            get_handler(name)
        except UnknownHandler as exc:  # its message lists the registered ones
            raise forms.ValidationError(str(exc)) from None
        return name

    def clean(self):
        data = super().clean()
        now = timezone.now()
        self.timing = self.clean_timing(data, now=now)
        if self.timing is None:
            return data
        if not self.timing_changed():
            self.timing = {}
        elif "run_at" in self.timing and self.timing["run_at"] <= now:
            self.add_error("run_at", gettext("This time is in the past: it would never run."))
            return data
        if self.errors:
            return data  # a field's own error says it best
        # The checks create_schedule and update_schedule run (handler options, misfire
        # policy, dates), on the edited copy, before anything is written.
        probe = ScheduledJob(**{k: data[k] for k in _model_fields(self) if k in data})
        try:
            services.validate_schedule(probe, queue=None)
        except ScheduleError as exc:
            self.add_error(None, str(exc))
        return data

    def timing_changed(self) -> bool:
        if self.instance.pk is None:
            return True
        was = current_timing(self.instance)
        timing = self.timing
        if "cron" in timing:
            return was.get("kind") != CRON or (timing["cron"], timing["timezone_name"]) != (
                " ".join(was["cron"].split()),
                was["timezone"],
            )
        if "every" in timing:
            return was.get("kind") != INTERVAL or (timing["every"], timing["period"]) != (
                was["every"],
                was["period"],
            )
        return was.get("kind") != ONE_OFF or timing["run_at"] != self.instance.clocked.clocked_time

    def schedule_changes(self) -> dict:
        """The model fields this form changes, for ``update_schedule``: only these are
        written, so counters the scheduler updates meanwhile are kept; the timing only
        when it changed, so a missed run is kept through an edit of the description."""
        data = self.cleaned_data
        changed = set(self.changed_data)
        changes = {f: data[f] for f in _model_fields(self) if f in changed and f in data}
        return {**changes, **self.timing}

    def create_arguments(self) -> dict:
        """``create_schedule``'s arguments."""
        data = self.cleaned_data
        arguments = {f: data[f] for f in _model_fields(self) if f != "queue" and f in data}
        arguments["queue"] = data["queue"].name if data.get("queue") else None
        return {**arguments, **self.timing}


def current_timing(schedule: ScheduledJob) -> dict:
    """The timing fields' values for an existing schedule (a new one: a cron string in
    the project's zone)."""
    if schedule.crontab_id:
        return {"kind": CRON, "cron": cron_expression(schedule), "timezone": zone_name(schedule)}
    if schedule.interval_id:
        interval = schedule.interval
        return {"kind": INTERVAL, "every": interval.every, "period": interval.period}
    zone = default_zone()
    if schedule.clocked_id:
        local = schedule.clocked.clocked_time.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
        return {"kind": ONE_OFF, "run_at": local, "timezone": zone}
    return {"kind": CRON, "timezone": zone}


def _model_fields(form: forms.ModelForm) -> list[str]:
    # The admin builds the form from its fieldsets, which add the timing fields.
    names = {f.name for f in ScheduledJob._meta.concrete_fields}
    return [f for f in form._meta.fields if f in names]


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


class DomainFilter(admin.SimpleListFilter):
    """The schedules' domains; the empty one gets a name (a link needs a text)."""

    title = _("domain")
    parameter_name = "domain"
    NONE = "__none__"

    def lookups(self, request, model_admin):
        domains = ScheduledJob.objects.order_by("domain").values_list("domain", flat=True)
        return [(d or self.NONE, d or gettext("(no domain)")) for d in domains.distinct()]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(domain="" if self.value() == self.NONE else self.value())


# The list's per-row buttons: the permission each needs (as the bulk actions do).
ROW_ACTIONS = {"run": "run", "pause": "pause", "resume": "pause"}


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
            saved = update_schedule(schedule=obj, changes=form.schedule_changes())
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

    def preview_view(self, request):
        """GET ?kind=cron&cron=…&timezone=… (or every/period, or run_at): the timing in
        words and its next runs, as JSON; 400 with ``errors`` naming the field at fault."""
        return require_GET(self._preview)(request)

    def _preview(self, request):
        if not (self.has_view_or_change_permission(request) or self.has_add_permission(request)):
            raise PermissionDenied
        form = PreviewForm(request.GET)
        if not form.is_valid() or form.timing is None:
            errors = {field: str(messages_[0]) for field, messages_ in form.errors.items()}
            return JsonResponse({"errors": errors}, status=400)
        timing = form.timing
        zone = get_zone(form.cleaned_data.get("timezone") or default_zone())
        data = preview(
            kind=form.cleaned_data["kind"],
            zone=zone,
            viewer_zone=form.viewer_zone(),
            now=form.instant(),
            cron=timing.get("cron"),
            every=timing.get("every"),
            period=timing.get("period"),
            run_at=timing.get("run_at"),
        )
        return JsonResponse(data)

    def row_action_view(self, request, pk, action):
        """A row's Run now / Pause / Resume button: POST through the audited service, then
        JSON for fetch() or back to the list with a message."""
        return require_POST(self._row_action)(request, pk, action)

    def _row_action(self, request, pk, action):
        if action not in ROW_ACTIONS:
            raise Http404
        if not getattr(self, f"has_{ROW_ACTIONS[action]}_permission")(request):
            raise PermissionDenied
        schedule = get_object_or_404(ScheduledJob, pk=pk)
        ok = True
        try:
            if action == "run":
                services.run_now(schedule, by=request.user)
                done = gettext("%(name)s: a run was enqueued now.")
            elif action == "pause":
                services.pause(schedule, by=request.user)
                done = gettext("%(name)s: paused.")
            else:
                services.resume(schedule, by=request.user)
                done = gettext("%(name)s: enabled.")
            text = done % {"name": schedule.name}
        except ScheduleError as exc:
            ok, text = False, str(exc)
        if "application/json" in request.headers.get("Accept", ""):
            row = schedule_changelist().get(pk=pk)
            return JsonResponse(
                {
                    "ok": ok,
                    "message": text,
                    "status": row.status,
                    "status_label": str(row.get_status_display()),
                    "cells": {
                        "status": str(row.get_status_display()),
                        "next_run": str(human_time(row.next_run_at)),
                        "recent_runs": str(sparkline(row.recent_runs)),
                        "row_actions": str(row_buttons(row, request, self)),
                    },
                },
                status=200 if ok else 409,
            )
        self.message_user(request, text, messages.SUCCESS if ok else messages.ERROR)
        return HttpResponseRedirect(
            request.POST.get("next") or reverse("admin:scheduling_scheduledjob_changelist")
        )

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


def sparkline(runs: list[ScheduleRun]):
    """The latest runs as small boxes coloured by outcome, oldest first; each box's title
    says when it was due and what became of it."""
    if not runs:
        return format_html('<span class="jp-muted">{}</span>', gettext("no runs yet"))
    ordered = sorted(runs, key=lambda r: r.due_at)
    outcomes = [run_outcome(r) for r in ordered]
    boxes = format_html_join(
        "",
        '<span class="jp-spark-run" data-outcome="{}" style="background:{}" title="{}"></span>',
        (
            (
                outcome,
                RUN_COLORS.get(outcome, "#777"),
                f"{timezone.localtime(run.due_at):%Y-%m-%d %H:%M:%S} · {outcome_label(outcome)}",
            )
            for run, outcome in zip(ordered, outcomes, strict=True)
        ),
    )
    label = ngettext(
        "Last %(count)d run, latest: %(outcome)s",
        "Last %(count)d runs, latest: %(outcome)s",
        len(ordered),
    ) % {"count": len(ordered), "outcome": outcome_label(outcomes[-1])}
    return format_html('<span class="jp-spark" role="img" aria-label="{}">{}</span>', label, boxes)


def outcome_label(outcome: str) -> str:
    if outcome == "error":
        return gettext("not enqueued")
    if outcome == "gone":
        return gettext("job deleted")
    return status_label(outcome)


def row_buttons(schedule: ScheduledJob, request, model_admin: ScheduledJobAdmin):
    """The buttons ``request.user`` may use on this row. They submit the changelist form
    (its CSRF token) to their own URL: a plain POST without JavaScript, fetch() with it."""
    buttons = []
    if model_admin.has_run_permission(request):
        buttons.append(("run", gettext("Run now")))
    if model_admin.has_pause_permission(request):
        if schedule.status == ScheduleStatus.ENABLED:
            buttons.append(("pause", gettext("Pause")))
        elif schedule.status == ScheduleStatus.PAUSED:
            buttons.append(("resume", gettext("Resume")))
        else:
            buttons.append(("resume", gettext("Enable")))
    if not buttons:
        return "-"
    return format_html_join(
        "",
        '<button type="submit" class="jp-row-action" formaction="{}" formmethod="post" '
        'formnovalidate data-action="{}" data-schedule="{}">{}</button>',
        (
            (
                reverse("admin:scheduling_scheduledjob_row_action", args=[schedule.pk, action]),
                action,
                schedule.pk,
                label,
            )
            for action, label in buttons
        ),
    )


def row_buttons_column(request, model_admin: ScheduledJobAdmin):
    """The buttons column for this request (list_display callables see only the row)."""

    def row_actions(obj):
        buttons = row_buttons(obj, request, model_admin)
        return format_html('<span class="jp-row-actions">{}</span>', buttons)

    row_actions.short_description = _("Actions")
    return row_actions
