"""Reads of schedules."""

from __future__ import annotations

from datetime import datetime

from django.db.models import OuterRef, QuerySet, Subquery
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext

from scheduling.calendar import cron_expression, period, upcoming, zone_name
from scheduling.cron import describe
from scheduling.models import ScheduledJob, ScheduleRun


def schedules_with_last_run() -> QuerySet[ScheduledJob]:
    """Schedules annotated with their last run's job status (no query per row)."""
    last = ScheduleRun.objects.filter(schedule=OuterRef("pk")).order_by("-due_at")
    return ScheduledJob.objects.select_related("crontab", "interval", "clocked", "queue").annotate(
        last_run_status=Subquery(last.values("job__status")[:1])
    )


def describe_schedule(schedule: ScheduledJob) -> str:
    if schedule.crontab_id:
        return gettext("%(cron)s (%(zone)s)") % {
            "cron": describe(cron_expression(schedule)),
            "zone": zone_name(schedule),
        }
    if schedule.interval_id:
        return gettext("Every %(period)s") % {"period": period(schedule)}
    if schedule.clocked_id:
        return gettext("Once at %(time)s") % {
            "time": f"{schedule.clocked.clocked_time:%Y-%m-%d %H:%M:%S %Z}"
        }
    return ""


def next_runs(schedule: ScheduledJob, count: int = 5, *, after: datetime | None = None) -> list:
    if schedule.status != 1:
        return []
    return upcoming(schedule, after=after or timezone.now(), count=count)


def run_history(schedule: ScheduledJob) -> QuerySet[ScheduleRun]:
    return schedule.runs.select_related("job").order_by("-due_at")


def schedule_of_job(job) -> str | None:
    """The job page's "created by schedule" row: a link to the schedule that enqueued it."""
    run = ScheduleRun.objects.filter(job_id=job.pk).select_related("schedule").first()
    if run is None:
        return None
    url = reverse("admin:scheduling_scheduledjob_change", args=[run.schedule_id])
    return format_html(
        gettext('<a href="{url}">{name}</a> (due {due})'),
        url=url,
        name=run.schedule.name,
        due=run.due_at,
    )


def schedules_due_panel(now: datetime) -> dict:
    """The dashboard's "schedules due next" section."""
    due = (
        ScheduledJob.objects.filter(status=1, next_run_at__isnull=False)
        .select_related("crontab", "interval", "clocked")
        .order_by("next_run_at")[:10]
    )
    return {
        "title": gettext("Schedules due next"),
        "columns": [gettext("schedule"), gettext("when"), gettext("next run"), gettext("in")],
        "rows": [
            [
                s.name,
                describe_schedule(s),
                s.next_run_at.isoformat(timespec="seconds"),
                gettext("%(seconds)s s")
                % {"seconds": f"{max((s.next_run_at - now).total_seconds(), 0):.0f}"},
            ]
            for s in due
        ],
    }
