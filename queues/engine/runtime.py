"""The worker-process side of reliability: lock renewal, hard timeouts, forced cancel and
graceful stop.

Each django-q2 worker process that runs drains gets one ``Runtime``. A keeper thread
renews the locks of the batch the process holds (so a long job never looks stalled while
its process lives), watches the running job for cancellation, and enforces the hard limits:

- timeout: ``SIGALRM`` (``setitimer``) interrupts the handler with ``JobTimeout``;
- cancel: once a job is cancelled the handler has ``CANCEL_GRACE`` seconds to notice
  ``ctx.is_cancelled()``; then it is interrupted with ``JobCancelled``;
- a handler that swallows the interrupt (or is stuck in C code) is killed with its process
  after ``HARD_KILL_GRACE``: the keeper records the attempt first, releases the rest of
  the batch, and django-q2 starts a fresh worker process.

``runworker`` creates the shared ``stopping`` event and ``activity`` stamp before forking
its cluster, so every worker process sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction

from queues import doorbell, metrics
from queues.engine.clock import database_now_plus
from queues.engine.finalize import finalize
from queues.engine.outcomes import killed_outcome
from queues.engine.recovery import release_unstarted, requeue_from_workers
from queues.exceptions import JobCancelled, JobTimeout
from queues.locks import lock_jobs
from queues.models import Job, JobStatus

logger = logging.getLogger("queues.engine.runtime")

# Set by runworker (queues.engine.supervisor) before the cluster forks.
shared_stopping = None  # multiprocessing.Event: stop taking jobs
shared_activity = None  # multiprocessing.Value("d"): last sign of life (time.time())

KEEPER_TICK = 0.5
# A job that has run this long gets its batch put away behind it: the outcomes already
# decided are written, and the batchmates not started go back to waiting for idle workers.
LONG_JOB_SECONDS = 0.5
# How long the keeper waits for a worker's event loop to answer before it holds it blocked.
LOOP_PROBE_SECONDS = 0.5


@dataclass
class Running:
    job_id: UUID
    attempt: int
    queue: str
    timeout: float | None
    started: float = field(default_factory=time.monotonic)
    cancel_seen: float | None = None
    interrupted: float | None = None


class Runtime:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.worker = ""
        self.batch: set[UUID] = set()
        # Outcomes decided but not yet written, and the batch's jobs not yet started (in
        # order). Both are shared with the keeper thread, under the lock.
        self.pending: list = []
        # Insertion-ordered, so that taking one job is O(1) in a batch of a thousand.
        self.unstarted: dict[UUID, None] = {}
        # True only while a handler's own code runs: interrupts land there or nowhere.
        self.in_handler = False
        self.lock_duration = 30
        self.running: Running | None = None
        self.interrupt_reason: str | None = None
        # Jobs of async handlers running side by side on the event loop (engine/aio.py),
        # each with its task, and when the last of them started.
        self.loop = None
        self.async_running: dict[UUID, tuple[Running, object]] = {}
        self.last_async_start = 0.0
        self._keeper: threading.Thread | None = None
        self._next_extend = 0.0
        self._alarm_installed = False

    # --- shared state ---------------------------------------------------------------

    def should_stop(self) -> bool:
        return shared_stopping is not None and shared_stopping.is_set()

    def touch(self) -> None:
        if shared_activity is not None:
            shared_activity.value = time.time()

    # --- batch and job bookkeeping (called from the drain, main thread) -------------

    def begin_batch(self, *, worker: str, ids: list[UUID], lock_duration: int) -> None:
        with self._lock:
            self.worker = worker
            self.batch = set(ids)
            self.pending = []
            self.unstarted = dict.fromkeys(ids)
            self.lock_duration = lock_duration
            self._next_extend = time.monotonic() + max(lock_duration / 3, 0.5)
        self._ensure_keeper()
        self.touch()

    def end_batch(self) -> None:
        with self._lock:
            self.batch = set()
            self.pending = []
            self.unstarted = {}
            self.running = None
        self.touch()

    def take(self, job_id: UUID) -> bool:
        """Start ``job_id``: False when the keeper already gave it back."""
        with self._lock:
            if job_id not in self.unstarted:
                return False
            del self.unstarted[job_id]
            return True

    def not_started(self) -> list[UUID]:
        """The batch's jobs not started yet, in the order they will run."""
        with self._lock:
            return list(self.unstarted)

    def drop_unstarted(self, ids: set[UUID]) -> None:
        with self._lock:
            for job_id in ids:
                self.unstarted.pop(job_id, None)

    def take_unstarted(self) -> list[UUID]:
        with self._lock:
            rest, self.unstarted = list(self.unstarted), {}
            return rest

    def record(self, outcome) -> None:
        """An outcome of this batch, not yet written."""
        with self._lock:
            self.pending.append(outcome)

    def take_pending(self) -> list:
        with self._lock:
            outcomes, self.pending = self.pending, []
            return outcomes

    def give_back(self, outcomes: list) -> None:
        """Outcomes that could not be written yet: the drain writes them at the batch's end."""
        with self._lock:
            self.pending[:0] = outcomes

    def enter_handler(self) -> None:
        self.in_handler = True

    def leave_handler(self) -> None:
        self.in_handler = False

    def begin_job(self, running: Running) -> None:
        self._install_alarm()
        with self._lock:
            self.running = running
            self.interrupt_reason = None
        if running.timeout and self._alarm_installed:
            signal.setitimer(signal.ITIMER_REAL, running.timeout)

    def end_job(self) -> None:
        # No interrupt may land while the job is being put away: block SIGALRM, disarm,
        # clear; a signal still pending then finds no running job and does nothing.
        blocked = self._alarm_installed and threading.current_thread() is threading.main_thread()
        if blocked:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        try:
            if self._alarm_installed:
                signal.setitimer(signal.ITIMER_REAL, 0)
            with self._lock:
                self.running = None
                self.interrupt_reason = None
        finally:
            if blocked:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})

    def begin_async(self, running: Running, task) -> None:
        with self._lock:
            self.async_running[running.job_id] = (running, task)
            self.last_async_start = time.monotonic()

    def end_async(self, job_id: UUID) -> None:
        with self._lock:
            self.async_running.pop(job_id, None)

    # --- interrupts ---------------------------------------------------------------------

    def _install_alarm(self) -> None:
        if self._alarm_installed or threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGALRM, self._on_alarm)
        self._alarm_installed = True

    def _on_alarm(self, signum, frame) -> None:
        # Only the handler's own code is interrupted. Anywhere else in the job's step (an
        # exception being formatted, a result being encoded, the outcome being built) an
        # interrupt would escape the step and lose the batch; there the job is already
        # ending, so the signal is dropped.
        if not self.in_handler:
            return
        with self._lock:
            running, reason = self.running, self.interrupt_reason
            self.interrupt_reason = None
            if running is not None:
                running.interrupted = time.monotonic()
        if running is None:
            return
        if reason == "cancelled":
            raise JobCancelled("the job was cancelled and did not stop within the grace period")
        raise JobTimeout(f"the job exceeded its timeout of {running.timeout:g}s")

    # --- keeper thread ------------------------------------------------------------------

    def _ensure_keeper(self) -> None:
        if self._keeper is not None and self._keeper.is_alive():
            return
        self._keeper = threading.Thread(target=self._keep, name="jobplatform-keeper", daemon=True)
        self._keeper.start()

    def _keep(self) -> None:
        while True:
            time.sleep(KEEPER_TICK)
            try:
                self._tick()
            except Exception:
                logger.exception("lock keeper tick failed")
                connection.close()

    def _tick(self) -> None:
        with self._lock:
            batch, running, worker = set(self.batch), self.running, self.worker
            lock_duration = self.lock_duration
            side_by_side = list(self.async_running.values())
        if not batch:
            # Idle: the metrics the last drain left pending (it writes them at most once a
            # second), then hold no database connection (the worker's own one does the work).
            if metrics.pending():
                metrics.flush()
            if connection.connection is not None:
                connection.close()
            return
        self.touch()
        now = time.monotonic()
        cfg = settings.JOBPLATFORM
        # The watchdog first, before any database work: a statement that waits (on a
        # database that is away, on rows someone holds) must not keep the kill from coming.
        if running is not None and self._must_kill(running, now, cfg):
            self._kill_self(running, None, batch, worker)
            return
        overdue = [job for job, _ in side_by_side if self._must_kill(job, now, cfg)]
        if overdue:
            self._kill_self(*self._blame(overdue[0], side_by_side, now), batch, worker)
            return
        if now >= self._next_extend:
            self._extend_locks(batch, worker, lock_duration)
            self._next_extend = now + max(lock_duration / 3, 0.5)
        if side_by_side:
            self._watch_side_by_side(side_by_side, now, cfg, worker)
            return
        if running is not None and (
            now - running.started >= LONG_JOB_SECONDS or self.should_stop()
        ):
            self._put_away_behind(running, worker)
        if running is None:
            return
        # Short jobs never cost a query here; from a second on, look for a cancel each tick.
        watch = now - running.started >= 1.0
        if watch and running.cancel_seen is None and self._is_cancelled(running.job_id):
            running.cancel_seen = now
        cancel_due = running.cancel_seen is not None and running.interrupted is None
        if cancel_due and now - running.cancel_seen >= cfg["CANCEL_GRACE"]:
            self._interrupt(running, "cancelled")
        if self._must_kill(running, now, cfg):
            self._kill_self(running, None, batch, worker)

    def _blame(self, overdue: Running, side_by_side: list, now: float):
        """Which async job to kill the process over: if the loop answers, the overdue job
        itself (it swallowed its cancel); if it does not, the job whose code is running on
        it (the overdue one may only be waiting for the loop to run it)."""
        answered = threading.Event()
        try:
            self.loop.call_soon_threadsafe(answered.set)
        except (AttributeError, RuntimeError):  # no loop, or it closed meanwhile
            return overdue, "overdue"
        if answered.wait(LOOP_PROBE_SECONDS):
            return overdue, "overdue"
        current = asyncio.current_task(self.loop)
        for job, task in side_by_side:
            if task is current:
                return job, "blocking" if job is not overdue else "overdue-blocking"
        return overdue, "overdue"

    def _watch_side_by_side(self, jobs: list, now: float, cfg: dict, worker: str) -> None:
        """The keeper's watch over async jobs: their cancels (the task is cancelled once the
        grace period is over), and the batchmates waiting behind them when none has started
        for a while (every slot is taken by long jobs) or the worker is stopping."""
        if self.should_stop() or now - self.last_async_start >= LONG_JOB_SECONDS:
            self._put_away(worker, lambda: bool(self.async_running))
        watch = [
            job.job_id for job, _ in jobs if job.cancel_seen is None and now - job.started >= 1.0
        ]
        if watch:
            cancelled = set(
                Job.objects.filter(pk__in=watch, status=JobStatus.CANCELLED).values_list(
                    "id", flat=True
                )
            )
            for job, _ in jobs:
                if job.job_id in cancelled:
                    job.cancel_seen = now
        for job, task in jobs:
            due = job.cancel_seen is not None and job.interrupted is None
            if due and now - job.cancel_seen >= cfg["CANCEL_GRACE"] and self.loop is not None:
                job.interrupted = now  # before the cancel lands: the task reads it
                self.loop.call_soon_threadsafe(task.cancel)

    @staticmethod
    def _must_kill(running: Running, now: float, cfg: dict) -> bool:
        """Past its timeout by HARD_KILL_GRACE, or its interrupt ignored that long."""
        overdue = running.timeout is not None and now - running.started >= (
            running.timeout + cfg["HARD_KILL_GRACE"]
        )
        ignored = running.interrupted is not None and (
            now - running.interrupted >= cfg["HARD_KILL_GRACE"]
        )
        return overdue or ignored

    def _extend_locks(self, batch: set[UUID], worker: str, lock_duration: int) -> None:
        # SKIP LOCKED, in id order (queues/locks.py): this never waits on a row. A row
        # that finalize holds, in this process or another, is being finished anyway; one
        # that the handler's own transaction holds must not keep the keeper from
        # watching for cancels and timeouts. A skipped row is renewed at a later tick.
        # The database's clock, as at the claim.
        with transaction.atomic():
            held = Job.objects.filter(
                id__in=batch, status__in=[JobStatus.ACTIVE, JobStatus.CANCELLED], worker=worker
            )
            Job.objects.filter(
                id__in=lock_jobs(held, skip_locked=True, no_key=True).values("id")
            ).update(locked_until=database_now_plus(lock_duration))

    def _is_cancelled(self, job_id: UUID) -> bool:
        # A plain read: it never waits on a row lock (a handler's transaction holding its
        # job's row, a cancel in flight); it sees the last committed status.
        return Job.objects.filter(pk=job_id, status=JobStatus.CANCELLED).exists()

    def _interrupt(self, running: Running, reason: str) -> None:
        with self._lock:
            if self.running is not running:
                return  # that job ended meanwhile: never interrupt the next one
            if not self.in_handler:
                return  # the handler already returned: the job is ending anyway
            self.interrupt_reason = reason
            signal.pthread_kill(threading.main_thread().ident, signal.SIGALRM)

    def _put_away_behind(self, running: Running, worker: str) -> None:
        """While a job runs long (or the worker is stopping): write the outcomes already
        decided, and give back the batchmates not started, so that neither waits for it."""
        self._put_away(worker, lambda: self.running is running)

    def _put_away(self, worker: str, still) -> None:
        with self._lock:
            if not still():
                return
            outcomes, self.pending = self.pending, []
            rest, self.unstarted = list(self.unstarted), {}
        if outcomes:
            try:
                finalize(outcomes, worker=worker)
            except Exception:
                logger.warning("could not write %d outcomes yet", len(outcomes), exc_info=True)
                connection.close()
                self.give_back(outcomes)
            else:
                # Their metrics too: the drain may already have flushed its last ones.
                with contextlib.suppress(Exception):
                    metrics.flush(force=True)
        if rest:
            try:
                release_unstarted(ids=rest, worker=worker)
            except Exception:
                logger.warning("could not give back %d jobs yet", len(rest), exc_info=True)
                connection.close()
                with self._lock:
                    self.unstarted = {**dict.fromkeys(rest), **self.unstarted}

    def _kill_self(self, running: Running, how: str | None, batch: set[UUID], worker: str) -> None:
        """The handler ignored its interrupt: record the attempt, release the rest of the
        batch, and end this process (django-q2 replaces it). ``how`` is None for a sync
        handler; for an async one, what ``_blame`` found. An async handler that blocks its
        event loop takes the async jobs running beside it down too: they go back to
        waiting, their try recorded as a stall that is not counted."""
        side_by_side = how is not None
        if how == "blocking":
            reason = (
                "blocked its worker's event loop, so that a job beside it could not be "
                "stopped: its worker process was killed"
            )
        else:
            blocked = " (it blocked its worker's event loop)" if how == "overdue-blocking" else ""
            reason = (
                f"cancelled, and the handler did not stop{blocked}: its worker process was killed"
                if running.cancel_seen is not None
                else f"exceeded its timeout of {running.timeout:g}s and did not stop{blocked}: "
                "its worker process was killed"
            )
        logger.error("job %s %s", running.job_id, reason)
        with self._lock:
            if side_by_side and running.job_id not in self.async_running:
                return  # it ended meanwhile
            if not side_by_side and self.running is not running:
                return  # it ended meanwhile
            done, self.pending = self.pending, []
            rest, self.unstarted = list(self.unstarted), {}
        try:
            # The jobs of this batch that already ran are recorded with the killed one;
            # only those never started go back to waiting.
            with transaction.atomic():
                if connection.vendor == "postgresql":
                    # The handler's own transaction may hold its job's row: never wait on
                    # it for long, the kill below must happen (the sweep recovers the rest).
                    with connection.cursor() as cursor:
                        cursor.execute("SET LOCAL lock_timeout = '2s'")
                killed = killed_outcome(running=running, reason=reason)
                finalize([*done, *([killed] if killed else [])], worker=worker)
                release_unstarted(ids=rest, worker=worker)
                if side_by_side:
                    requeue_from_workers(
                        workers=[worker],
                        reason=f"its worker process was killed: job {running.job_id} beside "
                        "it could not be stopped",
                        blameless=True,
                    )
            # The jobs given back ring for themselves; the ringer thread dies with us.
            doorbell.flush()
        except Exception:
            logger.exception("could not record the batch of the killed job %s", running.job_id)
        finally:
            os.kill(os.getpid(), signal.SIGKILL)


runtime = Runtime()
