"""When a schedule is due: occurrences of its crontab, interval or clocked schedule."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from django.conf import settings

from scheduling.cron import get_zone, next_after
from scheduling.models import ScheduledJob

ONE_MICROSECOND = timedelta(microseconds=1)


def cron_expression(schedule: ScheduledJob) -> str:
    c = schedule.crontab
    return f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"


def zone_name(schedule: ScheduledJob) -> str:
    if schedule.crontab_id and schedule.crontab.timezone:
        return str(schedule.crontab.timezone)
    return settings.TIME_ZONE


def period(schedule: ScheduledJob) -> timedelta:
    interval = schedule.interval
    return timedelta(**{interval.period: interval.every})


def next_occurrence(schedule: ScheduledJob, after: datetime) -> datetime | None:
    """The schedule's first due instant strictly after ``after``, within its start/end
    dates; None when it will never be due again."""
    if schedule.start_at and after < schedule.start_at:
        after = schedule.start_at - ONE_MICROSECOND
    if schedule.crontab_id:
        due = next_after(cron_expression(schedule), get_zone(zone_name(schedule)), after)
    elif schedule.interval_id:
        step = period(schedule)
        anchor = schedule.start_at or schedule.created_at or after
        due = anchor if after < anchor else anchor + step * ((after - anchor) // step + 1)
    elif schedule.clocked_id:
        clocked = schedule.clocked.clocked_time
        due = clocked if clocked > after else None
    else:
        due = None
    if due is not None and schedule.end_at and due > schedule.end_at:
        return None
    return due


def timing_fingerprint(schedule: ScheduledJob) -> str:
    """A digest of every field ``next_occurrence`` reads. Stored with next_run_at by the
    services; a row whose digest no longer matches was edited behind their back."""
    parts: list[str] = []
    if schedule.crontab_id:
        c = schedule.crontab
        parts += ["cron", c.minute, c.hour, c.day_of_month, c.month_of_year, c.day_of_week]
        parts.append(str(c.timezone or ""))
    if schedule.interval_id:
        parts += ["every", str(schedule.interval.every), schedule.interval.period]
    if schedule.clocked_id:
        parts += ["at", _instant(schedule.clocked.clocked_time)]
    parts += [_instant(schedule.start_at), _instant(schedule.end_at)]
    parts.append(_instant(schedule.created_at))  # the interval grid's anchor
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()


def _instant(value: datetime | None) -> str:
    # In UTC: an aware datetime given in another zone and the same one read back from the
    # database must give one digest.
    return value.astimezone(UTC).isoformat() if value is not None else ""


def upcoming(schedule: ScheduledJob, *, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` due instants after ``after``."""
    result: list[datetime] = []
    cursor = after
    while len(result) < count:
        due = next_occurrence(schedule, cursor)
        if due is None:
            break
        result.append(due)
        cursor = due
    return result
