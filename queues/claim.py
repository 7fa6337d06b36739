"""The claim query: take the next runnable jobs of a queue, in priority order, for one worker.

On Postgres it is a single statement (one round trip for a whole batch)::

    WITH claimed AS (
        SELECT id FROM queues_job
        WHERE queue_id = %s AND status = 'waiting'
        ORDER BY priority, created_at LIMIT n
        FOR UPDATE SKIP LOCKED)
    UPDATE queues_job ... FROM claimed WHERE queues_job.id = claimed.id RETURNING ...

served by the partial index ``job_claim_idx``. Other databases (SQLite, the embedded
default) take the same rows with the ORM; SQLite serialises writers anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from queues.models import Job, JobStatus, Queue

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
    started_at = %(now)s,
    locked_until = %(locked_until)s,
    worker = %(worker)s
FROM claimed
WHERE j.id = claimed.id
RETURNING j.id, j.name, j.payload, j.priority, j.created_at, j.attempts_made,
          j.attempts_base, j.max_attempts, j.backoff, j.timeout
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

    @property
    def attempts_exhausted(self) -> bool:
        return self.attempt - self.attempts_base >= self.max_attempts


def claim_jobs(*, queue: Queue, worker: str, limit: int) -> list[ClaimedJob]:
    """Mark up to ``limit`` runnable jobs of ``queue`` active for ``worker`` and return them
    in the order they must run. Returns nothing while the queue is paused."""
    now = timezone.now()
    locked_until = now + timedelta(seconds=queue.lock_duration)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _CLAIM_SQL,
                {
                    "queue_id": queue.pk,
                    "limit": limit,
                    "now": now,
                    "locked_until": locked_until,
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
            )
            for row in rows
        ]
    else:
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
    from django.db.models import F

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
        return [
            ClaimedJob(
                id=j.id,
                name=j.name,
                payload=j.payload,
                priority=j.priority,
                created_at=j.created_at,
                attempt=j.attempts_made,
                attempts_base=j.attempts_base,
                max_attempts=j.max_attempts,
                backoff=j.backoff,
                timeout=j.timeout,
            )
            for j in jobs
        ]
