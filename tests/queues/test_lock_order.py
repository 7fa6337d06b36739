"""Row locks in one order (L4), and a keeper that no row lock can blind (M12).

Real concurrent transactions: each side runs in its own thread on its own connection, and
the test moves them along by watching ``pg_stat_activity`` for the moment each one waits
on a lock. A third connection, held by the test, decides who waits for whom."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from queues import enqueue
from queues.engine.claim import ClaimedJob
from queues.engine.finalize import finalize
from queues.engine.outcomes import Outcome
from queues.engine.runtime import Running, Runtime
from queues.models import AttemptOutcome, Job, JobStatus, Queue
from queues.services import queues as queue_services
from queues.services.jobs import cancel_jobs
from queues.services.queues import update_queue
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = "host:1:token"


class Side:
    """``work`` in a thread of its own, on its own database connection."""

    def __init__(self, work: Callable[[], object]):
        self.result: object = None
        self.error: BaseException | None = None
        self.pid: int | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._thread.start()
        assert self._started.wait(10), "the thread did not connect"

    def _run(self, work: Callable[[], object]) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                self.pid = cursor.fetchone()[0]
            self._started.set()
            self.result = work()
        except BaseException as exc:
            self.error = exc
        finally:
            self._started.set()
            connection.close()

    def waits_on_a_lock(self) -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [self.pid]
            )
            row = cursor.fetchone()
        return row is not None and row[0] == "Lock"

    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "still running: it waits on a lock"


@contextlib.contextmanager
def holding(sql: str, params: list) -> Iterator[None]:
    """Another session runs ``sql`` in a transaction and keeps its locks until the end."""
    db = settings.DATABASES["default"]
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=connection.settings_dict["NAME"],
    ) as other:
        other.execute(sql, params)
        try:
            yield
        finally:
            other.rollback()


def active_jobs(count: int) -> list[Job]:
    """Active jobs held by WORKER, in id order; stored in the reverse order, so that a
    plan scanning the table meets the last id first, as a claim in priority order may."""
    jobs = sorted((enqueue("platform.echo", {}) for _ in range(count)), key=lambda j: j.pk)
    for job in reversed(jobs):
        Job.objects.filter(pk=job.pk).update(
            status=JobStatus.ACTIVE,
            attempts_made=1,
            worker=WORKER,
            started_at=timezone.now(),
            locked_until=timezone.now() + timedelta(minutes=1),
        )
    return [Job.objects.get(pk=job.pk) for job in jobs]


def completed(job: Job) -> Outcome:
    now = timezone.now()
    return Outcome(
        job=ClaimedJob.from_job(job),
        status=JobStatus.COMPLETED,
        attempt_outcome=AttemptOutcome.COMPLETED,
        started_at=now,
        finished_at=now,
        result_json="{}",
    )


# --- L4: lock order -----------------------------------------------------------------------


def test_a_cancel_and_a_finalize_of_the_same_jobs_in_opposite_orders_do_not_deadlock():
    a, b = active_jobs(2)
    # A handler's ctx.log for b (a foreign-key check) holds a key-share lock on b: the
    # cancel, which locks FOR UPDATE, waits there holding a; an UPDATE of b does not wait.
    with holding("SELECT 1 FROM queues_job WHERE id = %s FOR KEY SHARE", [b.pk]):
        cancel = Side(lambda: cancel_jobs(Job.objects.filter(pk__in=[b.pk, a.pk])))
        wait_for(cancel.waits_on_a_lock, timeout=10, message="the cancel to hold a, wait on b")
        # The worker's batch, in its claim order: b first.
        finishing = Side(lambda: finalize([completed(b), completed(a)], worker=WORKER))
        wait_for(finishing.waits_on_a_lock, timeout=10, message="the finalize to wait")
    cancel.join(30)
    finishing.join(30)
    assert (cancel.error, finishing.error) == (None, None)
    assert (cancel.result, finishing.result) == (2, set())
    for job in (a, b):
        job.refresh_from_db()
        assert (job.status, job.worker, job.locked_until) == (JobStatus.CANCELLED, "", None)
        assert list(job.attempts.values_list("number", "outcome")) == [
            (1, AttemptOutcome.CANCELLED)
        ]


def test_finalize_locks_its_jobs_in_id_order_before_it_writes_them():
    a, b = active_jobs(2)
    with holding("SELECT 1 FROM queues_job WHERE id = %s FOR UPDATE", [a.pk]):
        finishing = Side(lambda: finalize([completed(b), completed(a)], worker=WORKER))
        wait_for(finishing.waits_on_a_lock, timeout=10, message="the finalize to wait on a")
        # Waiting for a, it holds nothing yet: b can be locked by anyone meanwhile.
        with holding("SELECT 1 FROM queues_job WHERE id = %s FOR UPDATE NOWAIT", [b.pk]):
            pass
    finishing.join(30)
    assert finishing.error is None
    assert finishing.result == {a.pk, b.pk}
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.COMPLETED}


def test_update_queue_does_not_undo_a_pause_that_came_in_meanwhile(monkeypatch):
    read = queue_services._queue

    def read_then_pause(name: str) -> Queue:
        queue = read(name)
        # A pause by another request, committed meanwhile.
        Side(lambda: Queue.objects.filter(name=name).update(paused=True)).join(10)
        return queue

    monkeypatch.setattr(queue_services, "_queue", read_then_pause)
    update_queue("default", changes={"concurrency": 3})
    queue = Queue.objects.get(name="default")
    assert (queue.paused, queue.concurrency) == (True, 3)


# --- M12: the keeper never waits on a row lock ----------------------------------------------


def keeper(jobs: list[Job], *, running: Running | None = None) -> Runtime:
    """A worker process's runtime holding ``jobs`` as its batch, without its thread."""
    rt = Runtime()
    rt.worker = WORKER
    rt.batch = {job.pk for job in jobs}
    rt.lock_duration = 30
    rt.running = running
    rt._next_extend = 0.0  # the renewal is due
    return rt


