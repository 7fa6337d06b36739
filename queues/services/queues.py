"""Queue operations: change settings and limits, pause, resume, empty, clean, and
retention."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from queues import audit, doorbell
from queues.audit import Actor
from queues.exceptions import InvalidJobState, QueueNotFound
from queues.locks import lock_queue
from queues.models import FINAL_STATUSES, Job, JobStatus, Queue
from queues.selectors import forget_queue
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
    """Stop workers from starting jobs of this queue (active jobs finish). The claim reads
    the flag in its own statement, so running workers stop at their next claim."""
    return _set_paused(name, paused=True, action="pause_queues", by=by)


def resume_queue(name: str, *, by: Actor = None) -> Queue:
    """Let workers take jobs of this queue again, and wake them."""
    return _set_paused(name, paused=False, action="resume_queues", by=by)


def _set_paused(name: str, *, paused: bool, action: str, by: Actor) -> Queue:
    queue = _queue(name)
    with transaction.atomic():
        before = lock_queue(queue.pk).paused
        if before == paused:  # already so: nothing to write, nothing to audit
            return queue
        Queue.objects.filter(pk=queue.pk).update(paused=paused, updated_at=timezone.now())
        if not paused:
            doorbell.ring_on_commit([queue.name])
        audit.record(
            by=by, action=action, target=queue.name, count=1, changes={"paused": [before, paused]}
        )
    queue.refresh_from_db()
    return queue


# PositiveIntegerField's upper bound on Postgres (a 4-byte integer).
LIMIT_MAX = 2_147_483_647
LIMIT_FIELDS = ("concurrency", "rate_limit_max", "rate_limit_duration_ms")
UNSET: Any = object()


def set_queue_limits(
    name: str,
    *,
    concurrency: int | None = UNSET,
    rate_limit_max: int | None = UNSET,
    rate_limit_duration_ms: int | None = UNSET,
    by: Actor = None,
) -> Queue:
    """Change a queue's concurrency cap and rate limit (at most ``rate_limit_max`` jobs
    start per ``rate_limit_duration_ms``). ``None`` removes a limit; an argument left out
    keeps its value. Each value is a whole number from 1; the rate limit's two halves are
    set or cleared together. Invalid values raise ``ValidationError`` (one message per
    field) and change nothing. The audit row (``set_queue_limits``) records each changed
    field as ``[before, after]``; no change writes none.

    A limited claim reads the limits afresh under the queue's row lock, so running workers
    apply them at their next claim; the doorbell wakes them at once, since a raised limit
    frees slots that no running drain may be waiting for."""
    given = {
        "concurrency": concurrency,
        "rate_limit_max": rate_limit_max,
        "rate_limit_duration_ms": rate_limit_duration_ms,
    }
    given = {field: value for field, value in given.items() if value is not UNSET}
    errors = {field: message for field, value in given.items() if (message := _limit_error(value))}
    if errors:
        raise ValidationError(errors)
    queue = _queue(name)
    with transaction.atomic():
        queue = lock_queue(queue.pk)
        before = {field: getattr(queue, field) for field in LIMIT_FIELDS}
        after = {**before, **given}
        if (after["rate_limit_max"] is None) != (after["rate_limit_duration_ms"] is None):
            message = gettext(
                "Set the rate limit's maximum and its duration together, or clear both."
            )
            empty = (
                "rate_limit_max" if after["rate_limit_max"] is None else "rate_limit_duration_ms"
            )
            raise ValidationError({empty: message})
        changes = {f: [before[f], after[f]] for f in LIMIT_FIELDS if before[f] != after[f]}
        if not changes:
            return queue
        new_values = {field: new for field, (_old, new) in changes.items()}
        Queue.objects.filter(pk=queue.pk).update(**new_values, updated_at=timezone.now())
        # Now and at commit: a claim in this process reads the new limits at once.
        forget_queue(queue.name)
        transaction.on_commit(partial(forget_queue, queue.name))
        doorbell.ring_on_commit([queue.name])
        audit.record(by=by, action="set_queue_limits", target=queue.name, count=1, changes=changes)
    queue.refresh_from_db()
    return queue


def _limit_error(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= LIMIT_MAX:
        return gettext(
            "Enter a whole number from 1 to %(max)s, or leave it empty for no limit."
        ) % {"max": LIMIT_MAX}
    return None


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
