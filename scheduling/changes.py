"""Services that change or delete an existing schedule (the API's PATCH and DELETE),
composed from the creation services in scheduling/services.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from queues.audit import Actor
from scheduling import services
from scheduling.calendar import cron_expression, zone_name
from scheduling.models import ScheduledJob

KIND_FIELDS = ("cron", "timezone_name", "every", "period", "run_at")
# Changing any of these moves the next run.
TIMING_FIELDS = {*KIND_FIELDS, "crontab", "interval", "clocked", "start_at", "end_at"}


def update_schedule(
    *,
    schedule: ScheduledJob,
    changes: dict[str, Any],
    by: Actor,
    now: datetime | None = None,
) -> ScheduledJob:
    """Apply ``changes`` (model fields, ``status`` and the schedule itself: ``cron`` /
    ``timezone_name``, ``every`` / ``period`` or ``run_at``, or the admin's ``crontab`` /
    ``interval`` / ``clocked`` rows). Everything is validated
    before the transaction commits: a refused change raises ``ScheduleError`` and leaves
    the schedule as it was. A status change is audited as made ``by``."""
    now = now or timezone.now()
    changes = dict(changes)
    status = changes.pop("status", None)
    kind = {k: changes.pop(k) for k in KIND_FIELDS if k in changes}
    with transaction.atomic():
        schedule = (
            ScheduledJob.objects.select_for_update(of=("self",))
            .select_related("crontab", "interval", "clocked", "queue")
            .get(pk=schedule.pk)
        )
        for field, value in changes.items():
            setattr(schedule, field, value)
        if kind:
            _set_kind(schedule, kind)
        # The same checks create_schedule runs (handler options, misfire, start/end).
        services.validate_schedule(schedule, queue=None)
        # Only what changed: the counters fire_due keeps (run_count, last_run_at) stay
        # as the scheduler wrote them.
        written = set(changes) | ({"crontab", "interval", "clocked"} if kind else set())
        schedule.save(update_fields=[*sorted(written), "updated_at"])
        if status is not None and status != schedule.status:
            schedule = services.set_status(schedule, status, by=by, now=now)
        if TIMING_FIELDS & (set(kind) | set(changes)):
            services.reschedule(schedule, now=now)
    return schedule


def _set_kind(schedule: ScheduledJob, kind: dict[str, Any]) -> None:
    crontab = interval = clocked = None
    if "cron" in kind or "timezone_name" in kind:
        was_cron = schedule.crontab_id is not None
        cron = kind.get("cron") or cron_expression(schedule)
        zone = kind.get("timezone_name") or (zone_name(schedule) if was_cron else None)
        crontab = services.crontab_for(cron, zone)
    elif "every" in kind or "period" in kind:
        current = schedule.interval
        every = kind.get("every", current.every if current else None)
        period = kind.get("period") or (current.period if current else "seconds")
        interval = services.interval_for(every, period)
    else:
        clocked = services.clocked_for(kind["run_at"])
    schedule.crontab, schedule.interval, schedule.clocked = crontab, interval, clocked


def delete_schedule(*, schedule: ScheduledJob) -> None:
    """Delete the schedule and its run history (the jobs it enqueued stay)."""
    schedule.delete()
