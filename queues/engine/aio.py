"""Async handlers: jobs that wait (on HTTP, SMTP, a gateway) run side by side.

A batch's jobs whose handler is ``async def`` run on the worker process's event loop, as
many at once as ``ASYNC_CONCURRENCY`` allows (and each handler's own ``concurrency``),
instead of one after the other. The rest of the contract is the sync runner's:

- timeout: ``asyncio.timeout`` cancels the handler's task at its deadline (``JobTimeout``);
- cancel: the keeper thread watches the running jobs; once the grace period is over it
  cancels the task (``JobCancelled``);
- a handler that blocks the loop (sync sleeps, CPU work) cannot be interrupted: past its
  deadline the keeper kills the process, as for a sync handler that ignores its interrupt
  (engine/runtime.py), and the jobs beside it go back to waiting;
- outcomes are written at least once a second and at the segment's end, through the same
  fenced ``finalize``.

While the loop runs, Django's ORM refuses sync calls on its thread: the runner's database
work runs on one thread beside it (engine/beside.py), and so do a handler's
``ctx.alog`` / ``ctx.aprogress`` / ``ctx.ais_cancelled``; for their own queries handlers
use ``asgiref``'s ``sync_to_async``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from queues.engine import beside
from queues.engine.claim import ClaimedJob
from queues.engine.context import JobContext
from queues.engine.outcomes import (
    Outcome,
    completed_outcome,
    error_outcome,
    result_json,
    undecidable_outcome,
)
from queues.engine.runtime import Running, runtime
from queues.exceptions import JobCancelled, JobTimeout
from queues.logcontext import current_job
from queues.registry import get_handler

logger = logging.getLogger("queues.engine.aio")

_loop: asyncio.AbstractEventLoop | None = None


def event_loop() -> asyncio.AbstractEventLoop:
    """This process's event loop, made on first use (after the fork, never before)."""
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
        runtime.loop = _loop
    return _loop


def run_segment(
    jobs: list[ClaimedJob],
    *,
    queue,
    worker: str,
    write: Callable[[], None],
    drop_cancelled: Callable[[], None],
    check_every: float,
    write_every: float,
) -> int:
    """Run ``jobs`` (all of async handlers, in claim order) side by side; returns how
    many started. ``write`` records the outcomes decided so far; ``drop_cancelled`` takes
    batchmates cancelled before their turn out of the batch. Both touch the database and
    run on the thread beside the loop."""
    loop = event_loop()
    return loop.run_until_complete(
        _segment(
            jobs,
            queue=queue,
            worker=worker,
            write=write,
            drop_cancelled=drop_cancelled,
            check_every=check_every,
            write_every=write_every,
        )
    )


async def _segment(jobs, *, queue, worker, write, drop_cancelled, check_every, write_every):
    cap = settings.JOBPLATFORM["ASYNC_CONCURRENCY"]
    slots = asyncio.Semaphore(cap)
    own: dict[str, asyncio.Semaphore] = {}
    tasks: list[asyncio.Task] = []
    finished = asyncio.Event()
    writer = asyncio.create_task(_write_every(write, finished, write_every))
    last_check = time.monotonic()
    try:
        for job in jobs:
            if runtime.should_stop():
                break
            handler = get_handler(job.name)
            mine = own.get(job.name)
            if mine is None:
                mine = own[job.name] = asyncio.Semaphore(min(handler.concurrency or cap, cap))
            await slots.acquire()
            await mine.acquire()
            if tasks and time.monotonic() - last_check >= check_every:
                await beside.run(drop_cancelled)
                last_check = time.monotonic()
            if runtime.should_stop() or not runtime.take(job.id):
                slots.release()
                mine.release()
                continue  # given back, or cancelled before its turn
            tasks.append(
                asyncio.create_task(_one(job, queue=queue, worker=worker, slots=(slots, mine)))
            )
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        finished.set()
        if tasks:
            # Never leave a task behind on the loop (an error above): each records its try.
            await asyncio.gather(*tasks, return_exceptions=True)
        # Handlers' own queries (sync_to_async) run on asgiref's thread: as after a
        # request, its connection is closed if it broke or aged out.
        await sync_to_async(close_old_connections)()
        await writer
    return len(tasks)


def close() -> None:
    """The worker is going idle: close the connection handlers' own queries opened on
    asgiref's thread."""
    if _loop is not None:
        _loop.run_until_complete(sync_to_async(_close_connection)())


def _close_connection() -> None:
    connection.close()


async def _write_every(write, finished: asyncio.Event, every: float) -> None:
    while not finished.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished.wait(), every)
        if not finished.is_set():
            await beside.run(write)


async def _one(job: ClaimedJob, *, queue, worker: str, slots) -> None:
    running = Running(job.id, job.attempt, queue.name, job.timeout)
    runtime.begin_async(running, asyncio.current_task())
    try:
        outcome = await run_async_job(job, queue=queue, worker=worker, running=running)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # never leave a started job without an outcome
        logger.exception("job %s: no outcome could be decided", job.id)
        outcome = undecidable_outcome(job, exc)
    finally:
        runtime.end_async(job.id)
        for slot in slots:
            slot.release()
    runtime.record(outcome)


async def run_async_job(job: ClaimedJob, *, queue, worker: str, running: Running) -> Outcome:
    """Run one claimed job's async handler and decide its outcome."""
    started_at = timezone.now()
    clock = time.perf_counter()

    def finished_at() -> datetime:
        return started_at + timedelta(seconds=time.perf_counter() - clock)

    ctx = JobContext(
        job_id=job.id, name=job.name, queue=queue.name, attempt=job.attempt, worker=worker
    )
    log_context = current_job.set(
        {"job_id": job.id, "queue": queue.name, "handler": job.name, "attempt": job.attempt}
    )
    deadline = None
    try:
        handler = get_handler(job.name)
        async with asyncio.timeout(job.timeout) as deadline:
            result = await handler.func(ctx, job.payload)
        encoded = result_json(result)
    except asyncio.CancelledError as cancelled:
        exc = cancelled  # a future the handler awaited was cancelled by someone else
        if running.interrupted is not None:  # the keeper's cancel (engine/runtime.py)
            asyncio.current_task().uncancel()
            exc = JobCancelled("the job was cancelled and did not stop within the grace period")
        return error_outcome(
            job, exc, started_at=started_at, finished_at=finished_at(), queue=queue
        )
    except TimeoutError as exc:
        if deadline is not None and deadline.expired():
            exc = JobTimeout(f"the job exceeded its timeout of {job.timeout:g}s")
        return error_outcome(
            job, exc, started_at=started_at, finished_at=finished_at(), queue=queue
        )
    except Exception as exc:
        return error_outcome(
            job, exc, started_at=started_at, finished_at=finished_at(), queue=queue
        )
    except BaseException as exc:
        # JobInterrupt from the handler's own code, say: an outcome like any other.
        if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
            raise
        return error_outcome(
            job, exc, started_at=started_at, finished_at=finished_at(), queue=queue
        )
    finally:
        current_job.reset(log_context)
    return completed_outcome(job, started_at=started_at, finished_at=finished_at(), result=encoded)
