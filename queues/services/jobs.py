"""Retry and cancel, one job or every job a queryset matches (one statement, server-side)."""

from __future__ import annotations

from uuid import UUID

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from queues import audit, doorbell, signals
from queues.audit import Actor
from queues.exceptions import InvalidJobState
from queues.models import FINAL_STATUSES, Job, JobAttempt, JobDependency, JobLog, JobStatus
from queues.selectors import get_job
from queues.services.dependencies import resolve_dependants
from queues.services.notify import job_status_changed

RETRYABLE = (JobStatus.FAILED, JobStatus.CANCELLED)
UNSTARTED = (JobStatus.WAITING, JobStatus.DELAYED, JobStatus.BLOCKED)
CANCELLABLE = (*UNSTARTED, JobStatus.ACTIVE)


def _retry_fields() -> dict:
    # The job keeps its options (priority, timeout, attempts, backoff, payload); it gets a
    # fresh set of attempts: those made so far stop counting.
    return {
        "status": JobStatus.WAITING,
        "attempts_base": F("attempts_made"),
        "run_at": None,
        "progress": 0,
        "result": None,
        "error": "",
        "finished_at": None,
    }


def _retryable(jobs: QuerySet[Job]) -> QuerySet[Job]:
    """Failed or cancelled, no longer held by a worker, and no unfinished job of the queue
    holds its unique_key (the retry would break the one-unfinished-job rule)."""
    twin = Job.objects.filter(
        queue=OuterRef("queue"),
        unique_key=OuterRef("unique_key"),
        status__in=[JobStatus.WAITING, JobStatus.DELAYED, JobStatus.BLOCKED, JobStatus.ACTIVE],
    ).exclude(pk=OuterRef("pk"))
    return jobs.filter(status__in=RETRYABLE, worker="").exclude(
        Q(unique_key__isnull=False) & Exists(twin)
    )


def retry_job(job_id: UUID | str, *, by: Actor = None) -> Job:
    """Run a failed or cancelled job again, with its original options."""
    job = get_job(job_id)
    if job.status == JobStatus.CANCELLED and job.worker:
        raise InvalidJobState(
            f"job {job.pk} was cancelled and its handler is still stopping; retry it later",
            state=job.status,
        )
    with transaction.atomic():
        updated = _retryable(Job.objects.filter(pk=job.pk)).update(**_retry_fields())
        if not updated and job.status in RETRYABLE:
            raise InvalidJobState(
                f"job {job.pk} cannot be retried: another unfinished job of queue "
                f"{job.queue.name} has its unique_key {job.unique_key!r}",
                state=job.status,
            )
        if not updated:
            raise InvalidJobState(
                f"job {job.pk} is {job.status}; only failed or cancelled jobs can be retried",
                state=job.status,
            )
        doorbell.ring_on_commit([job.queue.name])
        job_status_changed([job.pk])
        audit.record(by=by, action="retry_jobs", target=str(job.pk), count=1)
    job.refresh_from_db()
    return job


def retry_jobs(jobs: QuerySet[Job], *, by: Actor = None, **detail) -> int:
    """Retry every failed or cancelled job in ``jobs`` (e.g. the dead-letter set, filtered)
    with one UPDATE. Returns how many. ``detail`` goes into the audit row."""
    with transaction.atomic():
        ids = list(_retryable(jobs).values_list("id", flat=True))
        names = list(
            Job.objects.filter(id__in=ids).values_list("queue__name", flat=True).distinct()
        )
        count = Job.objects.filter(id__in=ids, status__in=RETRYABLE).update(**_retry_fields())
        doorbell.ring_on_commit(names)
        job_status_changed(ids)
        audit.record(by=by, action="retry_jobs", count=count, **detail)
    return count


def cancel_job(job_id: UUID | str, *, by: Actor = None) -> Job:
    """Cancel a job that has not finished. An active job's handler should check
    ``ctx.is_cancelled()``; if it has not stopped after ``CANCEL_GRACE`` seconds it is
    interrupted. Whatever it returns afterwards is discarded."""
    job = get_job(job_id)
    with transaction.atomic():
        if not _cancel(Job.objects.filter(pk=job.pk)):
            job.refresh_from_db()
            state = job.status if job.status in FINAL_STATUSES else "not cancellable"
            raise InvalidJobState(
                f"job {job.pk} is already {state}; it cannot be cancelled", state=job.status
            )
        audit.record(by=by, action="cancel_jobs", target=str(job.pk), count=1)
    job.refresh_from_db()
    return job


def cancel_jobs(jobs: QuerySet[Job], *, by: Actor = None, **detail) -> int:
    """Cancel every unfinished job in ``jobs``. Returns how many."""
    with transaction.atomic():
        count = _cancel(jobs)
        audit.record(by=by, action="cancel_jobs", count=count, **detail)
    return count


