"""Reads of queues, jobs and workers: every read that more than one interface shares."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, OuterRef, QuerySet, Sum
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from django.utils.translation import gettext as _

from queues.exceptions import JobNotFound, UnknownQueue
from queues.models import Job, JobStatus, Queue, QueueMinute, Worker

# A worker route that serves every queue (``runworker`` without ``--queues``).
ALL_QUEUES = "*"

# Queue rows by name, briefly cached: enqueue needs the id and defaults, not a query each time.
_QUEUE_CACHE_SECONDS = 2.0
_queue_cache: dict[str, tuple[Queue, float]] = {}


def forget_queue(name: str) -> None:
    """Drop this process's cached row of queue ``name`` (after an ``update()``, which sends
    no signal); other processes see the change within ``_QUEUE_CACHE_SECONDS``."""
    _queue_cache.pop(name, None)


def _forget_queue(sender, instance: Queue, **kwargs) -> None:
    forget_queue(instance.name)


post_save.connect(_forget_queue, sender=Queue, dispatch_uid="queues.forget_queue.save")
post_delete.connect(_forget_queue, sender=Queue, dispatch_uid="queues.forget_queue.delete")


def get_queue(name: str) -> Queue:
    """The queue named ``name`` (cached for a moment); ``UnknownQueue`` lists the others."""
    cached = _queue_cache.get(name)
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]
    queue = Queue.objects.filter(name=name).first() if isinstance(name, str) else None
    if queue is None:
        known = ", ".join(Queue.objects.order_by("name").values_list("name", flat=True))
        raise UnknownQueue(
            _("no queue is named %(name)s (queues: %(known)s)")
            % {"name": repr(name), "known": known or _("none")}
        )
    _queue_cache[name] = (queue, time.monotonic() + _QUEUE_CACHE_SECONDS)
    return queue


def get_job(job_id: UUID | str) -> Job:
    """The job with its queue; ``JobNotFound`` for an unknown or malformed id."""
    try:
        job = Job.objects.select_related("queue").filter(pk=job_id).first()
    except (ValueError, TypeError, ValidationError):  # a malformed UUID string
        job = None
    if job is None:
        raise JobNotFound(_("no job has id %(id)s") % {"id": repr(job_id)})
    return job


# --- workers ------------------------------------------------------------------------------


def worker_cutoff(now: datetime | None = None) -> datetime:
    """A worker whose last heartbeat is older than this is gone (``WORKER_TTL``)."""
    return (now or timezone.now()) - timedelta(seconds=settings.JOBPLATFORM["WORKER_TTL"])


def is_live(worker: Worker, now: datetime | None = None) -> bool:
    return worker.last_heartbeat >= worker_cutoff(now)


def live_workers(now: datetime | None = None) -> QuerySet[Worker]:
    """Workers that sent a heartbeat within ``WORKER_TTL``."""
    return Worker.objects.filter(last_heartbeat__gte=worker_cutoff(now))


def serves(worker_queues: Iterable[str], queue_name: str) -> bool:
    """Whether a worker advertising ``worker_queues`` runs jobs of ``queue_name``."""
    worker_queues = list(worker_queues)
    return ALL_QUEUES in worker_queues or queue_name in worker_queues


def runnable_queue_names() -> list[str]:
    """Unpaused queues with at least one waiting job (one query)."""
    waiting = Job.objects.filter(queue=OuterRef("pk"), status=JobStatus.WAITING)
    return list(
        Queue.objects.filter(paused=False)
        .filter(Exists(waiting))
        .order_by("name")
        .values_list("name", flat=True)
    )


def queues_without_worker(
    queue_names: Iterable[str], live_worker_queues: Iterable[Iterable[str]]
) -> list[str]:
    """Of ``queue_names``, those that no live worker (given by its queue list) serves."""
    served = [list(q) for q in live_worker_queues]
    return [name for name in queue_names if not any(serves(q, name) for q in served)]


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


def bucket_rates(*, completed: int, failed: int, retried: int, ms: int) -> dict:
    """Rates over summed minute buckets. A try is a finished job or a retried failure:
    the failure rate is failed-or-retried tries over all tries, the average duration is
    over all tries, and the success rate is over finished jobs."""
    finished = completed + failed
    tries = finished + retried
    return {
        "finished": finished,
        "tries": tries,
        "success_rate": completed / finished if finished else None,
        "failure_rate": (failed + retried) / tries if tries else 0.0,
        "average_ms": ms / tries if tries else None,
    }


def stats(*, window_seconds: int, now: datetime | None = None) -> dict:
    """Throughput over a window, overall and per queue, from the minute buckets: total,
    completed, failed, success rate, average processing time."""
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
        rates = bucket_rates(completed=completed, failed=failed, retried=retried, ms=ms)
        success, average = rates["success_rate"], rates["average_ms"]
        return {
            "total": rates["finished"],
            "completed": completed,
            "failed": failed,
            "retried": retried,
            "success_rate": round(success, 4) if success is not None else None,
            "average_processing_ms": round(average, 1) if average is not None else None,
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
