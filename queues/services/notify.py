"""Telling others that jobs changed status: long-poll waiters, and each job's webhook (a
``platform.webhook`` delivery job, written in the same transaction as the change)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from uuid import UUID

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from queues import doorbell, events
from queues.models import Job, JobStatus
from queues.services.planning import plan
from queues.services.writing import announce, insert_jobs

logger = logging.getLogger("queues.notify")

WEBHOOK_HANDLER = "platform.webhook"


def job_status_changed(ids: Iterable[UUID], *, webhook_ids: Iterable[UUID] | None = None) -> None:
    """Call inside the transaction that changed the jobs' status. ``webhook_ids``: the
    subset known to have a webhook (skips a query); None means look it up."""
    ids = list(ids)
    if not ids:
        return
    events.publish_on_commit(ids)
    if webhook_ids is None:
        targets = list(
            Job.objects.filter(id__in=ids).exclude(webhook_url="").select_related("queue")
        )
    else:
        wanted = list(webhook_ids)
        targets = list(Job.objects.filter(id__in=wanted).select_related("queue")) if wanted else []
    if targets:
        try:
            with transaction.atomic():
                _deliver(targets)
        except (OperationalError, InterfaceError):
            raise  # the database is away: the caller's whole change fails with it
        except Exception:
            # A delivery that cannot be queued (its queue deleted, say) never blocks the
            # change it reports: recording an outcome, a cancel, an enqueue.
            logger.exception("could not queue webhooks for %d jobs", len(targets))


def _deliver(targets: list[Job]) -> None:
    now = timezone.now()
    deliveries = [
        plan(WEBHOOK_HANDLER, {"url": j.webhook_url, "event": events.job_event(j)}, {}, now).job
        for j in targets
    ]
    insert_jobs(deliveries)
    doorbell.ring_on_commit(j.queue.name for j in deliveries if j.status == JobStatus.WAITING)
    announce(deliveries)
