"""Queue operations: change settings, pause, resume, empty, clean, and retention."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from queues import audit, doorbell
from queues.audit import Actor
from queues.exceptions import InvalidJobState, QueueNotFound
from queues.locks import lock_queue
from queues.models import FINAL_STATUSES, Job, JobStatus, Queue
from queues.services import jobs as jobs_services
from queues.services.jobs import UNSTARTED, _cancel, audited, delete_ids, each_chunk

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
        raise QueueNotFound(gettext("no queue is named %(name)s") % {"name": repr(name)})
    return queue


def update_queue(name: str, *, changes: dict[str, Any], by: Actor = None) -> Queue:
    """Change a queue's settings (fields validated by the caller's form). Workers see the
    new limits at their next claim."""
    queue = _queue(name)
    with transaction.atomic():
        # Read afresh under the row lock: save() writes every field, and must not undo a
        # pause (or another edit) committed since the read above.
        queue = lock_queue(queue.pk)
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
    """Delete the queue's waiting jobs (and delayed ones if asked), in chunks. Returns
    how many."""
    queue = _queue(name)
    statuses = [JobStatus.WAITING] + ([JobStatus.DELAYED] if include_delayed else [])
    jobs = Job.objects.filter(queue=queue, status__in=statuses)
    return audited(
        "empty_queues",
        by=by,
        detail={"target": queue.name, "include_delayed": include_delayed},
        run=lambda done: each_chunk(jobs, _delete_unstarted, done),
    )


def clean_queue(
    name: str, *, status: str, grace_ms: int = 0, limit: int = 1000, by: Actor = None
) -> int:
    """Delete up to ``limit`` jobs of the queue in ``status`` older than ``grace_ms``
    (finished jobs by finish time, others by creation time), oldest first, in chunks.
    Never active or blocked jobs."""
    queue = _queue(name)
    if status not in CLEANABLE:
        raise InvalidJobState(
            gettext("clean takes a status among %(statuses)s, got %(status)s")
            % {"statuses": ", ".join(CLEANABLE), "status": repr(status)}
        )
    if grace_ms < 0 or limit < 1:
        raise InvalidJobState(gettext("grace_ms must be >= 0 and limit >= 1"))
    return audited(
        "clean_queues",
        by=by,
        detail={"target": queue.name, "status": status, "grace_ms": grace_ms, "limit": limit},
        run=lambda done: _clean(queue, status=status, grace_ms=grace_ms, limit=limit, done=done),
    )


def _clean(queue: Queue, *, status: str, grace_ms: int, limit: int, done: list[int]) -> int:
    cutoff = timezone.now() - timedelta(milliseconds=grace_ms)
    age = "finished_at" if status in FINAL_STATUSES else "created_at"
    old = Job.objects.filter(queue=queue, status=status, **{f"{age}__lte": cutoff})
    seen = 0
    after = None  # keyset on (age, id): rows left behind (locked, claimed) are passed
    while seen < limit:
        page = (
            old
            if after is None
            else old.filter(
                Q(**{f"{age}__gt": after[0]}) | Q(**{age: after[0], "id__gt": after[1]})
            )
        )
        size = min(jobs_services.BULK_CHUNK, limit - seen)
        rows = list(page.order_by(age, "id").values_list(age, "id")[:size])
        if not rows:
            break
        ids = [job_id for _, job_id in rows]
        if status in FINAL_STATUSES:
            done[0] += delete_ids(ids, statuses=[status])
        else:
            done[0] += _delete_unstarted(ids)
        seen += len(rows)
        if len(rows) < size:
            break
        after = rows[-1]
    return done[0]


def _delete_unstarted(ids: list) -> int:
    """Delete a chunk of unstarted jobs in one transaction. Their dependants must not wait
    forever: cancel first (resolving dependants the way a cancelled parent does), then
    delete. A job claimed meanwhile is left to its worker."""
    with transaction.atomic():
        _cancel(Job.objects.filter(id__in=ids, status__in=UNSTARTED))
        return delete_ids(ids, statuses=[JobStatus.CANCELLED])


def apply_retention(*, now=None) -> dict[str, int]:
    """Delete finished jobs past their queue's retention (by default completed jobs are
    kept 24 h and at most 1000, failed and cancelled ones 7 days), however many there
    are. Never touches unfinished jobs. Returns counts per queue."""
    removed, _ = retention_pass(now=now)
    return removed


def retention_pass(
    *, now=None, deadline: float | None = None, chunk: int | None = None
) -> tuple[dict[str, int], bool]:
    """Delete finished jobs past retention in chunks of ``chunk`` jobs (by default
    ``RETENTION_BATCH``), each its own short transaction, until every queue is within its
    bounds or ``deadline`` (a ``time.monotonic()`` value) has passed; a chunk under way
    when it passes is finished, so a caller with a deadline wants small chunks. Returns the
    counts per queue and whether every queue is within its bounds: if not, the caller runs
    another pass soon, so retention keeps up with any sustained rate of finished jobs
    without one long transaction."""
    now = now or timezone.now()
    chunk = chunk or RETENTION_BATCH
    removed: dict[str, int] = {}
    caught_up = True
    for queue in Queue.objects.order_by("pk"):
        count = 0
        for ids_of, statuses in _retention_rules(queue, now, chunk):
            while caught_up:
                if deadline is not None and time.monotonic() >= deadline:
                    caught_up = False
                    break
                ids = ids_of()
                deleted = delete_ids(ids, statuses=statuses)
                count += deleted
                # Fewer than a chunk: this rule is done. None deleted: what is left is
                # held by a worker or another pass; the next pass sees to it.
                if len(ids) < chunk or not deleted:
                    break
        if count:
            removed[queue.name] = count
        if not caught_up:
            break
    return removed, caught_up


def _retention_rules(queue: Queue, now, chunk: int):
    """Per retention rule of ``queue``: a function giving the next chunk of ids past it,
    and the statuses those jobs must still have when they are deleted."""
    completed = Job.objects.filter(queue=queue, status=JobStatus.COMPLETED)
    if queue.keep_completed_age is not None:
        old = completed.filter(finished_at__lt=now - timedelta(seconds=queue.keep_completed_age))
        yield (lambda old=old: _ids(old, "finished_at", chunk)), [JobStatus.COMPLETED]
    if queue.keep_completed_count is not None:
        beyond = completed.order_by("-finished_at", "-id")[queue.keep_completed_count :]
        yield (
            lambda beyond=beyond: list(beyond.values_list("id", flat=True)[:chunk]),
            [JobStatus.COMPLETED],
        )
    if queue.keep_failed_age is not None:
        # Cancelled jobs are kept as long as failed ones.
        ended = [JobStatus.FAILED, JobStatus.CANCELLED]
        old = Job.objects.filter(
            queue=queue,
            status__in=ended,
            finished_at__lt=now - timedelta(seconds=queue.keep_failed_age),
        )
        yield (lambda old=old: _ids(old, "finished_at", chunk)), ended


def _ids(qs, order: str, chunk: int) -> list:
    return list(qs.order_by(order).values_list("id", flat=True)[:chunk])
