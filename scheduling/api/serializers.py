"""Schedule API bodies: input serializers shape requests into service arguments, output
serializers render schedules and runs. Field checks reuse the domain's own validators, so
a bad cron string, time zone, handler or queue is a 400 naming its field."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from queues.durations import duration_ms
from queues.exceptions import EnqueueError
from queues.priority import MAX_PRIORITY, MIN_PRIORITY
from queues.registry import get_handler
from queues.selectors import get_queue
from scheduling import services
from scheduling.calendar import cron_expression, zone_name
from scheduling.cron import ScheduleError, get_zone, parse_cron
from scheduling.models import MisfirePolicy, ScheduledJob, ScheduleStatus
from scheduling.selectors import describe_schedule, next_runs

STATUS_NAMES = {"disabled": 0, "enabled": 1, "paused": 2}
# Clients may write these in camelCase; ``timeout`` is then in milliseconds, as timeout_ms.
ALIASES = {
    "handlerName": "handler",
    "cronExpression": "cron",
    "retryAttempts": "retry_attempts",
    "retryDelay": "retry_delay_ms",
    "timeout": "timeout_ms",
}
KINDS = ("cron", "every", "run_at")


def _domain_check(check):
    def validator(value):
        if value is None:
            return
        try:
            check(value)
        except (ScheduleError, EnqueueError) as exc:
            raise serializers.ValidationError(str(exc)) from None

    return validator


check_cron = _domain_check(parse_cron)
check_zone = _domain_check(get_zone)
check_handler = _domain_check(get_handler)
check_queue = _domain_check(get_queue)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "enum": [0, 1, 2]},
            {"type": "string", "enum": list(STATUS_NAMES)},
        ],
        "description": _("1 = enabled, 0 = disabled, 2 = paused (or the name)."),
    }
)
class StatusField(serializers.Field):
    default_error_messages = {
        "invalid": _(
            "status must be 1 (enabled), 0 (disabled) or 2 (paused), "
            "or one of 'enabled', 'disabled', 'paused'; got {value!r}."
        )
    }

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = STATUS_NAMES.get(data.strip().lower(), data.strip())
            data = int(data) if isinstance(data, str) and data.isdigit() else data
        if isinstance(data, int) and not isinstance(data, bool) and data in ScheduleStatus.values:
            return data
        self.fail("invalid", value=data)

    def to_representation(self, value):
        return int(value)


def _ms(min_value: int = 0, **kw):
    return serializers.IntegerField(min_value=min_value, allow_null=True, **kw)


class StrictInput(serializers.Serializer):
    """Refuses keys it does not know instead of silently dropping them."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({k: [gettext("Unknown field.")] for k in unknown})
        return super().to_internal_value(data)

    def _merge_aliases(self, attrs: dict) -> None:
        for alias, name in ALIASES.items():
            if alias in attrs:
                if name in attrs:
                    raise serializers.ValidationError(
                        {
                            alias: [
                                gettext("Give %(name)s or %(alias)s, not both.")
                                % {"name": name, "alias": alias}
                            ]
                        }
                    )
                attrs[name] = attrs.pop(alias)


class ScheduleFieldsInput(StrictInput):
    """What both create and change accept."""

    description = serializers.CharField(required=False, allow_blank=True)
    payload = serializers.JSONField(required=False, help_text=_("The job's payload (JSON)."))
    priority = serializers.IntegerField(
        required=False, allow_null=True, min_value=MIN_PRIORITY, max_value=MAX_PRIORITY
    )
    retry_attempts = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    retryAttempts = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    retry_delay_ms = _ms(required=False)
    retryDelay = _ms(required=False, help_text=_("Alias of retry_delay_ms."))
    timeout_ms = _ms(required=False, min_value=1, help_text=_("Job timeout in milliseconds."))
    timeout = _ms(required=False, min_value=1, help_text=_("Alias of timeout_ms (milliseconds)."))
    status = StatusField(required=False)
    start_at = serializers.DateTimeField(required=False, allow_null=True)
    end_at = serializers.DateTimeField(required=False, allow_null=True)
    run_limit = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    misfire_policy = serializers.ChoiceField(MisfirePolicy.choices, required=False)
    max_catch_up = serializers.IntegerField(required=False, min_value=0)
    domain = serializers.CharField(required=False, allow_blank=True, max_length=64)
    cron = serializers.CharField(
        required=False,
        validators=[check_cron],
        help_text=_("e.g. '0 2 * * *' (or 6 fields, 0 s)."),
    )
    cronExpression = serializers.CharField(required=False, validators=[check_cron])
    timezone = serializers.CharField(
        required=False, validators=[check_zone], help_text=_("IANA zone of the cron string.")
    )
    every = serializers.IntegerField(required=False, min_value=1)
    period = serializers.ChoiceField(services.INTERVAL_PERIODS, required=False)
    run_at = serializers.DateTimeField(required=False, help_text=_("A one-off run at this time."))

    def validate(self, attrs):
        self._merge_aliases(attrs)
        kinds = [k for k in KINDS if k in attrs]
        if len(kinds) > 1:
            raise serializers.ValidationError(
                gettext(
                    "Give exactly one of cron, every (interval) or run_at (one-off), not %(kinds)s."
                )
                % {"kinds": kinds}
            )
        # A time zone or period alone changes the current cron or interval schedule.
        kind = kinds[0] if kinds else self._current_kind()
        if "timezone" in attrs and kind != "cron":
            raise serializers.ValidationError(
                {"timezone": [gettext("Only a cron schedule has one.")]}
            )
        if "period" in attrs and kind != "every":
            raise serializers.ValidationError(
                {"period": [gettext("Only an interval (every) has one.")]}
            )
        if "timezone" in attrs:
            attrs["timezone_name"] = attrs.pop("timezone")
        if "timeout_ms" in attrs:
            ms = attrs.pop("timeout_ms")
            attrs["timeout"] = None if ms is None else ms / 1000
        return attrs

    def _current_kind(self) -> str | None:
        schedule = self.instance
        if schedule is None:
            return None
        return "cron" if schedule.crontab_id else "every" if schedule.interval_id else "run_at"


