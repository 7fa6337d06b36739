"""Reads of queues and jobs."""

from __future__ import annotations

from django.db.models import Count, QuerySet

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
