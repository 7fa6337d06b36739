"""The runner: the only function django-q2 is ever asked to execute.

A doorbell message names a queue; ``drain`` claims that queue's runnable jobs from the
ledger in batches, runs their handlers and writes every outcome and attempt row back in
one transaction per batch. Per-job database round trips, not Python, are the cost to
avoid: a batch costs one claim statement plus one finalize transaction.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing.util
import time
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone
from psycopg.pq import TransactionStatus

from queues import doorbell, metrics, signals
from queues.engine import aio, beside
from queues.engine.claim import ClaimedJob, claim_jobs
from queues.engine.context import JobContext
from queues.engine.finalize import finalize
from queues.engine.identity import worker_id
from queues.engine.outcomes import (
    Outcome,
    completed_outcome,
    error_outcome,
    result_json,
    undecidable_outcome,
)
from queues.engine.recovery import release_unstarted
from queues.engine.runtime import Running, runtime
from queues.exceptions import (
    JobInterrupt,
    UnknownHandler,
)
from queues.logcontext import current_job
from queues.models import Job, JobStatus, Queue
from queues.registry import get_handler
from queues.services.notify import job_status_changed

logger = logging.getLogger("queues.engine.runner")

# Seconds per job, per queue, as this process has seen them: sizes the next claim so a
# batch of slow jobs is not held by one worker while others idle.
_seconds_per_job: dict[str, float] = {}
# A rate-limited drain waits for the next window only if it opens this soon.
MAX_RATE_WAIT = 1.0
# Outcomes are written at least this often while a batch runs (a batch of short jobs is
# written once, at its end).
WRITE_EVERY_SECONDS = 1.0
# How often a running batch looks for batchmates cancelled before their turn.
CANCEL_CHECK_SECONDS = 0.05
CANCEL_CHECK_AHEAD = 256


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
        _flush_metrics_on_exit()
        try:
            processed = _drain(queue_name)
        finally:
            beside.close()
            aio.close()
        metrics.flush()
        return processed
    except (OperationalError, InterfaceError):
        # Database away: claimed jobs keep their lock until stall recovery; try later.
        logger.warning("drain of %s stopped: database unavailable", queue_name, exc_info=True)
        connection.close()
        return 0


_exit_hook = None


def _flush_metrics_on_exit() -> None:
    """A drain writes metrics at most once a second, and django-q2 ends its worker
    processes (every ``recycle`` tasks) without atexit: what is pending then is written
    as the process exits (multiprocessing runs its finalizers on a normal exit)."""
    global _exit_hook
    if _exit_hook is None and multiprocessing.parent_process() is not None:
        _exit_hook = multiprocessing.util.Finalize(None, _flush_pending, exitpriority=50)


def _flush_pending() -> None:
    try:
        metrics.flush(force=True)
    except Exception:
        logger.warning("could not write the last metrics of this process", exc_info=True)


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
        claimed = len(jobs)
        # (Only with Redis: its doorbell rings for every job enqueued once a drain has
        # answered it; the embedded one may skip a ring while messages are in flight.)
        short = (
            claimed < limit
            and not (queue.rate_limit_max or queue.concurrency)
            and doorbell.redis_enabled()
        )
        jobs = _stalled_alone(jobs, worker=me)
        if signals.job_started.has_listeners():
            signals.send_on_commit(
                signals.job_started,
                [
                    {"job_id": j.id, "queue": queue_name, "name": j.name, "attempt": j.attempt}
                    for j in jobs
                ],
            )
        _tell_started(jobs)
        if len(jobs) == limit:
            # Probably more where these came from: let another worker join in.
            doorbell.ring_quietly([queue_name])
        started = time.monotonic()
        ran = _run_batch(jobs, queue=queue, worker=me)
        processed += ran
        _learn(queue_name, time.monotonic() - started, len(jobs))
        metrics.flush()
        if time.monotonic() >= deadline:
            doorbell.ring_quietly([queue_name])
            break
        # Fewer than asked of a queue with no limit, all of them run here, none with
        # dependants to release: the queue ran dry. The drain ends without another claim
        # to find that out (a trickle of jobs costs one claim each): any job enqueued since
        # the bell was answered rang it again, and a job given back rings for itself.
        if short and ran == claimed and not any(j.has_dependants for j in jobs):
            break
    return processed


def _stalled_alone(jobs: list[ClaimedJob], *, worker: str) -> list[ClaimedJob]:
    """A job that has stalled before runs in a batch of its own: if it takes its worker
    down again, it is then known to be the one that did (engine/recovery.py). The batch
    is cut before it, or to it alone; the rest go back to waiting, never started."""
    if len(jobs) < 2:
        return jobs
    first = next((i for i, j in enumerate(jobs) if j.stalled_count), None)
    if first is None:
        return jobs
    keep = jobs[: max(first, 1)]
    release_unstarted(ids=[j.id for j in jobs[len(keep) :]], worker=worker)
    return keep


def _tell_started(jobs: list[ClaimedJob]) -> None:
    hooked = [j.id for j in jobs if j.webhook_url]
    if not hooked:
        return
    try:
        with transaction.atomic():
            job_status_changed(hooked, webhook_ids=hooked)
    except (OperationalError, InterfaceError):
        raise
    except Exception:
        # A webhook that cannot be queued (its queue deleted, say) never keeps the jobs
        # themselves from running.
        logger.exception("could not queue the 'active' webhooks of %d jobs", len(hooked))


def _run_batch(jobs: list[ClaimedJob], *, queue: Queue, worker: str) -> int:
    """Run a claimed batch. Outcomes are written at the batch's end, or as soon as a second
    has passed since the last write; while one job runs long, the keeper writes those
    decided and gives back the batchmates not started (see Runtime._put_away_behind)."""
    runtime.begin_batch(worker=worker, ids=[j.id for j in jobs], lock_duration=queue.lock_duration)
    ran = 0
    last_write = last_cancel_check = time.monotonic()
    try:
        index = 0
        while index < len(jobs):
            if runtime.should_stop():
                break
            job = jobs[index]
            if _is_async(job.name):
                # This job and the async ones right after it run side by side.
                end = index + 1
                while end < len(jobs) and _is_async(jobs[end].name):
                    end += 1
                ran += aio.run_segment(
                    jobs[index:end],
                    queue=queue,
                    worker=worker,
                    write=lambda: _finalize_with_retry(runtime.take_pending(), worker=worker),
                    drop_cancelled=lambda: _drop_cancelled(worker),
                    check_every=CANCEL_CHECK_SECONDS,
                    write_every=WRITE_EVERY_SECONDS,
                )
                index = end
                continue
            now = time.monotonic()
            if index and now - last_cancel_check >= CANCEL_CHECK_SECONDS:
                _drop_cancelled(worker)
                last_cancel_check = now
            index += 1
            if not runtime.take(job.id):
                continue  # given back, or cancelled before its turn
            try:
                outcome = run_job(job, queue_name=queue.name, worker=worker, queue=queue)
            except Exception as exc:
                logger.exception("job %s: no outcome could be decided", job.id)
                outcome = undecidable_outcome(job, exc)
            runtime.record(outcome)
            ran += 1
            if time.monotonic() - last_write >= WRITE_EVERY_SECONDS:
                _finalize_with_retry(runtime.take_pending(), worker=worker)
                last_write = time.monotonic()
    finally:
        try:
            _finalize_with_retry(runtime.take_pending(), worker=worker)
        finally:
            rest = runtime.take_unstarted()
            runtime.end_batch()
            if rest:
                release_unstarted(ids=rest, worker=worker)
    return ran


def _is_async(name: str) -> bool:
    try:
        return get_handler(name).is_async
    except UnknownHandler:
        return False  # run_job gives it its outcome


def _drop_cancelled(worker: str) -> None:
    """Batchmates cancelled while they waited their turn never run: they leave the batch
    and this worker lets go of them, giving back the attempt they never made."""
    # The next jobs to run are enough: the check runs again before the later ones.
    waiting = runtime.not_started()[:CANCEL_CHECK_AHEAD]
    if not waiting:
        return
    cancelled = set(
        Job.objects.filter(id__in=waiting, status=JobStatus.CANCELLED).values_list("id", flat=True)
    )
    if cancelled:
        runtime.drop_unstarted(cancelled)
        Job.objects.filter(id__in=cancelled, status=JobStatus.CANCELLED, worker=worker).update(
            worker="", locked_until=None, attempts_made=F("attempts_made") - 1
        )


def _finalize_with_retry(outcomes: list[Outcome], *, worker: str) -> None:
    # The jobs ran: keep trying to record that (e.g. across a Postgres restart) rather
    # than let them stall and run again.
    if not outcomes:
        return
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


def run_job(
    job: ClaimedJob, *, queue_name: str, worker: str, queue: Queue | None = None
) -> Outcome:
    """Run one claimed job's handler and decide what happens to the job next. Whatever
    the handler does, this returns the job's outcome (a timeout or cancel can interrupt
    only the handler's own code; see Runtime._on_alarm)."""
    started_at = timezone.now()
    clock = time.perf_counter()
    ctx = JobContext(
        job_id=job.id, name=job.name, queue=queue_name, attempt=job.attempt, worker=worker
    )
    runtime.begin_job(Running(job.id, job.attempt, queue_name, job.timeout))
    log_context = current_job.set(
        {"job_id": job.id, "queue": queue_name, "handler": job.name, "attempt": job.attempt}
    )
    try:
        handler = get_handler(job.name)
        runtime.enter_handler()
        try:
            result = handler.func(ctx, job.payload)
        finally:
            runtime.leave_handler()
        encoded = result_json(result)
    except (JobInterrupt, Exception) as exc:
        if isinstance(exc, JobInterrupt):
            # It may have landed inside a database call: that connection may still be
            # busy with the query. Never hand it to the next job.
            _drop_connection(cancel=True)
        elif isinstance(exc, OperationalError | InterfaceError):
            _drop_connection(cancel=False)
        finished_at = started_at + timedelta(seconds=time.perf_counter() - clock)
        return error_outcome(job, exc, started_at=started_at, finished_at=finished_at, queue=queue)
    finally:
        runtime.end_job()
        current_job.reset(log_context)
    finished_at = started_at + timedelta(seconds=time.perf_counter() - clock)
    return completed_outcome(job, started_at=started_at, finished_at=finished_at, result=encoded)


def _drop_connection(*, cancel: bool) -> None:
    """After an interrupt or a lost connection: cancel a query still running for the
    handler, and never hand this connection to the next job."""
    raw = connection.connection
    if raw is not None and cancel:
        with contextlib.suppress(Exception):
            if raw.info.transaction_status == TransactionStatus.ACTIVE:
                raw.cancel()
    if connection.in_atomic_block:
        return  # the caller's own transaction (a test drains inside one): it decides
    connection.close()
