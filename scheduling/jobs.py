"""Handlers of the system schedules."""

from datetime import timedelta

from django.conf import settings
from django.core.mail import mail_admins
from django.db.models import Avg, Count, F, Q
from django.utils import timezone
from django.utils.translation import gettext

from queues import job
from queues.models import Job, JobStatus, Queue, RateLimitWindow, Worker
from queues.services import apply_retention, clean_queue


# The cleanups and reports read nothing from their payload (their schedules send {}), so
# only cleanup-completed-jobs, which reads grace_ms, has a schema.
@job("system.cleanup-expired-data", queue="log-processing", attempts=3, example={})
def cleanup_expired_data(ctx, payload):
    removed = apply_retention()
    now = timezone.now()
    ctx.progress(60)
    windows, _ = RateLimitWindow.objects.filter(window_start__lt=now - timedelta(days=1)).delete()
    workers, _ = Worker.objects.filter(last_heartbeat__lt=now - timedelta(days=1)).delete()
    return {"jobs": removed, "rate_limit_windows": windows, "workers": workers}


@job(
    "system.cleanup-completed-jobs",
    queue="log-processing",
    attempts=3,
    example={"grace_ms": 86_400_000},
    schema={
        "type": "object",
        "properties": {"grace_ms": {"type": "number", "minimum": 0}},
    },
)
def cleanup_completed_jobs(ctx, payload):
    grace_ms = int(payload.get("grace_ms", 24 * 3600 * 1000))
    cleaned = {}
    for name in Queue.objects.values_list("name", flat=True):
        count = clean_queue(name, status="completed", grace_ms=grace_ms, limit=100_000)
        if count:
            cleaned[name] = count
    return {"cleaned": cleaned}


def _report(hours: int) -> dict:
    since = timezone.now() - timedelta(hours=hours)
    rows = (
        Job.objects.filter(finished_at__gte=since)
        .values("queue__name")
        .annotate(
            completed=Count("id", filter=Q(status=JobStatus.COMPLETED)),
            failed=Count("id", filter=Q(status=JobStatus.FAILED)),
            cancelled=Count("id", filter=Q(status=JobStatus.CANCELLED)),
            avg_ms=Avg(F("finished_at") - F("started_at")),
        )
        .order_by("queue__name")
    )
    queues = {}
    for row in rows:
        avg = row["avg_ms"]
        queues[row["queue__name"]] = {
            "completed": row["completed"],
            "failed": row["failed"],
            "cancelled": row["cancelled"],
            "avg_duration_ms": round(avg.total_seconds() * 1000, 1) if avg else None,
        }
    return {"since": since.isoformat(), "hours": hours, "queues": queues}


def _email_report(ctx, report: dict, title: str) -> dict:
    """Send the report to settings.ADMINS (when there are any) as a plain-text table."""
    # The table's column titles (not inside the f-string, so makemessages finds them).
    queue, completed, failed = gettext("queue"), gettext("completed"), gettext("failed")
    cancelled, avg_ms = gettext("cancelled"), gettext("avg ms")
    lines = [
        gettext("%(title)s since %(since)s") % {"title": title, "since": report["since"]},
        "",
        f"{queue:<20} {completed:>10} {failed:>8} {cancelled:>10} {avg_ms:>9}",
    ]
    for name, row in report["queues"].items():
        avg = row["avg_duration_ms"]
        lines.append(
            f"{name:<20} {row['completed']:>10} {row['failed']:>8} "
            f"{row['cancelled']:>10} {avg if avg is not None else '-':>9}"
        )
    if not report["queues"]:
        lines.append(gettext("(no jobs finished)"))
    if settings.ADMINS:
        mail_admins(title, "\n".join(lines), fail_silently=False)
        ctx.log(f"emailed to {len(settings.ADMINS)} admin(s)")
    report["emailed"] = bool(settings.ADMINS)
    return report


@job("system.hourly-report", queue="report-generation", example={})
def hourly_report(ctx, payload):
    return _email_report(ctx, _report(1), gettext("hourly report"))


@job("system.daily-report", queue="report-generation", example={})
def daily_report(ctx, payload):
    return _email_report(ctx, _report(24), gettext("daily report"))
