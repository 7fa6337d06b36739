"""Reads of schedules."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.translation import gettext

from scheduling.calendar import cron_expression, period, upcoming, zone_name
from scheduling.cron import describe, describe_interval, next_after
from scheduling.models import ScheduledJob, ScheduleRun

# The changelist's sparkline: this many of each schedule's latest runs.
RECENT_RUNS = 20
PREVIEW_RUNS = 5


def schedules_with_last_run() -> QuerySet[ScheduledJob]:
    """Schedules annotated with their last run's job status (no query per row)."""
    last = ScheduleRun.objects.filter(schedule=OuterRef("pk")).order_by("-due_at")
    return ScheduledJob.objects.select_related("crontab", "interval", "clocked", "queue").annotate(
        last_run_status=Subquery(last.values("job__status")[:1])
    )


# Each schedule's latest runs, found by its (schedule, due_at) index: runs are history,
# kept for good, and a window function would number every run of the page's schedules.
LATEST_RUNS_SQL = """
SELECT r.id FROM unnest(%s::bigint[]) AS s(id)
CROSS JOIN LATERAL (
    SELECT id FROM scheduling_schedulerun WHERE schedule_id = s.id ORDER BY due_at DESC LIMIT %s
) r
"""


def schedule_changelist() -> QuerySet[ScheduledJob]:
    """The admin's schedule list: timing rows joined (the page's latest runs come from
    ``attach_recent_runs``, once the page is known)."""
    return ScheduledJob.objects.select_related("crontab", "interval", "clocked", "queue")


def attach_recent_runs(schedules: list[ScheduledJob]) -> None:
    """Set ``recent_runs`` on each schedule: its latest ``RECENT_RUNS`` runs, newest
    first, as plain rows (due_at, job_id, job_status, error) for the whole page in one
    query; model objects for a page's 1,000 runs cost more than the query."""
    ids = [s.pk for s in schedules]
    runs = ScheduleRun.objects.filter(schedule_id__in=ids)
    if connection.vendor == "postgresql":
        runs = runs.filter(pk__in=RawSQL(LATEST_RUNS_SQL, [ids, RECENT_RUNS]))
    by_schedule: dict[int, list[SimpleNamespace]] = {pk: [] for pk in ids}
    rows = runs.order_by("schedule_id", "-due_at").values_list(
        "schedule_id", "due_at", "job_id", "job__status", "error"
    )
    for schedule_id, due_at, job_id, job_status, error in rows:
        kept = by_schedule[schedule_id]
        if len(kept) < RECENT_RUNS:
            kept.append(
                SimpleNamespace(due_at=due_at, job_id=job_id, job_status=job_status, error=error)
            )
    for schedule in schedules:
        schedule.recent_runs = by_schedule[schedule.pk]


def run_outcome(run: ScheduleRun) -> str:
    """What became of a run: its job's status (annotated as ``job_status`` by
    ``schedule_changelist``), "error" when it could not be enqueued, "gone" when its job
    was deleted since."""
    if run.job_id:
        return run.job_status if hasattr(run, "job_status") else run.job.status
    return "error" if run.error else "gone"


def timing_text(schedule: ScheduledJob) -> str:
    """The schedule's timing in plain language, without its zone (shown beside it)."""
    if schedule.crontab_id:
        return describe(cron_expression(schedule))
    if schedule.interval_id:
        return describe_interval(schedule.interval.every, schedule.interval.period)
    if schedule.clocked_id:
        return one_off_text(schedule.clocked.clocked_time, display_zone(schedule))
    return ""


def display_zone(schedule: ScheduledJob) -> str | None:
    """The zone a schedule's times read in: its crontab's, or for a one-off the
    project's (a clocked row keeps the instant, not the zone it was typed in); None for
    an interval, which has no wall clock."""
    if schedule.crontab_id:
        return zone_name(schedule)
    if schedule.clocked_id:
        return settings.TIME_ZONE or "UTC"
    return None


def one_off_text(at: datetime, zone: str) -> str:
    return gettext("Once, on %(time)s") % {"time": local_text(at, ZoneInfo(zone))}


def local_text(at: datetime, zone: ZoneInfo) -> str:
    """An instant on ``zone``'s wall clock, weekday first, in the active language."""
    return formats.date_format(at.astimezone(zone), "D Y-m-d H:i T")


def preview(
    *,
    kind: str,
    zone: ZoneInfo,
    viewer_zone: ZoneInfo,
    now: datetime,
    cron: str | None = None,
    every: int | None = None,
    period: str | None = None,
    run_at: datetime | None = None,
    count: int = PREVIEW_RUNS,
) -> dict:
    """What the schedule editor shows beside its fields: the timing in words and its next
    ``count`` runs on the schedule's wall clock and on the viewer's. The arguments are
    validated already (the admin's timing form); an interval counts from ``now``, as a
    new schedule's grid does."""
    if kind == "cron":
        description = describe(cron)
        runs, cursor = [], now
        for _ in range(count):
            cursor = next_after(cron, zone, cursor)
            runs.append(cursor)
    elif kind == "interval":
        description = describe_interval(every, period)
        step = timedelta(**{period: every})
        runs = [now + step * i for i in range(1, count + 1)]
    else:
        description = one_off_text(run_at, str(zone))
        runs = [run_at] if run_at > now else []
    return {
        "kind": kind,
        "description": description,
        "timezone": str(zone),
        "viewer_timezone": str(viewer_zone),
        "next_runs": [
            {
                "utc": at.astimezone(ZoneInfo("UTC")).isoformat(),
                "local": at.astimezone(zone).isoformat(),
                "viewer": at.astimezone(viewer_zone).isoformat(),
                "local_text": local_text(at, zone),
                "viewer_text": local_text(at, viewer_zone),
            }
            for at in runs
        ],
    }


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
        # The next run as a time: the dashboard shows it "in 3 hours", exact in a tooltip.
        "columns": [gettext("schedule"), gettext("when"), gettext("next run")],
        "rows": [
            [s.name, describe_schedule(s), s.next_run_at.isoformat(timespec="seconds")] for s in due
        ],
    }
