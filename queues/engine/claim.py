"""The claim query: take the next runnable jobs of a queue, in priority order, for one worker.

On Postgres it is a single statement (one round trip for a whole batch)::

    WITH claimed AS (
        SELECT id FROM queues_job
        WHERE queue_id = %s AND status = 'waiting'
        ORDER BY priority, created_at LIMIT n
        FOR UPDATE SKIP LOCKED)
    UPDATE queues_job ... FROM claimed WHERE queues_job.id = claimed.id RETURNING ...

served by the partial index ``job_claim_idx``. A queue with a rate limit or a concurrency
cap claims inside a transaction that first locks its queue row: the limit is then exact
across every worker on every host. Other databases (SQLite, the embedded default) take
the same rows with the ORM; SQLite serialises writers anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone

from queues.exceptions import UnknownQueue
from queues.models import HELD_BY_WORKER, Job, JobStatus, Queue
from queues.prepared import bound_cursor
from queues.selectors import get_queue

_CLAIM_SQL = """
WITH claimed AS (
    SELECT id FROM queues_job
    WHERE queue_id = %(queue_id)s AND status = 'waiting'
      AND NOT EXISTS (SELECT 1 FROM queues_queue WHERE id = %(queue_id)s AND paused)
    ORDER BY priority, created_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE queues_job AS j
SET status = 'active',
    attempts_made = j.attempts_made + 1,
    started_at = now(),
    locked_until = now() + %(lock_seconds)s * interval '1 second',
    worker = %(worker)s
FROM claimed
WHERE j.id = claimed.id
RETURNING j.id, j.name, j.payload, j.priority, j.created_at, j.attempts_made,
          j.attempts_base, j.max_attempts, j.backoff, j.timeout, j.queue_id, j.webhook_url,
          j.stalled_count, j.has_dependants
"""


@dataclass
class ClaimedJob:
    id: UUID
    name: str
    payload: object
    priority: int
    created_at: datetime
    attempt: int
    attempts_base: int
    max_attempts: int
    backoff: dict
    timeout: float | None
    queue_id: int | None = None
    webhook_url: str = ""
    stalled_count: int = 0
    has_dependants: bool = False

    @property
    def attempts_exhausted(self) -> bool:
        return self.attempt - self.attempts_base >= self.max_attempts

    @classmethod
    def from_job(cls, job: Job, *, attempt: int | None = None) -> ClaimedJob:
        return cls(
            id=job.id,
            name=job.name,
            payload=job.payload,
            priority=job.priority,
            created_at=job.created_at,
            attempt=job.attempts_made if attempt is None else attempt,
            attempts_base=job.attempts_base,
            max_attempts=job.max_attempts,
            backoff=job.backoff,
            timeout=job.timeout,
            queue_id=job.queue_id,
            webhook_url=job.webhook_url,
            stalled_count=job.stalled_count,
            has_dependants=job.has_dependants,
        )


@dataclass
class Claim:
    jobs: list[ClaimedJob]
    # When a rate limit or concurrency cap held jobs back: seconds until it may allow more.
    retry_after: float | None = None


def claim_jobs(*, queue: Queue, worker: str, limit: int) -> Claim:
    """Mark up to ``limit`` runnable jobs of ``queue`` active for ``worker`` and return them
    in the order they must run. Returns nothing while the queue is paused."""
    # Whether the queue has limits: by the row the drain loaded when it started, or by
    # its row as cached for a moment (dropped when the services change the limits), so a
    # limit set on an unlimited queue binds drains already under way. The limited claim
    # then reads the limits under the row's lock.
    try:
        current = get_queue(queue.name)
    except UnknownQueue:  # renamed since the drain began: its own row decides
        current = queue
    if queue.rate_limit_max or queue.concurrency or current.rate_limit_max or current.concurrency:
        with transaction.atomic():
            return _claim_limited(queue=queue, worker=worker, limit=limit)
    return Claim(_claim(queue=queue, worker=worker, limit=limit, now=None))


def _claim_limited(*, queue: Queue, worker: str, limit: int) -> Claim:
    # The database's clock, not this host's: a host whose clock is off must not reset the
    # window that other hosts share.
    q = Queue.objects.select_for_update().annotate(db_now=Now()).get(pk=queue.pk)
    now = q.db_now
    if q.paused:
        return Claim([])
    allowed, retry_after = limit, None
    if q.concurrency:
        # A cancelled job whose handler is still stopping holds its worker: it counts.
        active = Job.objects.filter(queue=q).filter(HELD_BY_WORKER).count()
        # No retry hint: the drain that frees a slot goes on claiming by itself.
        allowed = min(allowed, q.concurrency - active)
    window = None
    if q.rate_limit_max and q.rate_limit_duration_ms:
        window = timedelta(milliseconds=q.rate_limit_duration_ms)
        if q.rate_window_start is None or now - q.rate_window_start >= window:
            q.rate_window_start, q.rate_window_count = now, 0
        left = q.rate_limit_max - q.rate_window_count
        if left <= 0 or left < allowed:
            retry_after = (q.rate_window_start + window - now).total_seconds()
        allowed = min(allowed, left)
    if allowed <= 0:
        return Claim([], retry_after)
    jobs = _claim(queue=q, worker=worker, limit=allowed, now=now)
    if window is not None:
        Queue.objects.filter(pk=q.pk).update(
            rate_window_start=q.rate_window_start,
            rate_window_count=q.rate_window_count + len(jobs),
        )
    return Claim(jobs, retry_after if len(jobs) == allowed else None)


def _claim(*, queue: Queue, worker: str, limit: int, now: datetime | None) -> list[ClaimedJob]:
    # Lock deadlines come from the database's clock (now()), which every host shares: a
    # host whose clock is off neither lets its locks lapse early nor holds them too long.
    if connection.vendor == "postgresql":
        with bound_cursor() as cursor:
            cursor.execute(
                _CLAIM_SQL,
                {
                    "queue_id": queue.pk,
                    "limit": limit,
                    "lock_seconds": queue.lock_duration,
                    "worker": worker,
                },
            )
            rows = cursor.fetchall()
        claimed = [
            ClaimedJob(
                id=row[0],
                name=row[1],
                payload=_json(row[2]),
                priority=row[3],
                created_at=row[4],
                attempt=row[5],
                attempts_base=row[6],
                max_attempts=row[7],
                backoff=_json(row[8]),
                timeout=row[9],
                queue_id=row[10],
                webhook_url=row[11],
                stalled_count=row[12],
                has_dependants=row[13],
            )
            for row in rows
        ]
    else:
        # The embedded default (SQLite, one host): this host's clock is the only one.
        now = now or timezone.now()
        locked_until = now + timedelta(seconds=queue.lock_duration)
        claimed = _claim_with_orm(
            queue=queue, worker=worker, limit=limit, now=now, locked_until=locked_until
        )
    # RETURNING does not keep the subquery's order.
    claimed.sort(key=lambda c: (c.priority, c.created_at))
    return claimed


def _json(value):
    return json.loads(value) if isinstance(value, str | bytes) else value


def _claim_with_orm(
    *, queue: Queue, worker: str, limit: int, now: datetime, locked_until: datetime
) -> list[ClaimedJob]:
    with transaction.atomic():
        if Queue.objects.filter(pk=queue.pk, paused=True).exists():
            return []
        ids = list(
            Job.objects.select_for_update(skip_locked=True)
            .filter(queue=queue, status=JobStatus.WAITING)
            .order_by("priority", "created_at")
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        Job.objects.filter(id__in=ids, status=JobStatus.WAITING).update(
            status=JobStatus.ACTIVE,
            attempts_made=F("attempts_made") + 1,
            started_at=now,
            locked_until=locked_until,
            worker=worker,
        )
        jobs = Job.objects.filter(id__in=ids, worker=worker, status=JobStatus.ACTIVE)
        return [ClaimedJob.from_job(j) for j in jobs]
