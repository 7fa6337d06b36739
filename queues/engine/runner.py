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
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone

from queues import doorbell, metrics, signals
from queues.engine.claim import ClaimedJob, claim_jobs
from queues.engine.context import JobContext
from queues.engine.finalize import finalize
from queues.engine.outcomes import Outcome, clean_text, failure_outcome
from queues.engine.recovery import release_unstarted
from queues.engine.runtime import Running, runtime
from queues.exceptions import JobCancelled, JobTimeout, PermanentError, RateLimited, UnknownHandler
from queues.logcontext import current_job
from queues.models import AttemptOutcome, JobStatus, Queue
from queues.registry import get_handler
from queues.services.notify import job_status_changed

logger = logging.getLogger("queues.engine.runner")

# Seconds per job, per queue, as this process has seen them: sizes the next claim so a
# batch of slow jobs is not held by one worker while others idle.
_seconds_per_job: dict[str, float] = {}
# A rate-limited drain waits for the next window only if it opens this soon.
MAX_RATE_WAIT = 1.0


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
    """Run the queue's runnable jobs until it is empty, the drain budget is spent or the
    worker is stopping. Returns the number of jobs run. A handler's failure never raises
    here; it becomes the job's outcome."""
    runtime.touch()
    try:
        doorbell.bell_answered(queue_name)
    except Exception:
        logger.warning("could not clear the doorbell of %s", queue_name, exc_info=True)
    try:
        processed = _drain(queue_name)
        metrics.flush(force=True)
        return processed
    except (OperationalError, InterfaceError):
        # Database away: claimed jobs keep their lock until stall recovery; try later.
        logger.warning("drain of %s stopped: database unavailable", queue_name, exc_info=True)
        connection.close()
        return 0


def _drain(queue_name: str) -> int:
    queue = Queue.objects.filter(name=queue_name).first()
    if queue is None:
        logger.warning("drain for unknown queue %r ignored", queue_name)
        return 0
    me = worker_id()
    deadline = time.monotonic() + settings.JOBPLATFORM["DRAIN_BUDGET"]
    processed = 0
    while not runtime.should_stop():
        limit = batch_size(queue_name)
        claim = claim_jobs(queue=queue, worker=me, limit=limit)
        jobs = claim.jobs
        runtime.touch()
        if not jobs:
            wait = claim.retry_after
            if wait is not None and wait <= min(MAX_RATE_WAIT, deadline - time.monotonic()):
                time.sleep(wait)
                continue
            break
        if signals.job_started.has_listeners():
            signals.send_on_commit(
                signals.job_started,
                [
                    {"job_id": j.id, "queue": queue_name, "name": j.name, "attempt": j.attempt}
                    for j in jobs
                ],
            )
        hooked = [j.id for j in jobs if j.webhook_url]
        if hooked:
            job_status_changed(hooked, webhook_ids=hooked)
        if len(jobs) == limit:
            # Probably more where these came from: let another worker join in.
            doorbell.ring_quietly([queue_name])
        started = time.monotonic()
        processed += _run_batch(jobs, queue=queue, worker=me)
        _learn(queue_name, time.monotonic() - started, len(jobs))
        metrics.flush()
        if time.monotonic() >= deadline:
            doorbell.ring_quietly([queue_name])
            break
    return processed


def _run_batch(jobs: list[ClaimedJob], *, queue: Queue, worker: str) -> int:
    runtime.begin_batch(worker=worker, ids=[j.id for j in jobs], lock_duration=queue.lock_duration)
    outcomes = []
    try:
        for index, job in enumerate(jobs):
            if runtime.should_stop():
                release_unstarted(ids=[j.id for j in jobs[index:]], worker=worker)
                break
            outcome = run_job(job, queue_name=queue.name, worker=worker)
            outcomes.append(outcome)
            runtime.record(outcome)
        _finalize_with_retry(outcomes, worker=worker)
    finally:
        runtime.end_batch()
    return len(outcomes)


def _finalize_with_retry(outcomes: list[Outcome], *, worker: str) -> None:
    # The jobs ran: keep trying to record that (e.g. across a Postgres restart) rather
    # than let them stall and run again.
    give_up = time.monotonic() + settings.JOBPLATFORM["FINALIZE_RETRY_SECONDS"]
    pause = 0.2
    while True:
        try:
            finalize(outcomes, worker=worker)
            return
        except (OperationalError, InterfaceError):
            connection.close()
            if time.monotonic() >= give_up:
                raise
            logger.warning("could not record %d outcomes; retrying", len(outcomes))
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def run_job(job: ClaimedJob, *, queue_name: str, worker: str) -> Outcome:
    """Run one claimed job's handler and decide what happens to the job next."""
    started_at = timezone.now()
    clock = time.perf_counter()

    def fail(exc: BaseException, *, permanent: bool = False, outcome=AttemptOutcome.FAILED):
        finished_at = started_at + timedelta(seconds=time.perf_counter() - clock)
        return failure_outcome(
            job,
            started_at=started_at,
            finished_at=finished_at,
            error=clean_text(f"{type(exc).__name__}: {exc}"),
            traceback=clean_text("".join(tb.format_exception(exc))),
            attempt_outcome=outcome,
            permanent=permanent,
        )

    ctx = JobContext(
        job_id=job.id, name=job.name, queue=queue_name, attempt=job.attempt, worker=worker
    )
    runtime.begin_job(Running(job.id, job.attempt, queue_name, job.timeout))
    log_context = current_job.set(
        {"job_id": job.id, "queue": queue_name, "handler": job.name, "attempt": job.attempt}
    )
    try:
        handler = get_handler(job.name)
        result = handler.func(ctx, job.payload)
        result_json = _result_json(result)
    except JobTimeout as exc:
        return fail(exc, outcome=AttemptOutcome.TIMEOUT)
    except JobCancelled as exc:
        return fail(exc, permanent=True, outcome=AttemptOutcome.CANCELLED)
    except RateLimited as exc:
        now = timezone.now()
        return Outcome(
            job=job,
            status=JobStatus.DELAYED,
            attempt_outcome=AttemptOutcome.FAILED,
            started_at=started_at,
            finished_at=now,
            error=str(exc),
            run_at=now + timedelta(seconds=exc.retry_in),
            counted=False,
        )
    except (UnknownHandler, PermanentError) as exc:
        return fail(exc, permanent=True)
    except Exception as exc:
        return fail(exc)
    finally:
        runtime.end_job()
        current_job.reset(log_context)
    return Outcome(
        job=job,
        status=JobStatus.COMPLETED,
        attempt_outcome=AttemptOutcome.COMPLETED,
        started_at=started_at,
        finished_at=started_at + timedelta(seconds=time.perf_counter() - clock),
        result_json=result_json,
    )


class _ResultNotJSON(PermanentError):
    pass


def _result_json(result: object) -> str | None:
    if result is None:
        return None
    try:
        text = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _ResultNotJSON(
            f"the handler returned {type(result).__name__}, which is not JSON-serializable: {exc}"
        ) from exc
    if "\\u0000" in text:
        raise _ResultNotJSON("the handler's result contains a NUL character (\\u0000)")
    return text
