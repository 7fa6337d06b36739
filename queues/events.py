"""Job status changes, told to whoever listens: long-poll waiters (Redis pub/sub, after
commit) and webhooks (a delivery job per change, in the same transaction)."""

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


def status_changed(ids: Iterable[UUID], *, webhook_ids: Iterable[UUID] | None = None) -> None:
    """Call inside the transaction that changed the jobs' status. ``webhook_ids``: the
    subset known to have a webhook (skips a query); None means look it up."""
    ids = list(ids)
    if not ids:
        return
    transaction.on_commit(partial(_publish, ids))
    if webhook_ids is None:
        targets = list(
            Job.objects.filter(id__in=ids).exclude(webhook_url="").select_related("queue")
        )
    else:
        wanted = list(webhook_ids)
        targets = list(Job.objects.filter(id__in=wanted).select_related("queue")) if wanted else []
    if targets:
        from queues.services.enqueuing import enqueue_many

        enqueue_many(
            [
                {
                    "name": "platform.webhook",
                    "payload": {"url": j.webhook_url, "event": job_event(j)},
                }
                for j in targets
            ]
        )


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