class ScheduleCreateInput(ScheduleFieldsInput):
    """A new schedule: a handler and exactly one of cron (+ timezone), every (+ period) or
    run_at. The camelCase names of ALIASES (handlerName, cronExpression, ...) are accepted
    too."""

    name = serializers.CharField(max_length=128)
    handler = serializers.CharField(
        required=False, max_length=200, validators=[check_handler], help_text=_("Job handler.")
    )
    handlerName = serializers.CharField(
        required=False, max_length=200, validators=[check_handler], help_text=_("Alias of handler.")
    )
    queue = serializers.CharField(
        required=False, allow_null=True, validators=[check_queue], help_text=_("Queue name.")
    )
    run_immediately = serializers.BooleanField(required=False)

    def validate_name(self, value: str) -> str:
        if ScheduledJob.objects.filter(name=value).exists():
            raise serializers.ValidationError(
                gettext("A schedule named %(name)s already exists.") % {"name": repr(value)}
            )
        return value

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if not attrs.get("handler"):
            raise serializers.ValidationError({"handler": [gettext("This field is required.")]})
        if not any(k in attrs for k in KINDS):
            raise serializers.ValidationError(
                gettext("Give one of cron (+ timezone), every (+ period) or run_at.")
            )
        return attrs


class ScheduleUpdateInput(ScheduleFieldsInput):
    """A partial change; the schedule's name, handler and queue stay."""


# --- output ---------------------------------------------------------------------------


def _datetime(value: datetime | None) -> str | None:
    return None if value is None else serializers.DateTimeField().to_representation(value)


class ScheduleOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    domain = serializers.CharField()
    handler = serializers.CharField()
    queue = serializers.CharField(source="queue.name", allow_null=True, help_text=_("Queue name."))
    status = serializers.IntegerField(help_text=_("1 = enabled, 0 = disabled, 2 = paused."))
    status_name = serializers.SerializerMethodField()
    schedule_text = serializers.SerializerMethodField(help_text=_("The schedule in words."))
    cron = serializers.SerializerMethodField()
    timezone = serializers.SerializerMethodField()
    every = serializers.IntegerField(source="interval.every", allow_null=True)
    period = serializers.CharField(source="interval.period", allow_null=True)
    run_at = serializers.DateTimeField(source="clocked.clocked_time", allow_null=True)
    next_run_at = serializers.DateTimeField(allow_null=True)
    last_run_at = serializers.DateTimeField(allow_null=True)
    last_run_status = serializers.CharField(allow_null=True, default=None)
    run_count = serializers.IntegerField()
    last_error = serializers.CharField()

    def get_status_name(self, schedule) -> str:
        return ScheduleStatus(schedule.status).name.lower()

    def get_schedule_text(self, schedule) -> str:
        return describe_schedule(schedule)

    def get_cron(self, schedule) -> str | None:
        return cron_expression(schedule) if schedule.crontab_id else None

    def get_timezone(self, schedule) -> str | None:
        return zone_name(schedule) if schedule.crontab_id else None


class ScheduleDetailOut(ScheduleOut):
    payload = serializers.JSONField()
    priority = serializers.IntegerField(allow_null=True)
    retry_attempts = serializers.IntegerField(allow_null=True)
    retry_delay_ms = serializers.IntegerField(allow_null=True)
    timeout_ms = serializers.SerializerMethodField()
    start_at = serializers.DateTimeField(allow_null=True)
    end_at = serializers.DateTimeField(allow_null=True)
    run_limit = serializers.IntegerField(allow_null=True)
    run_immediately = serializers.BooleanField()
    misfire_policy = serializers.CharField()
    max_catch_up = serializers.IntegerField()
    is_system = serializers.BooleanField()
    next_runs = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_timeout_ms(self, schedule) -> int | None:
        return None if schedule.timeout is None else round(schedule.timeout * 1000)

    @extend_schema_field(serializers.ListField(child=serializers.DateTimeField()))
    def get_next_runs(self, schedule) -> list:
        """The next 5 due instants (none unless enabled)."""
        return [_datetime(t) for t in next_runs(schedule, 5)]


class ScheduleRunOut(serializers.Serializer):
    id = serializers.IntegerField()
    due_at = serializers.DateTimeField()
    fired_at = serializers.DateTimeField()
    trigger = serializers.CharField()
    lateness_ms = serializers.IntegerField()
    job = serializers.UUIDField(source="job_id", allow_null=True)
    job_status = serializers.CharField(source="job.status", allow_null=True)
    duration_ms = serializers.SerializerMethodField()
    error = serializers.CharField()

    def get_duration_ms(self, run) -> int | None:
        job = run.job
        return duration_ms(job.started_at, job.finished_at) if job is not None else None
