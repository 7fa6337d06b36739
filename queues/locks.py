"""Row locks on jobs and queues, always taken in one order: by primary key.

Two transactions that lock overlapping sets of rows in different orders can each hold a
row the other waits for; Postgres then aborts one with ``deadlock detected`` (40P01).
Every site that locks several job rows goes through ``lock_jobs`` (in the manner of
Saleor's ``lock_objects``), so they all lock in ``ORDER BY id`` and wait on each other in
a line instead. The deadlocks each site used to risk:

- finalize's ``UPDATE ... FROM (VALUES ...)`` (which locks in the plan's order, the claim
  order) against a cancel's ``FOR UPDATE`` of the same jobs;
- the keeper thread's lock renewal against the finalize of the same batch, in the same
  worker process on its other connection (the renewal skips locked rows: it never waits);
- enqueue's parent locks against the finalize of parents that differ in priority (and
  so in claim order);
- a retry, a promote, a stall sweep or a shutdown requeue against any of these.

A transaction that locks a queue row and job rows takes the queue row first, as the
claim does (``engine/claim.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet

from queues.models import Job, Queue


def lock_jobs(
    jobs: QuerySet[Job] | Iterable[UUID], *, skip_locked: bool = False, no_key: bool = False
) -> QuerySet[Job]:
    """``jobs`` (a queryset, or job ids), to be locked in id order when evaluated, inside
    the caller's transaction; or used as a subquery (``id__in=lock_jobs(...).values("id")``)
    of one statement that locks and writes.

    ``skip_locked`` passes over rows another transaction holds (claims, sweeps, the
    keeper: a row someone holds is theirs to finish). ``no_key`` takes ``FOR NO KEY
    UPDATE``, the lock an ``UPDATE`` that keeps the key takes anyway: it lets foreign-key
    checks (a handler's ``ctx.log`` inserting a ``JobLog``) go on beside it.
    """
    if not isinstance(jobs, QuerySet):
        jobs = Job.objects.filter(id__in=sorted(set(jobs)))
    # of=self: rows of joined tables (the queue, for queue__name) are read, not locked.
    return jobs.order_by("id").select_for_update(
        skip_locked=skip_locked, no_key=no_key, of=("self",)
    )


def lock_job_ids(
    jobs: QuerySet[Job] | Iterable[UUID], *, skip_locked: bool = False, no_key: bool = False
) -> list[UUID]:
    """Lock ``jobs`` in id order now; returns the ids locked, in that order."""
    return list(
        lock_jobs(jobs, skip_locked=skip_locked, no_key=no_key).values_list("id", flat=True)
    )


def lock_queue(pk: int) -> Queue:
    """The queue row, locked, read afresh. Taken before any of its jobs' rows (the claim's
    order: queue row, then jobs), so a service locking both cannot deadlock with a claim;
    and a read-modify-write of the row (``save()``) cannot overwrite a concurrent pause."""
    return Queue.objects.select_for_update().get(pk=pk)


@contextlib.contextmanager
def held_alone(key: int) -> Iterator[bool]:
    """A session-level advisory lock on Postgres: yields whether this process holds it
    (another process holding it means the work is being done there). For work that is
    safe twice over, done once to save the effort: behind a transaction pooler a session
    lock could stay behind on a server connection and stop the work for good, so there it
    is not taken (always held). Other databases have one process: always held."""
    if connection.vendor != "postgresql" or settings.DB_POOLER == "transaction":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        mine = cursor.fetchone()[0]
    try:
        yield mine
    finally:
        if mine:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except Exception:
                # The session may still hold it: closing the connection lets it go (and
                # never hides the error the work itself raised).
                connection.close()
