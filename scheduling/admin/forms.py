"""The schedule editor's forms: the timing in one of three kinds (a cron string and its
zone, an interval, or a one-off time), the live preview's query, and the change form that
turns into the services' arguments."""

from datetime import datetime
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.forms.utils import flatatt
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from queues.exceptions import UnknownHandler
from queues.registry import get_handler, handler_names
from scheduling import services
from scheduling.calendar import cron_expression, zone_name
from scheduling.cron import ScheduleError, get_zone, next_after, parse_cron, zone_names
from scheduling.models import ScheduledJob

CRON, INTERVAL, ONE_OFF = "cron", "interval", "one_off"


def default_zone() -> str:
    return settings.TIME_ZONE or "UTC"


class ZoneSelect(forms.Select):
    """A select of some 600 zones, written in one pass: through Django's option
    templates it costs more than the rest of the page."""

    def render(self, name, value, attrs=None, renderer=None):
        chosen = {str(v) for v in self.format_value(value)}
        final = self.build_attrs(self.attrs, {**(attrs or {}), "name": name})
        options = "".join(
            f'<option value="{escape(v)}"{" selected" if str(v) in chosen else ""}>'
            f"{escape(label)}</option>"
            for v, label in self.choices
        )
        return mark_safe(f"<select{flatatt(final)}>{options}</select>")  # noqa: S308


class ZoneField(forms.ChoiceField):
    """An IANA time zone from a select; a name typed by hand (no JavaScript, an API-like
    post) is accepted when Python knows it, else refused with get_zone's reason."""

    widget = ZoneSelect

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
