"""Cron expressions: validation, time zones (with daylight saving) and descriptions.

Next run times are computed on the wall clock of the schedule's zone and then placed on
the time line: a time repeated when clocks fall back runs once (its first occurrence); a
time skipped when clocks spring forward runs once, moved later by the gap's length
(02:30 on a night that jumps from 02:00 to 03:00 runs at 03:30).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cron_descriptor import Options, get_description
from croniter import CroniterBadDateError, croniter
from django.utils.translation import get_language, gettext, gettext_lazy

SUB_MINUTE_HINT = gettext_lazy(
    "cron schedules have minute resolution: for periods under a minute use an interval "
    "schedule (e.g. every 10 seconds)"
)
FIELDS = (
    gettext_lazy("minute"),
    gettext_lazy("hour"),
    gettext_lazy("day of month"),
    gettext_lazy("month"),
    gettext_lazy("day of week"),
)


class ScheduleError(ValueError):
    """A schedule that cannot be accepted; the message says why and what to do."""


def parse_cron(expression: str) -> str:
    """Validate a 5-field cron expression (or 6 fields whose first, a seconds field, is 0)
    and return it as 5 fields."""
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError(gettext("a cron expression is required, e.g. '0 2 * * *'"))
    fields = expression.split()
    if len(fields) == 6:
        seconds = fields[0]
        if seconds.lstrip("0") != "":
            raise ScheduleError(
                gettext(
                    "the seconds field of %(expression)s is %(seconds)s; only 0 is accepted, "
                    "because %(hint)s"
                )
                % {
                    "expression": repr(expression),
                    "seconds": repr(seconds),
                    "hint": SUB_MINUTE_HINT,
                }
            )
        fields = fields[1:]
    elif len(fields) != 5:
        raise ScheduleError(
            gettext(
                "%(expression)s has %(count)d fields; a cron expression has 5 (minute hour "
                "day-of-month month day-of-week) or 6 with seconds (0) first"
            )
            % {"expression": repr(expression), "count": len(fields)}
        )
    normalized = " ".join(fields)
    if not croniter.is_valid(normalized):
        for index, value in enumerate(fields):
            probe = ["*"] * 5
            probe[index] = value
            if not croniter.is_valid(" ".join(probe)):
                raise ScheduleError(
                    gettext("invalid %(field)s field %(value)s in cron expression %(expression)s")
                    % {"field": FIELDS[index], "value": repr(value), "expression": repr(expression)}
                )
        raise ScheduleError(
            gettext("invalid cron expression %(expression)s") % {"expression": repr(expression)}
        )
    return normalized


def get_zone(name) -> ZoneInfo:
    if isinstance(name, ZoneInfo):
        return name
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            gettext("unknown time zone %(name)s (use an IANA name like 'Asia/Shanghai')")
            % {"name": repr(name)}
        ) from None


def next_after(expression: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first instant strictly after ``after`` (aware) when the cron fires, in UTC."""
    local = after.astimezone(zone).replace(tzinfo=None, fold=0)
    try:
        it = croniter(expression, local)
        for _ in range(1000):
            candidate = it.get_next(datetime)
            # fold=0: an ambiguous wall time means its first occurrence; a wall time in a
            # spring-forward gap is read with the offset before the jump, so it lands the
            # gap's length later by the new wall clock (02:30 -> 03:30).
            instant = candidate.replace(tzinfo=zone, fold=0).astimezone(UTC)
            if instant > after:
                return instant
    except CroniterBadDateError:
        pass
    raise ScheduleError(
        gettext("cron expression %(expression)s never fires") % {"expression": repr(expression)}
    )


def describe(expression: str) -> str:
    """Human-readable text, as django-celery-beat's admin shows it."""
    options = Options()
    options.use_24hour_time_format = True
    if (get_language() or "").lower().startswith("zh"):
        # cron_descriptor ships its own catalogs; zh_CN for the Chinese console.
        options.locale_code = "zh_CN"
    try:
        return get_description(expression, options)
    except Exception:
        return expression
