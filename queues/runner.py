"""The runner: the only function django-q2 is ever asked to execute.

A doorbell message names a queue; ``drain`` claims that queue's runnable jobs from the
ledger in batches, runs their handlers and writes every outcome and attempt row back in
one transaction per batch. Per-job database round trips, not Python, are the cost to
avoid: a batch costs one claim statement plus one finalize transaction.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import traceback as tb
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from queues import doorbell
from queues.backoff import retry_delay_ms
from queues.claim import ClaimedJob, claim_jobs
from queues.context import JobContext
from queues.exceptions import PermanentError, UnknownHandler
from queues.finalize import Outcome, finalize
from queues.models import AttemptOutcome, JobStatus, Queue
from queues.registry import get_handler

logger = logging.getLogger("queues.runner")

# Seconds per job, per queue, as this process has seen them: sizes the next claim so a
# batch of slow jobs is not held by one worker while others idle.
_seconds_per_job: dict[str, float] = {}


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def batch_size(queue_name: str) -> int:
    cfg = settings.JOBPLATFORM
    seen = _seconds_per_job.get(queue_name)
    if seen is None:
        return 1
    return max(1, min(cfg["MAX_BATCH"], int(cfg["BATCH_TARGET_SECONDS"] / max(seen, 1e-6))))


def _learn(queue_name: str, seconds: float, jobs: int) -> None:
    per_job = seconds / jobs
    previous = _seconds_per_job.get(queue_name)
    _seconds_per_job[queue_name] = per_job if previous is None else 0.5 * previous + 0.5 * per_job


def drain(queue_name: str) -> int:
    """Run the queue's runnable jobs until it is empty (or the drain budget is spent).

    Returns the number of jobs run. Never raises for a job's failure: handlers' errors
    become job outcomes.
    """
    doorbell.bell_answered(queue_name)
    queue = Queue.objects.filter(name=queue_name).first()
    if queue is None:
        logger.warning("drain for unknown queue %r ignored", queue_name)
        return 0
    me = worker_id()
    deadline = time.monotonic() + settings.JOBPLATFORM["DRAIN_BUDGET"]
    processed = 0
    while True:
        limit = batch_size(queue_name)
        jobs = claim_jobs(queue=queue, worker=me, limit=limit)
        if not jobs:
            break
        if len(jobs) == limit:
            # Probably more where these came from: let another worker join in.
            doorbell.ring([queue_name])
        started = time.monotonic()
        outcomes = [run_job(job, queue_name=queue_name, worker=me) for job in jobs]
        finalize(outcomes, worker=me)
        _learn(queue_name, time.monotonic() - started, len(jobs))
        processed += len(jobs)
        if time.monotonic() >= deadline:
            doorbell.ring([queue_name])
            break
    return processed


def run_job(job: ClaimedJob, *, queue_name: str, worker: str) -> Outcome:
    """Run one claimed job's handler and decide what happens to the job next."""
    started_at = timezone.now()
    clock = time.perf_counter()
    ctx = JobContext(
        job_id=job.id, name=job.name, queue=queue_name, attempt=job.attempt, worker=worker
    )
    try:
        handler = get_handler(job.name)
        result = handler.func(ctx, job.payload)
        result_json = _result_json(result)
    except UnknownHandler as exc:
        return _failure(job, started_at, clock, exc, permanent=True)
    except PermanentError as exc:
        return _failure(job, started_at, clock, exc, permanent=True)
    except Exception as exc:
        return _failure(job, started_at, clock, exc, permanent=False)
    finished_at = started_at + timedelta(seconds=time.perf_counter() - clock)
    return Outcome(
        job=job,
        status=JobStatus.COMPLETED,
        attempt_outcome=AttemptOutcome.COMPLETED,
        started_at=started_at,
        finished_at=finished_at,
        result_json=result_json,
    )


class _ResultNotJSON(PermanentError):
    pass


def _result_json(result: object) -> str | None:
    if result is None:
        return None
    try:
        return json.dumps(result)
    except (TypeError, ValueError) as exc:
        raise _ResultNotJSON(
            f"the handler returned {type(result).__name__}, which is not JSON-serializable: {exc}"
        ) from exc


def _failure(
    job: ClaimedJob, started_at: datetime, clock: float, exc: BaseException, *, permanent: bool
) -> Outcome:
    finished_at = started_at + timedelta(seconds=time.perf_counter() - clock)
    error = f"{type(exc).__name__}: {exc}"
    trace = "".join(tb.format_exception(exc))
    if permanent or job.attempts_exhausted:
        if not permanent:
            used = job.attempt - job.attempts_base
            error = f"{error} (attempts exhausted: {used} of {job.max_attempts})"
        return Outcome(
            job=job,
            status=JobStatus.FAILED,
            attempt_outcome=AttemptOutcome.FAILED,
            started_at=started_at,
            finished_at=finished_at,
            error=error,
            traceback=trace,
        )
    delay = retry_delay_ms(job.backoff, job.attempt - job.attempts_base)
    return Outcome(
        job=job,
        status=JobStatus.DELAYED,
        attempt_outcome=AttemptOutcome.FAILED,
        started_at=started_at,
        finished_at=finished_at,
        error=error,
        traceback=trace,
        run_at=finished_at + timedelta(milliseconds=delay),
    )
