"""Job status changes, told to long-poll waiters (Redis pub/sub, after commit), and the
JSON body that describes a job to waiters, webhooks and the API. A leaf: it writes
nothing. ``services.notify`` decides who is told."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial
from uuid import UUID

from django.db import transaction

from queues import doorbell
from queues.models import Job

logger = logging.getLogger("queues.events")

CHANNEL = "jobplatform:job:{}"


def channel(job_id: UUID | str) -> str:
    return CHANNEL.format(job_id)


def publish_on_commit(ids: Iterable[UUID]) -> None:
    """Tell long-poll waiters that these jobs changed, once the transaction commits."""
    ids = list(ids)
    if ids:
        transaction.on_commit(partial(_publish, ids))


def job_event(job: Job) -> dict:
    """The JSON a webhook receives (and the API returns) for a job."""
    return {
        "id": str(job.pk),
        "name": job.name,
        "queue": job.queue.name,
        "status": job.status,
        "progress": job.progress,
        "attempts_made": job.attempts_made,
        "result": job.result,
        "error": job.error,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def _publish(ids: list[UUID]) -> None:
    if not doorbell.redis_enabled():
        return
    try:
        pipe = doorbell.redis_client().pipeline(transaction=False)
        for job_id in ids:
            pipe.publish(channel(job_id), "changed")
        pipe.execute()
    except Exception:
        # Waiters also re-read the job every few seconds: a lost message only delays them.
        logger.warning("could not publish %d status changes", len(ids), exc_info=True)
