"""Edit a job before it runs (again), and enqueue a copy of one: what an operator does
from a job's page. Both are audited; an edit's audit row holds the diff."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from queues import audit, doorbell
from queues.audit import Actor
from queues.exceptions import EnqueueError, InvalidJobState
from queues.locks import lock_jobs
from queues.models import Job, JobStatus, status_word
from queues.selectors import get_job
from queues.services.enqueuing import enqueue
from queues.services.jobs import RETRYABLE, _retry_locked
from queues.services.notify import job_status_changed
from queues.services.planning import plan

# Edited in place: the job has not started yet. Edited and retried: it has finished
# without success. A job a worker holds (active, or cancelled and still stopping) is
# never edited: its handler has the old payload.
EDITABLE_IN_PLACE = (JobStatus.WAITING, JobStatus.DELAYED)
EDITABLE = (*EDITABLE_IN_PLACE, *RETRYABLE)
UNSET: Any = object()


def can_edit(job: Job) -> bool:
    return job.status in EDITABLE and not job.worker


def edit_job(
    job_id: UUID | str,
    *,
    payload: Any = UNSET,
    queue: str | None = None,
    priority: int | None = None,
    delay: float | timedelta | None = None,
    by: Actor = None,
) -> Job:
    """Change a job's payload, queue, priority or delay (seconds from now; 0 runs it
    now). A waiting or delayed job is changed in place; a failed or cancelled one is
    changed and retried, as ``retry_job`` would. Everything is checked as ``enqueue``
    checks it (``EnqueueError``), and a job in any other state is refused
    (``InvalidJobState``): then nothing changes. The audit row (``edit_job``) records
    each changed field as ``[before, after]``."""
    job = get_job(job_id)
    new_payload = job.payload if payload is UNSET else payload
    # The same checks as an enqueue of the edited job: the handler, the queue, the payload
    # (JSON, and the handler's schema), the priority and the delay.
    options: dict[str, Any] = {
        "queue": queue or job.queue.name,
        "priority": job.priority if priority is None else priority,
    }
    if delay is not None:
        options["delay"] = delay
    planned = plan(job.name, new_payload, options, timezone.now()).job
    try:
        with transaction.atomic():
            return _edit(job.pk, planned, delay=delay, by=by)
    except IntegrityError:
        # The partial unique index: the target queue holds an unfinished job with this
        # job's unique_key.
        raise InvalidJobState(
            _(
                "job %(id)s cannot move to queue %(queue)s: an unfinished job there has "
                "its unique_key"
            )
            % {"id": job.pk, "queue": planned.queue.name}
        ) from None


def _edit(pk: UUID, planned: Job, *, delay, by: Actor) -> Job:
    job = lock_jobs(Job.objects.filter(pk=pk)).select_related("queue").first()
    if job is None:
        raise InvalidJobState(_("job %(id)s was deleted meanwhile") % {"id": pk})
    if not can_edit(job):
        raise InvalidJobState(
            _(
                "job %(id)s is %(status)s; only waiting, delayed, failed or cancelled jobs "
                "can be edited"
            )
            % {"id": pk, "status": status_word(job.status)},
            state=job.status,
        )
    retried = job.status in RETRYABLE
    before = _editable_values(job)
    job.payload, job.queue, job.priority = planned.payload, planned.queue, planned.priority
    Job.objects.filter(pk=pk).update(payload=job.payload, queue=job.queue, priority=job.priority)
    status_changed = False  # a retry says so itself
    if retried:
        count, refusals = _retry_locked([pk], Job.objects.filter(pk=pk))
        if not count:
            raise InvalidJobState(
                _("job %(id)s %(reason)s") % {"id": pk, "reason": refusals.get(pk, "")},
                state=job.status,
            )
        job.refresh_from_db(fields=["status", "run_at"])
    if delay is not None:
        now = timezone.now()
        if job.status == JobStatus.BLOCKED:
            raise InvalidJobState(
                _("job %(id)s waits for its dependencies: it cannot be given a delay") % {"id": pk},
                state=job.status,
            )
        due = planned.run_at  # None: no delay (plan keeps only a future run_at)
        status = JobStatus.DELAYED if due else JobStatus.WAITING
        status_changed |= status != job.status
        Job.objects.filter(pk=pk).update(status=status, run_at=due or now)
        job.status, job.run_at = status, due or now
    if job.status == JobStatus.WAITING:
        doorbell.ring_on_commit([job.queue.name])
    if status_changed:
        job_status_changed([pk])
    after = _editable_values(job)
    diff = {k: [before[k], after[k]] for k in before if before[k] != after[k]}
    audit.record(by=by, action="edit_job", target=str(pk), count=1, changes=diff, retried=retried)
    job.refresh_from_db()
    return job


def _editable_values(job: Job) -> dict[str, Any]:
    return {
        "payload": job.payload,
        "queue": job.queue.name,
        "priority": job.priority,
        "status": job.status,
        "run_at": job.run_at.isoformat() if job.run_at else None,
    }


def duplicate_job(job_id: UUID | str, *, by: Actor = None) -> Job:
    """Enqueue a new job with this one's handler, payload, queue and options (not its
    unique_key, dependencies or history). Audited as ``duplicate_job``, naming the
    original. ``EnqueueError`` if the job could no longer be enqueued (its handler is
    gone)."""
    job = get_job(job_id)
    options: dict[str, Any] = {
        "queue": job.queue.name,
        "priority": job.priority,
        "attempts": job.max_attempts,
        "backoff": job.backoff,
    }
    if job.timeout is not None:
        options["timeout"] = job.timeout
    if job.webhook_url:
        options["webhook_url"] = job.webhook_url
    with transaction.atomic():
        try:
            copy = enqueue(job.name, job.payload, **options)
        except EnqueueError as exc:
            raise EnqueueError(
                _("job %(id)s cannot be duplicated: %(error)s") % {"id": job.pk, "error": exc}
            ) from None
        audit.record(
            by=by, action="duplicate_job", target=str(copy.pk), count=1, source=str(job.pk)
        )
    return copy
