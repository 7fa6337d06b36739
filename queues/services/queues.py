"""Queue operations: change settings, pause, resume, empty, clean, and retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from queues import audit, doorbell
from queues.audit import Actor
from queues.exceptions import InvalidJobState, QueueNotFound
from queues.models import FINAL_STATUSES, Job, JobStatus, Queue
from queues.services.jobs import UNSTARTED, _cancel, delete_ids

CLEANABLE = (
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
    JobStatus.WAITING,
    JobStatus.DELAYED,
)
RETENTION_BATCH = 10_000


def _queue(name: str) -> Queue:
    queue = Queue.objects.filter(name=name).first()
    if queue is None:
        raise QueueNotFound(f"no queue is named {name!r}")
    return queue


def update_queue(name: str, *, changes: dict[str, Any], by: Actor = None) -> Queue:
    """Change a queue's settings (fields validated by the caller's form). Workers see the
    new limits at their next claim."""
    queue = _queue(name)
    with transaction.atomic():
        for field, value in changes.items():
            setattr(queue, field, value)
        queue.save()
        audit.record(
            by=by, action="update_queue", target=queue.name, count=1, fields=sorted(changes)
        )
    return queue


def pause_queue(name: str, *, by: Actor = None) -> Queue:
    """Stop workers from starting jobs of this queue (active jobs finish)."""
    queue = _queue(name)
    with transaction.atomic():
        Queue.objects.filter(pk=queue.pk).update(paused=True, updated_at=timezone.now())
        audit.record(by=by, action="pause_queues", target=queue.name, count=1)
    queue.refresh_from_db()
    return queue


def resume_queue(name: str, *, by: Actor = None) -> Queue:
    """Let workers take jobs of this queue again, and wake them."""
    queue = _queue(name)
    with transaction.atomic():
        Queue.objects.filter(pk=queue.pk).update(paused=False, updated_at=timezone.now())
        doorbell.ring_on_commit([queue.name])
        audit.record(by=by, action="resume_queues", target=queue.name, count=1)
    queue.refresh_from_db()
    return queue


def empty_queue(name: str, *, include_delayed: bool = False, by: Actor = None) -> int:
    """Delete the queue's waiting jobs (and delayed ones if asked). Returns how many."""
    queue = _queue(name)
    statuses = [JobStatus.WAITING] + ([JobStatus.DELAYED] if include_delayed else [])
    with transaction.atomic():
        count = _delete_unstarted(Job.objects.filter(queue=queue, status__in=statuses))
        audit.record(
            by=by,
            action="empty_queues",
            target=queue.name,
            count=count,
            include_delayed=include_delayed,
        )
    return count


def clean_queue(
    name: str, *, status: str, grace_ms: int = 0, limit: int = 1000, by: Actor = None
) -> int:
    """Delete up to ``limit`` jobs of the queue in ``status`` older than ``grace_ms``
    (finished jobs by finish time, others by creation time). Never active or blocked jobs."""
    queue = _queue(name)
    with transaction.atomic():
        count = _clean(queue, status=status, grace_ms=grace_ms, limit=limit)
        audit.record(
            by=by,
            action="clean_queues",
            target=queue.name,
            count=count,
            status=status,
            grace_ms=grace_ms,
            limit=limit,
        )
    return count


def _clean(queue: Queue, *, status: str, grace_ms: int, limit: int) -> int:
    if status not in CLEANABLE:
        raise InvalidJobState(f"clean takes a status among {', '.join(CLEANABLE)}, got {status!r}")
    if grace_ms < 0 or limit < 1:
        raise InvalidJobState("grace_ms must be >= 0 and limit >= 1")
    cutoff = timezone.now() - timedelta(milliseconds=grace_ms)
    age = "finished_at" if status in FINAL_STATUSES else "created_at"
    ids = list(
        Job.objects.filter(queue=queue, status=status, **{f"{age}__lte": cutoff})
        .order_by(age)
        .values_list("id", flat=True)[:limit]
    )
    if status in FINAL_STATUSES:
        return delete_ids(ids, statuses=[status])
    return _delete_unstarted(Job.objects.filter(id__in=ids, status=status))


def _delete_unstarted(jobs) -> int:
    # Their dependants must not wait forever: cancel first (resolving dependants the
    # way a cancelled parent does), then delete.
    with transaction.atomic():
        ids = list(jobs.values_list("id", flat=True))
        # Only what is still unstarted: a job claimed meanwhile is left to its worker.
        _cancel(jobs.filter(id__in=ids, status__in=UNSTARTED))
        return delete_ids(ids, statuses=[JobStatus.CANCELLED])


def apply_retention(*, now=None) -> dict[str, int]:
    """Delete finished jobs past their queue's retention (by default completed jobs are
    kept 24 h and at most 1000, failed and cancelled ones 7 days). Never touches
    unfinished jobs. Returns counts."""
    now = now or timezone.now()
    removed: dict[str, int] = {}
    for queue in Queue.objects.all():
        count = 0
        completed = Job.objects.filter(queue=queue, status=JobStatus.COMPLETED)
        if queue.keep_completed_age is not None:
            old = completed.filter(
                finished_at__lt=now - timedelta(seconds=queue.keep_completed_age)
            )
            count += delete_ids(_ids(old, "finished_at"), statuses=[JobStatus.COMPLETED])
        if queue.keep_completed_count is not None:
            beyond = completed.order_by("-finished_at", "-id")[queue.keep_completed_count :]
            ids = list(beyond.values_list("id", flat=True)[:RETENTION_BATCH])
            count += delete_ids(ids, statuses=[JobStatus.COMPLETED])
        if queue.keep_failed_age is not None:
            # Cancelled jobs are kept as long as failed ones.
            ended = [JobStatus.FAILED, JobStatus.CANCELLED]
            old = Job.objects.filter(
                queue=queue,
                status__in=ended,
                finished_at__lt=now - timedelta(seconds=queue.keep_failed_age),
            )
            count += delete_ids(_ids(old, "finished_at"), statuses=ended)
        if count:
            removed[queue.name] = count
    return removed


def _ids(qs, order: str) -> list:
    return list(qs.order_by(order).values_list("id", flat=True)[:RETENTION_BATCH])
