"""Every state change of queues and jobs. Admin, API, commands and handlers call these."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from queues import doorbell
from queues.backoff import normalize_backoff
from queues.exceptions import (
    EnqueueError,
    InvalidJobState,
    JobNotFound,
    QueueNotFound,
    UnknownQueue,
)
from queues.models import FINAL_STATUSES, Job, JobStatus, Queue
from queues.priority import MAX_PRIORITY, MIN_PRIORITY
from queues.registry import get_handler

logger = logging.getLogger("queues")

DEFAULT_QUEUE = "default"
_ENQUEUE_OPTIONS = frozenset(
    {"queue", "priority", "delay", "run_at", "attempts", "backoff", "timeout"}
)

# Queue rows by name, briefly cached: enqueue needs the id and defaults, not a query each time.
_QUEUE_CACHE_SECONDS = 2.0
_queue_cache: dict[str, tuple[Queue, float]] = {}


def _forget_queue(sender, instance: Queue, **kwargs) -> None:
    _queue_cache.pop(instance.name, None)


post_save.connect(_forget_queue, sender=Queue, dispatch_uid="queues.forget_queue.save")
post_delete.connect(_forget_queue, sender=Queue, dispatch_uid="queues.forget_queue.delete")


def get_queue(name: str) -> Queue:
    cached = _queue_cache.get(name)
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]
    queue = Queue.objects.filter(name=name).first()
    if queue is None:
        known = ", ".join(Queue.objects.order_by("name").values_list("name", flat=True))
        raise UnknownQueue(f"no queue is named {name!r} (queues: {known or 'none'})")
    _queue_cache[name] = (queue, time.monotonic() + _QUEUE_CACHE_SECONDS)
    return queue


def ring_on_commit(queue_names: Iterable[str]) -> None:
    names = sorted(set(queue_names))
    if names:
        transaction.on_commit(partial(_ring_quietly, names))


def _ring_quietly(names: list[str]) -> None:
    # The ledger already holds the jobs; a failed ring only delays them until the
    # scheduler's next re-wake, so it must never fail the caller.
    try:
        doorbell.ring(names)
    except Exception:
        logger.warning(
            "could not ring the doorbell for %s; the scheduler will", names, exc_info=True
        )


# --- enqueue ------------------------------------------------------------------------------


def _build_job(name: str, payload: Any, options: Mapping[str, Any], now: datetime) -> Job:
    unknown = set(options) - _ENQUEUE_OPTIONS
    if unknown:
        raise EnqueueError(f"unknown enqueue options: {', '.join(sorted(unknown))}")
    if not isinstance(name, str) or not name:
        raise EnqueueError(f"a job name must be a non-empty string, got {name!r}")
    handler = get_handler(name)
    queue = get_queue(options.get("queue") or handler.queue or DEFAULT_QUEUE)

    if payload is None:
        payload = {}
    try:
        # Round-trip so the row holds exactly what the handler will receive.
        payload = json.loads(json.dumps(payload, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise EnqueueError(f"payload must be JSON-serializable: {exc}") from None

    priority = _pick(options.get("priority"), handler.priority, queue.default_priority)
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not (MIN_PRIORITY <= priority <= MAX_PRIORITY)
    ):
        raise EnqueueError(
            f"priority must be an integer from {MIN_PRIORITY} (CRITICAL) to {MAX_PRIORITY} "
            f"(BACKGROUND), got {priority!r}"
        )
    attempts = _pick(options.get("attempts"), handler.attempts, queue.default_attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise EnqueueError(f"attempts must be an integer >= 1, got {attempts!r}")
    backoff = options.get("backoff")
    backoff = (
        normalize_backoff(backoff)
        if backoff is not None
        else (handler.backoff or normalize_backoff(queue.default_backoff))
    )
    timeout = _pick(options.get("timeout"), handler.timeout, queue.default_timeout)
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise EnqueueError(f"timeout must be a positive number of seconds, got {timeout!r}")

    run_at = _run_at(options.get("delay"), options.get("run_at"), now)
    delayed = run_at is not None and run_at > now
    return Job(
        queue=queue,
        name=name,
        payload=payload,
        status=JobStatus.DELAYED if delayed else JobStatus.WAITING,
        priority=priority,
        max_attempts=attempts,
        backoff=backoff,
        timeout=timeout,
        run_at=run_at if delayed else None,
    )


def _pick(*values):
    return next((v for v in values if v is not None), None)


def _run_at(delay: Any, run_at: Any, now: datetime) -> datetime | None:
    if delay is not None and run_at is not None:
        raise EnqueueError("give either delay or run_at, not both")
    if delay is not None:
        if isinstance(delay, timedelta):
            seconds = delay.total_seconds()
        elif isinstance(delay, int | float) and not isinstance(delay, bool):
            seconds = float(delay)
        else:
            raise EnqueueError(f"delay must be seconds or a timedelta, got {delay!r}")
        if not math.isfinite(seconds) or seconds < 0:
            raise EnqueueError(f"delay must not be negative, got {delay!r}")
        return now + timedelta(seconds=seconds) if seconds > 0 else None
    if run_at is not None:
        if not isinstance(run_at, datetime):
            raise EnqueueError(f"run_at must be a datetime, got {run_at!r}")
        if timezone.is_naive(run_at):
            raise EnqueueError("run_at must be timezone-aware (e.g. timezone.now() + ...)")
        return run_at
    return None


def enqueue(name: str, payload: Any = None, **options: Any) -> Job:
    """Enqueue one job and return it.

    Options (keyword-only): ``queue``, ``priority`` (1..10), ``delay`` (seconds or
    timedelta), ``run_at`` (aware datetime), ``attempts``, ``backoff``, ``timeout``
    (seconds). Raises ``EnqueueError`` (``UnknownHandler``, ``UnknownQueue``) before
    writing anything. Workers are woken when the caller's transaction commits.
    """
    job = _build_job(name, payload, options, timezone.now())
    job.save(force_insert=True)
    if job.status == JobStatus.WAITING:
        ring_on_commit([job.queue.name])
    return job


def enqueue_many(specs: Iterable[Mapping[str, Any]]) -> list[Job]:
    """Enqueue many jobs with one INSERT. Each spec is a mapping with ``name``, ``payload``
    and any ``enqueue`` option. All are validated first: one bad spec writes nothing."""
    now = timezone.now()
    jobs = []
    for index, spec in enumerate(specs):
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise EnqueueError(f"job #{index}: each spec must be a mapping with a 'name'")
        options = {k: v for k, v in spec.items() if k not in ("name", "payload")}
        try:
            jobs.append(_build_job(spec["name"], spec.get("payload"), options, now))
        except EnqueueError as exc:
            raise type(exc)(f"job #{index}: {exc}") from None
    if not jobs:
        return []
    with transaction.atomic():
        Job.objects.bulk_create(jobs, batch_size=1000)
        ring_on_commit(j.queue.name for j in jobs if j.status == JobStatus.WAITING)
    return jobs


# --- queues -----------------------------------------------------------------------------


def _queue_for_update(name: str) -> Queue:
    queue = Queue.objects.filter(name=name).first()
    if queue is None:
        raise QueueNotFound(f"no queue is named {name!r}")
    return queue


def pause_queue(name: str) -> Queue:
    """Stop workers from starting jobs of this queue (active jobs finish)."""
    queue = _queue_for_update(name)
    Queue.objects.filter(pk=queue.pk).update(paused=True, updated_at=timezone.now())
    queue.refresh_from_db()
    return queue


def resume_queue(name: str) -> Queue:
    """Let workers take jobs of this queue again, and wake them."""
    queue = _queue_for_update(name)
    Queue.objects.filter(pk=queue.pk).update(paused=False, updated_at=timezone.now())
    queue.refresh_from_db()
    ring_on_commit([queue.name])
    return queue


# --- jobs -------------------------------------------------------------------------------

RETRYABLE = (JobStatus.FAILED, JobStatus.CANCELLED)
CANCELLABLE = (JobStatus.WAITING, JobStatus.DELAYED, JobStatus.BLOCKED, JobStatus.ACTIVE)


def _get_job(job_id: UUID | str) -> Job:
    try:
        job = Job.objects.select_related("queue").filter(pk=job_id).first()
    except Exception:  # a malformed UUID string
        job = None
    if job is None:
        raise JobNotFound(f"no job has id {job_id!r}")
    return job


def retry_job(job_id: UUID | str) -> Job:
    """Run a failed or cancelled job again, with a fresh set of attempts."""
    job = _get_job(job_id)
    updated = Job.objects.filter(pk=job.pk, status__in=RETRYABLE).update(
        status=JobStatus.WAITING,
        attempts_base=F("attempts_made"),
        run_at=None,
        progress=0,
        result=None,
        error="",
        finished_at=None,
    )
    if not updated:
        raise InvalidJobState(
            f"job {job.pk} is {job.status}; only failed or cancelled jobs can be retried"
        )
    ring_on_commit([job.queue.name])
    job.refresh_from_db()
    return job


def cancel_job(job_id: UUID | str) -> Job:
    """Cancel a job that has not finished. An active job's handler may check
    ``ctx.is_cancelled()``; whatever it returns afterwards is discarded."""
    job = _get_job(job_id)
    updated = Job.objects.filter(pk=job.pk, status__in=CANCELLABLE).update(
        status=JobStatus.CANCELLED, finished_at=timezone.now(), locked_until=None
    )
    if not updated:
        job.refresh_from_db()
        state = job.status if job.status in FINAL_STATUSES else "not cancellable"
        raise InvalidJobState(f"job {job.pk} is already {state}; it cannot be cancelled")
    job.refresh_from_db()
    return job