def test_the_lock_renewal_skips_a_row_another_transaction_holds():
    a, b = active_jobs(2)
    before = timezone.now() - timedelta(hours=1)
    Job.objects.update(locked_until=before)
    rt = keeper([a, b])
    # finalize of a, or the handler's own transaction, holds a's row.
    with holding("UPDATE queues_job SET progress = 50 WHERE id = %s", [a.pk]):
        renewal = Side(lambda: rt._extend_locks(rt.batch, WORKER, 30))
        wait_for(renewal.done, timeout=5, message="the renewal to return")
        cancelled = Side(lambda: rt._is_cancelled(a.pk))
        wait_for(cancelled.done, timeout=5, message="the cancel check to return")
    assert (renewal.error, cancelled.error, cancelled.result) == (None, None, False)
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.locked_until == before
    assert b.locked_until > timezone.now() + timedelta(seconds=20)


def test_an_overdue_job_is_killed_even_while_its_row_is_locked():
    (job,) = active_jobs(1)
    grace = settings.JOBPLATFORM["HARD_KILL_GRACE"]
    running = Running(
        job_id=job.pk,
        attempt=1,
        queue="default",
        timeout=1.0,
        started=time.monotonic() - (1.0 + grace + 1),
    )
    rt = keeper([job], running=running)
    kills = []
    rt._kill_self = lambda *args: kills.append(args)
    # The handler: with atomic(): ctx.progress(...); long_work()
    with holding("UPDATE queues_job SET progress = 10 WHERE id = %s", [job.pk]):
        tick = Side(rt._tick)
        wait_for(lambda: kills, timeout=5, message="the hard kill")
        wait_for(tick.done, timeout=5, message="the tick to end")
    assert tick.error is None
    assert kills == [(running, None, {job.pk}, WORKER)]


def test_a_long_jobs_lock_is_renewed_again_and_again():
    (job,) = active_jobs(1)
    running = Running(
        job_id=job.pk, attempt=1, queue="default", timeout=None, started=time.monotonic() - 60
    )
    rt = keeper([job], running=running)
    rt.lock_duration = 1  # renewed every 0.5 s
    renewals = []

    def renewed() -> bool:
        rt._tick()
        locked_until = Job.objects.get(pk=job.pk).locked_until
        if locked_until is not None:
            renewals.append(locked_until)
            Job.objects.filter(pk=job.pk).update(locked_until=None)
        return len(renewals) >= 3

    wait_for(renewed, timeout=10, message="three renewals")
    job.refresh_from_db()
    assert (job.status, job.worker) == (JobStatus.ACTIVE, WORKER)
