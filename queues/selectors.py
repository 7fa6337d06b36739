"""Reads of queues and jobs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet

from queues.models import Job, JobStatus, Queue


def queue_counts() -> list[dict]:
    """Every queue with its paused flag and job counts by status (one grouped query)."""
    counts: dict[int, dict[str, int]] = {}
    rows = Job.objects.order_by().values_list("queue_id", "status").annotate(n=Count("id"))
    for queue_id, status, n in rows:
        counts.setdefault(queue_id, {})[status] = n
    result = []
    for queue in Queue.objects.order_by("name"):
        by_status = {
            status.value: counts.get(queue.pk, {}).get(status.value, 0) for status in JobStatus
        }
        result.append(
            {
                "name": queue.name,
                "paused": queue.paused,
                "counts": by_status,
                "total": sum(by_status.values()),
            }
        )
    return result


def dead_letters(*, queue: str | None = None, name: str | None = None) -> QuerySet[Job]:
    """Jobs that failed for good (attempts exhausted, permanent error, too many stalls),
    newest first, with their last error in ``error``."""
    jobs = Job.objects.filter(status=JobStatus.FAILED).select_related("queue")
    if queue:
        jobs = jobs.filter(queue__name=queue)
    if name:
        jobs = jobs.filter(name=name)
    return jobs.order_by("-finished_at")


def job_dependencies(job: Job) -> QuerySet[Job]:
    """The jobs ``job`` waits for."""
    return Job.objects.filter(dependant_links__job=job).order_by("created_at")


def job_dependants(job: Job) -> QuerySet[Job]:
    """The jobs waiting for ``job``."""
    return Job.objects.filter(dependency_links__parent=job).order_by("created_at")


def payload_filter(term: str) -> Q | None:
    """``key:value`` (``a.b:value`` for nested keys) as JSON containment, which the GIN
    index ``job_payload_gin`` serves. The value matches as JSON (42, true) or as text."""
    key, sep, raw = term.partition(":")
    if not sep or not key or not raw:
        return None
    path = key.split(".")

    def nest(value):
        for part in reversed(path):
            value = {part: value}
        return value

    condition = Q(payload__contains=nest(raw))
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw
    if parsed != raw:
        condition |= Q(payload__contains=nest(parsed))
    return condition


def filter_jobs(
    jobs: QuerySet[Job],
    *,
    queue: str | None = None,
    status: str | None = None,
    name: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    q: str | None = None,
) -> QuerySet[Job]:
    """The filters the job list offers (admin and API): each one an indexed predicate."""
    if queue:
        jobs = jobs.filter(queue__name=queue)
    if status:
        jobs = jobs.filter(status=status)
    if name:
        jobs = jobs.filter(name=name)
    if created_after:
        jobs = jobs.filter(created_at__gte=created_after)
    if created_before:
        jobs = jobs.filter(created_at__lt=created_before)
    if q:
        condition = payload_filter(q)
        jobs = jobs.filter(condition) if condition is not None else jobs.filter(name=q)
    return jobs


def stats(*, window_seconds: int, now: datetime | None = None) -> dict:
    """Seed 002's metrics over a window, overall and per queue, from the minute buckets:
    total, completed, failed, success rate, average processing time."""
    from django.db.models import Sum
    from django.utils import timezone

    from queues.models import QueueMinute

    now = now or timezone.now()
    since = now - timedelta(seconds=window_seconds)
    rows = (
        QueueMinute.objects.filter(minute__gte=since.replace(second=0, microsecond=0))
        .values("queue__name")
        .annotate(
            completed=Sum("completed"),
            failed=Sum("failed"),
            retried=Sum("retried"),
            ms=Sum("duration_ms_sum"),
        )
        .order_by("queue__name")
    )

    def summary(completed: int, failed: int, retried: int, ms: int) -> dict:
        finished = completed + failed
        tries = finished + retried
        return {
            "total": finished,
            "completed": completed,
            "failed": failed,
            "retried": retried,
            "success_rate": round(completed / finished, 4) if finished else None,
            "average_processing_ms": round(ms / tries, 1) if tries else None,
        }

    per_queue = {
        r["queue__name"]: summary(r["completed"], r["failed"], r["retried"], r["ms"]) for r in rows
    }
    totals = [sum(r[k] for r in rows) for k in ("completed", "failed", "retried", "ms")]
    return {
        "window_seconds": window_seconds,
        "since": since.isoformat(),
        **summary(*totals),
        "queues": per_queue,
    }
