"""Putting jobs back after their worker went away: stalled locks, shutdowns, kills.

A job is ``active`` only while some worker holds its lock (``locked_until``), which the
worker's keeper thread renews. When the lock expires the worker is gone (killed, frozen,
partitioned): the maintenance loop records the attempt as ``stalled`` and returns the job
to ``waiting`` (the stalled try does not count against its attempts), or fails it once it
has stalled more than its queue's ``max_stalled`` times.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from queues import doorbell, signals
from queues.durations import duration_ms
from queues.engine.clock import database_now
from queues.locks import lock_jobs
from queues.models import HELD_BY_WORKER, AttemptOutcome, Job, JobAttempt, JobStatus
from queues.services.dependencies import resolve_dependants
from queues.services.notify import job_status_changed

STALL_BATCH = 1000
# What _requeue reads of each job, whichever way it was found.
_REQUEUE_FIELDS = (
    "id",
    "name",
    "attempts_made",
    "stalled_count",
    "started_at",
    "worker",
    "locked_until",
    "queue__name",
    "queue__max_stalled",
)


def release_unstarted(*, ids: Iterable[UUID], worker: str) -> list[str]:
    """Give back claimed jobs this worker never started (shutdown, or its process dying):
    they return to ``waiting`` as if never claimed. Returns the queues to wake."""

    ids = list(ids)
    if not ids:
        return []
    with transaction.atomic():
        # Locked in id order before the UPDATE, which would lock them in its plan's order
        # and deadlock with a cancel of the same jobs (queues/locks.py).
        held = lock_jobs(Job.objects.filter(id__in=ids, status=JobStatus.ACTIVE, worker=worker))
        names = sorted(set(held.values_list("queue__name", flat=True)))
        Job.objects.filter(id__in=ids, status=JobStatus.ACTIVE, worker=worker).update(
            status=JobStatus.WAITING,
            attempts_made=F("attempts_made") - 1,
            locked_until=None,
            worker="",
        )
        doorbell.ring_on_commit(names)
        job_status_changed(ids)
    return names


def recover_stalled(*, now: datetime | None = None) -> list[str]:
    """Requeue (or fail) active jobs whose lock expired (by the database's clock). Returns
    the queues to wake."""
    now = now or database_now()
    # A cancelled job whose worker died while it was stopping: nobody holds it any more.
    # Skipping rows someone holds (its late finalize): a plain UPDATE would wait on them
    # in its plan's order, and could deadlock with that finalize (queues/locks.py).
    with transaction.atomic():
        abandoned = Job.objects.filter(status=JobStatus.CANCELLED, locked_until__lt=now)
        Job.objects.filter(
            id__in=lock_jobs(abandoned.exclude(worker=""), skip_locked=True).values("id")
        ).update(worker="", locked_until=None)
    with transaction.atomic():
        rows = list(
            lock_jobs(
                Job.objects.filter(status=JobStatus.ACTIVE, locked_until__lt=now),
                skip_locked=True,
            ).values(*_REQUEUE_FIELDS)[:STALL_BATCH]
        )
        if not rows:
            return []
        reason = "its lock expired at {locked_until:%H:%M:%S}: worker {worker} stopped renewing it"
        return _requeue(rows, now=now, reason=reason, count_stall=True)


def requeue_from_workers(
    *, workers: Iterable[str], reason: str, blameless: bool = False
) -> list[str]:
    """Requeue the active jobs of worker processes that were just killed (a shutdown past
    its grace period, a frozen cluster restarted). Each counts a stall, not an attempt:
    a job that wedges its worker every time (the GIL held, say) fails after its queue's
    ``max_stalled`` instead of taking its batch down forever. ``blameless``: the jobs are
    known not to be the cause: their try is recorded as a stall, but not counted."""
    workers = [w for w in workers if w]
    if not workers:
        return []
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            lock_jobs(Job.objects.filter(status=JobStatus.ACTIVE, worker__in=workers)).values(
                *_REQUEUE_FIELDS
            )
        )
        return _requeue(rows, now=now, reason=reason, count_stall=not blameless)


def _held_by(workers: Iterable[str]) -> dict[str, int]:
    """How many jobs each of ``workers`` holds (inside the caller's transaction, before
    its rows are requeued)."""
    workers = sorted({w for w in workers if w})
    counted = (
        Job.objects.filter(HELD_BY_WORKER, worker__in=workers)
        .values_list("worker")
        .annotate(n=Count("id"))
    )
    return dict(counted)


def _requeue(rows: list[dict], *, now: datetime, reason: str, count_stall: bool) -> list[str]:

    back, failed, attempts = [], [], []
    held = _held_by(row["worker"] for row in rows) if count_stall else {}
    for row in rows:
        stalls = row["stalled_count"] + (1 if count_stall else 0)
        error = reason.format(**row)
        shared = held.get(row["worker"], 0) > 1
        if shared:
            # Its worker died holding a batch: which of the batch took it down is not
            # known. The stall is recorded and counted, but fails no job; a job that has
            # stalled runs alone from now on (engine/runner.py), so the next time it
            # takes its worker down, it is known to be the one.
            error += (
                f" (it was one of {held[row['worker']]} jobs its worker held; it runs "
                "alone from now on)"
            )
        if count_stall and not shared and stalls > row["queue__max_stalled"]:
            failed.append(row["id"])
            error = (
                f"stalled {stalls} times (queue max_stalled={row['queue__max_stalled']}); "
                f"last time {error}"
            )
        else:
            back.append(row["id"])
        started = row["started_at"] or now
        attempts.append(
            JobAttempt(
                job_id=row["id"],
                number=row["attempts_made"],
                worker=row["worker"],
                started_at=started,
                finished_at=now,
                duration_ms=duration_ms(started, now),
                outcome=AttemptOutcome.STALLED,
                error=error,
            )
        )
        row["error"] = error
    stall_increment = F("stalled_count") + (1 if count_stall else 0)
    Job.objects.filter(id__in=back, status=JobStatus.ACTIVE).update(
        status=JobStatus.WAITING,
        stalled_count=stall_increment,
        attempts_base=F("attempts_base") + 1,
        locked_until=None,
        worker="",
    )
    for row in rows:
        if row["id"] in failed:
            Job.objects.filter(id=row["id"], status=JobStatus.ACTIVE).update(
                status=JobStatus.FAILED,
                stalled_count=stall_increment,
                error=row["error"],
                finished_at=now,
                locked_until=None,
                worker="",
            )
    # The dead worker may have written its own row for this number: keep that one.
    JobAttempt.objects.bulk_create(attempts, ignore_conflicts=True)
    names = sorted({row["queue__name"] for row in rows if row["id"] in set(back)})
    names += resolve_dependants(failed)
    doorbell.ring_on_commit(names)
    job_status_changed([row["id"] for row in rows])
    if rows:
        about = [
            {
                "job_id": r["id"],
                "queue": r["queue__name"],
                "name": r["name"],
                "attempt": r["attempts_made"],
                "error": r["error"],
            }
            for r in rows
        ]
        signals.send_on_commit(signals.job_stalled, about)
    return sorted(set(names))