def _cancel(jobs: QuerySet[Job]) -> int:
    ids = list(
        jobs.filter(status__in=CANCELLABLE)
        .select_for_update(of=("self",))
        .values_list("id", flat=True)
    )
    if not ids:
        return 0
    # An active job keeps its worker and lock until its handler stops: the worker's keeper
    # renews the lock meanwhile, and a job still stopping cannot be retried or deleted.
    count = Job.objects.filter(id__in=ids, status__in=CANCELLABLE).update(
        status=JobStatus.CANCELLED, finished_at=timezone.now()
    )
    parents = Job.objects.filter(id__in=ids, has_dependants=True).values_list("id", flat=True)
    doorbell.ring_on_commit(resolve_dependants(list(parents)))
    job_status_changed(ids)
    if signals.job_cancelled.has_listeners():
        rows = Job.objects.filter(id__in=ids).values_list("id", "queue__name", "name")
        signals.send_on_commit(
            signals.job_cancelled, [{"job_id": i, "queue": q, "name": n} for i, q, n in rows]
        )
    return count


def promote_job(job_id: UUID | str, *, by: Actor = None) -> Job:
    """Run a delayed job now."""
    job = get_job(job_id)
    with transaction.atomic():
        if not _promote(Job.objects.filter(pk=job.pk)):
            job.refresh_from_db()
            raise InvalidJobState(
                f"job {job.pk} is {job.status}; only delayed jobs can be promoted",
                state=job.status,
            )
        audit.record(by=by, action="promote_jobs", target=str(job.pk), count=1)
    job.refresh_from_db()
    return job


def promote_jobs(jobs: QuerySet[Job], *, by: Actor = None, **detail) -> int:
    """Run delayed jobs now. Returns how many."""
    with transaction.atomic():
        count = _promote(jobs)
        audit.record(by=by, action="promote_jobs", count=count, **detail)
    return count


def _promote(jobs: QuerySet[Job]) -> int:
    with transaction.atomic():
        ids = list(jobs.filter(status=JobStatus.DELAYED).values_list("id", flat=True))
        names = list(
            Job.objects.filter(id__in=ids).values_list("queue__name", flat=True).distinct()
        )
        count = Job.objects.filter(id__in=ids, status=JobStatus.DELAYED).update(
            status=JobStatus.WAITING, run_at=timezone.now()
        )
        doorbell.ring_on_commit(names)
        job_status_changed(ids)
    return count


def delete_job(job_id: UUID | str, *, by: Actor = None) -> None:
    """Delete one job with its attempts, logs and links. An active job (or one still
    stopping after a cancel) is refused: its worker still has to record the attempt."""
    job = get_job(job_id)
    with transaction.atomic():
        deleted, skipped = _delete(Job.objects.filter(pk=job.pk))
        if skipped:
            raise InvalidJobState(f"job {job.pk} is active; cancel it first", state=job.status)
        audit.record(by=by, action="delete_jobs", target=str(job.pk), count=deleted)


def delete_jobs(jobs: QuerySet[Job], *, by: Actor = None, **detail) -> tuple[int, int]:
    """Delete jobs with their attempts, logs and links, in bulk. Active jobs are skipped
    (cancel them first): their worker still has to record the attempt. Unfinished jobs
    are cancelled first so their dependants are resolved. Returns (deleted, skipped)."""
    with transaction.atomic():
        deleted, skipped = _delete(jobs)
        audit.record(by=by, action="delete_jobs", count=deleted, skipped=skipped, **detail)
    return deleted, skipped


def _delete(jobs: QuerySet[Job]) -> tuple[int, int]:
    with transaction.atomic():
        running = Q(status=JobStatus.ACTIVE) | ~Q(worker="")
        skipped = jobs.filter(running).count()
        ids = list(jobs.exclude(running).values_list("id", flat=True))
        _cancel(Job.objects.filter(id__in=ids, status__in=UNSTARTED))
        return delete_ids(ids, statuses=list(FINAL_STATUSES)), skipped


def delete_ids(ids, *, statuses) -> int:
    """Delete the given jobs still in ``statuses``, related rows first (no per-row work)."""
    if not ids:
        return 0
    with transaction.atomic():
        # Never a job a worker still holds (active, or cancelled and still stopping).
        ids = list(
            Job.objects.filter(id__in=ids, status__in=statuses, worker="")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)
        )
        JobAttempt.objects.filter(job_id__in=ids).delete()
        JobLog.objects.filter(job_id__in=ids).delete()
        JobDependency.objects.filter(Q(job_id__in=ids) | Q(parent_id__in=ids)).delete()
        deleted, _ = Job.objects.filter(id__in=ids).only("id").delete()
    return deleted
