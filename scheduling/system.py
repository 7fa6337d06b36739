"""System schedules declared in code (the nightly cleanups, the hourly and daily job
reports) and synced idempotently: ``manage.py sync_schedules``, which ``runscheduler``
also runs when it starts."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from queues.models import Queue
from scheduling.models import ScheduledJob, ScheduleStatus
from scheduling.services import create_schedule, crontab_for, plan


@dataclass(frozen=True)
class SystemSchedule:
    name: str
    handler: str
    cron: str
    description: str
    queue: str = "log-processing"


SYSTEM_SCHEDULES = (
    SystemSchedule(
        "system.cleanup-expired-data",
        "system.cleanup-expired-data",
        "0 2 * * *",
        "Every day at 02:00, delete expired data (finished jobs past retention, "
        "stale rate-limit windows and worker rows).",
    ),
    SystemSchedule(
        "system.cleanup-completed-jobs",
        "system.cleanup-completed-jobs",
        "0 2 * * *",
        "Every day at 02:00, clean completed jobs older than 24 hours.",
    ),
    SystemSchedule(
        "system.hourly-report",
        "system.hourly-report",
        "0 * * * *",
        "Every hour, a report of the last hour's jobs per queue.",
        queue="report-generation",
    ),
    SystemSchedule(
        "system.daily-report",
        "system.daily-report",
        "0 9 * * *",
        "Every day at 09:00, a report of the last day's jobs per queue.",
        queue="report-generation",
    ),
)


def sync_system_schedules() -> dict[str, int]:
    """Create missing system schedules and bring changed ones in line with the code; a
    system schedule no longer declared is disabled. Operators' status choices are kept."""
    now = timezone.now()
    created = updated = retired = 0
    declared = {s.name for s in SYSTEM_SCHEDULES}
    with transaction.atomic():
        for spec in SYSTEM_SCHEDULES:
            existing = ScheduledJob.objects.select_for_update().filter(name=spec.name).first()
            if existing is None:
                create_schedule(
                    name=spec.name,
                    handler=spec.handler,
                    cron=spec.cron,
                    timezone_name=settings.TIME_ZONE,
                    queue=spec.queue,
                    description=spec.description,
                    is_system=True,
                    domain="system",
                    now=now,
                )
                created += 1
                continue
            crontab = crontab_for(spec.cron, settings.TIME_ZONE)
            changed = (
                existing.handler != spec.handler
                or existing.crontab_id != crontab.pk
                or existing.description != spec.description
                or existing.queue is None
                or existing.queue.name != spec.queue
            )
            if changed:
                existing.handler = spec.handler
                existing.crontab, existing.interval, existing.clocked = crontab, None, None
                existing.description = spec.description
                existing.queue = Queue.objects.get(name=spec.queue)
                existing.is_system = True
                if existing.status != ScheduleStatus.DISABLED:
                    plan(existing, now)
                existing.save()
                updated += 1
        retired = (
            ScheduledJob.objects.filter(is_system=True)
            .exclude(name__in=declared)
            .exclude(status=ScheduleStatus.DISABLED)
            .update(status=ScheduleStatus.DISABLED, next_run_at=None)
        )
    return {"created": created, "updated": updated, "retired": retired}
