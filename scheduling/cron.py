"""Cron expressions: validation, time zones (with daylight saving) and descriptions.

Next run times are computed on the wall clock of the schedule's zone and then placed on
the time line: a time repeated when clocks fall back runs once (its first occurrence); a
time skipped when clocks spring forward runs once, moved later by the gap's length
(02:30 on a night that jumps from 02:00 to 03:00 runs at 03:30).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadDateError, CroniterError, croniter
from django.utils.dates import MONTHS, WEEKDAYS
from django.utils.translation import get_language, gettext, gettext_lazy, ngettext

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


@cache
def zone_names() -> tuple[str, ...]:
    """Every IANA zone name this Python knows, sorted: the choices of a zone select."""
    return tuple(sorted(available_timezones()))


# --- plain-language descriptions --------------------------------------------------------
# Written here rather than with cron-descriptor: its Chinese leaves day and month names in
# English ("Monday 到 Friday", from the process-wide ``calendar`` locale) and puts the time
# first. Each phrase below is one gettext string, so a language orders the parts its way.

FIELD_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
LAST_DAY = 32  # stands for "L" (the last day of the month) among the days of the month
# With this many fixed times a day or fewer, they are listed ("At 08:00 and 20:00").
MAX_LISTED_TIMES = 6


class _Unsupported(Exception):
    """A cron feature the describer does not put into words (W, #): the expression
    itself is shown."""


def describe(expression: str) -> str:
    """The cron expression in plain language, in the active language ("At 09:00, Monday
    through Friday"); an expression that does not parse is returned as it is."""
    # A schedule list describes the same few expressions on every view: remembered per
    # expression and language.
    return _describe(expression, get_language())


@lru_cache(maxsize=1024)
def _describe(expression: str, language: str | None) -> str:
    try:
        normalized = parse_cron(expression)
    except ScheduleError:
        return expression
    if "#" in normalized or "W" in normalized.upper():
        return normalized
    try:
        expanded, nth = croniter.expand(normalized)
        if nth:
            raise _Unsupported
        minutes, hours, days, months, weekdays = (
            _values(field, bounds) for field, bounds in zip(expanded, FIELD_RANGES, strict=True)
        )
    except (CroniterError, ValueError, _Unsupported):
        return normalized
    date = _date_phrase(days, months, weekdays)
    if minutes and hours and len(minutes) * len(hours) <= MAX_LISTED_TIMES:
        times = _join([f"{h:02d}:{m:02d}" for h in hours for m in minutes])
        if date:
            return gettext("At %(times)s, %(date)s") % {"times": times, "date": date}
        return gettext("At %(times)s") % {"times": times}
    time = _time_phrase(minutes, hours)
    return gettext("%(time)s, %(date)s") % {"time": time, "date": date} if date else time


def describe_interval(every: int, period: str) -> str:
    """'Every 10 seconds', 'Every hour', in the active language."""
    if every == 1:
        return {
            "seconds": gettext("Every second"),
            "minutes": gettext("Every minute"),
            "hours": gettext("Every hour"),
            "days": gettext("Every day"),
        }[period]
    text = {
        "seconds": ngettext("Every %(n)d second", "Every %(n)d seconds", every),
        "minutes": ngettext("Every %(n)d minute", "Every %(n)d minutes", every),
        "hours": ngettext("Every %(n)d hour", "Every %(n)d hours", every),
        "days": ngettext("Every %(n)d day", "Every %(n)d days", every),
    }[period]
    return text % {"n": every}


def _values(field: Sequence, bounds: tuple[int, int]) -> tuple[int, ...] | None:
    """A field's values, sorted; None for "any" (``*`` or every value written out)."""
    if list(field) == ["*"]:
        return None
    values = set()
    for value in field:
        if value == "l" and bounds == FIELD_RANGES[2]:
            values.add(LAST_DAY)
        elif isinstance(value, int):
            values.add(value)
        else:
            raise _Unsupported
    low, high = bounds
    return None if values == set(range(low, high + 1)) else tuple(sorted(values))


def _step(values: tuple[int, ...] | None, size: int) -> int | None:
    """n when the values are exactly 0, n, 2n, ... (what ``*/n`` gives), n > 1."""
    if not values or len(values) < 2 or values[0] != 0:
        return None
    n = values[1]
    return n if values == tuple(range(0, size, n)) else None


def _join(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c' (in the active language's words)."""
    if len(items) == 1:
        return items[0]
    head = items[0]
    for item in items[1:-1]:
        head = gettext("%(first)s, %(next)s") % {"first": head, "next": item}
    return gettext("%(items)s and %(last)s") % {"items": head, "last": items[-1]}


def _runs(values: Sequence[int], name: Callable[[int], str]) -> list[str]:
    """Values as list items; three or more in a row read as one range ('a through d')."""
    items: list[str] = []
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and values[end + 1] == values[end] + 1:
            end += 1
        if end - start >= 2:
            items.append(
                gettext("%(first)s through %(last)s")
                % {"first": name(values[start]), "last": name(values[end])}
            )
        else:
            items.extend(name(v) for v in values[start : end + 1])
        start = end + 1
    return items


def _time_phrase(minutes: tuple[int, ...] | None, hours: tuple[int, ...] | None) -> str:
    hour_step = _step(hours, 24)
    if minutes == (0,) and hours is None:
        return gettext("Every hour")
    if minutes == (0,) and hour_step:
        return ngettext("Every %(n)d hour", "Every %(n)d hours", hour_step) % {"n": hour_step}
    minute_step = _step(minutes, 60)
    if minutes is None:
        minute_text = gettext("Every minute")
    elif minute_step:
        minute_text = ngettext("Every %(n)d minute", "Every %(n)d minutes", minute_step) % {
            "n": minute_step
        }
    else:
        minute_text = ngettext("At minute %(minutes)s", "At minutes %(minutes)s", len(minutes)) % {
            "minutes": _join(_runs(minutes, str))
        }
    if hours is None:
        if minutes is None or minute_step:
            return minute_text
        hour_text = gettext("every hour")
    elif hour_step:
        hour_text = ngettext("every %(n)d hour", "every %(n)d hours", hour_step) % {"n": hour_step}
    elif hours == tuple(range(hours[0], hours[-1] + 1)):
        hour_text = gettext("between %(start)s and %(end)s") % {
            "start": f"{hours[0]:02d}:00",
            "end": f"{hours[-1]:02d}:59",
        }
    else:
        hour_text = ngettext("during hour %(hours)s", "during hours %(hours)s", len(hours)) % {
            "hours": _join(_runs(hours, str))
        }
    return gettext("%(minutes)s, %(hours)s") % {"minutes": minute_text, "hours": hour_text}


def _day_name(day: int) -> str:
    return gettext("the last") if day == LAST_DAY else str(day)


def _weekday_name(monday_first: int) -> str:
    return str(WEEKDAYS[monday_first])


def _date_phrase(
    days: tuple[int, ...] | None,
    months: tuple[int, ...] | None,
    weekdays: tuple[int, ...] | None,
) -> str:
    day_text = week_text = ""
    if days == (LAST_DAY,):
        day_text = gettext("on the last day of the month")
    elif days is not None:
        day_text = ngettext(
            "on day %(days)s of the month", "on days %(days)s of the month", len(days)
        ) % {"days": _join(_runs(days, _day_name))}
    if weekdays is not None:
        # Cron counts from Sunday (0); the week reads from Monday here, so 6,0 is
        # "Saturday and Sunday" and 1-5 "Monday through Friday".
        items = _runs(sorted((d + 6) % 7 for d in weekdays), _weekday_name)
        week_days = _join(items)
        if day_text:
            # Cron fires when either the day of the month or the day of the week matches.
            day_text = gettext("%(days_of_month)s or on %(days_of_week)s") % {
                "days_of_month": day_text,
                "days_of_week": week_days,
            }
        elif len(items) == 1 and len(weekdays) > 1:
            week_text = week_days  # one range: "Monday through Friday"
        else:
            week_text = gettext("only on %(days)s") % {"days": week_days}
    day_text = day_text or week_text
    if months is None:
        return day_text
    month_text = gettext("only in %(months)s") % {
        "months": _join(_runs(months, lambda m: str(MONTHS[m])))
    }
    if not day_text:
        return month_text
    return gettext("%(days)s, %(months)s") % {"days": day_text, "months": month_text}
