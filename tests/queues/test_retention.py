"""Retention keeps up: however many finished jobs pile up, passes run until every queue is
within its bounds; the scheduler applies it itself, one copy at a time, paused queues or
not."""

import time
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from queues import enqueue_many
from queues.engine import maintenance
from queues.models import Job, JobAttempt, JobStatus, Queue
from queues.services import apply_retention, pause_queue
from queues.services import queues as queue_services
from scheduling import tick

pytestmark = pytest.mark.django_db


def finished(count: int, *, queue: str = "default", status=JobStatus.COMPLETED, age_s=60):
    """``count`` jobs that finished ``age_s`` seconds ago, each with its attempt row."""
    jobs = enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(count)])
    ids = [j.pk for j in jobs]
    when = timezone.now() - timedelta(seconds=age_s)
    Job.objects.filter(pk__in=ids).update(
        status=status, queue=Queue.objects.get(name=queue), finished_at=when, attempts_made=1
    )
    JobAttempt.objects.bulk_create(
        JobAttempt(job_id=i, number=1, started_at=when, finished_at=when, outcome=status)
        for i in ids
    )
    return ids


@pytest.fixture
def small_chunks(monkeypatch):
    # Many chunks without a hundred thousand rows: the loop, not the chunk size, is tested.
    monkeypatch.setattr(queue_services, "RETENTION_BATCH", 50)


def test_one_call_removes_every_surplus_job_not_one_chunk(small_chunks):
    Queue.objects.filter(name="default").update(keep_completed_count=10)
    ids = finished(230)

    assert apply_retention() == {"default": 220}

    kept = set(Job.objects.values_list("pk", flat=True))
    assert len(kept) == 10 and kept <= set(ids)
    assert set(JobAttempt.objects.values_list("job_id", flat=True)) == kept
    assert apply_retention() == {}


def test_a_pass_out_of_time_says_so_and_the_next_goes_on(small_chunks):
    Queue.objects.filter(name="default").update(keep_completed_age=1, keep_failed_age=1)
    finished(120)
    finished(70, status=JobStatus.FAILED)

    removed, caught_up = queue_services.retention_pass(deadline=0.0)  # already passed
    assert (removed, caught_up) == ({}, False)
    assert Job.objects.count() == 190  # nothing removed by a pass with no time

    removed, caught_up = queue_services.retention_pass(deadline=None)
    assert (removed, caught_up) == ({"default": 190}, True)
    assert Job.objects.count() == 0


def test_the_tick_applies_retention_itself_while_default_is_paused(monkeypatch, small_chunks):
    monkeypatch.setattr(tick, "_synced", True)  # the system schedules are not under test
    Queue.objects.filter(name="default").update(keep_completed_count=5)
    pause_queue("default")  # once, this stopped retention: it was a job on this queue
    finished(80)

    loop = maintenance.Maintenance()
    loop.next_retention = 0.0
    loop.tick()

    assert Job.objects.filter(status=JobStatus.COMPLETED).count() == 5
    assert not Job.objects.filter(name="platform.apply-retention").exists()
    interval = settings.JOBPLATFORM["RETENTION_INTERVAL"]
    assert loop.next_retention > time.monotonic() + interval / 2  # caught up: an interval


def test_a_busy_ledger_gets_its_next_pass_soon(monkeypatch):
    # Jobs finishing fast: a pass that removed a whole chunk is followed by another one
    # within seconds, not after the interval, so the table never holds a minute of them.
    monkeypatch.setattr(tick, "_synced", True)
    monkeypatch.setattr(maintenance, "RETENTION_BUSY_MIN", 10)
    Queue.objects.filter(name="default").update(keep_completed_count=5)
    finished(25)
    loop = maintenance.Maintenance()
    loop.next_retention = 0.0
    loop.tick()
    assert Job.objects.count() == 5
    now = time.monotonic()
    assert now < loop.next_retention <= now + maintenance.RETENTION_BUSY_INTERVAL
    # Quiet again (nothing to remove): back to the interval.
    loop.next_retention = 0.0
    loop.tick()
    interval = settings.JOBPLATFORM["RETENTION_INTERVAL"]
    assert loop.next_retention > time.monotonic() + interval / 2

    # A pass that ends a run of passes that were behind removes only their remainder:
    # still busy.
    finished(7)
    monkeypatch.setattr(maintenance, "RETENTION_TICK_SECONDS", 0.0)
    loop.next_retention = 0.0
    loop.tick()  # no time to delete in: behind
    assert Job.objects.count() == 12 and loop.next_retention <= time.monotonic()
    monkeypatch.setattr(maintenance, "RETENTION_TICK_SECONDS", 30.0)
    loop.tick()  # removes 7, fewer than RETENTION_BUSY_MIN
    assert Job.objects.count() == 5
    now = time.monotonic()
    assert now < loop.next_retention <= now + maintenance.RETENTION_BUSY_INTERVAL


def test_a_tick_behind_runs_the_next_pass_on_the_next_tick(monkeypatch, small_chunks):
    monkeypatch.setattr(tick, "_synced", True)
    monkeypatch.setattr(maintenance, "RETENTION_TICK_SECONDS", 0.0)
    Queue.objects.filter(name="default").update(keep_completed_count=5)
    finished(80)

    loop = maintenance.Maintenance()
    loop.next_retention = 0.0
    loop.tick()

    assert Job.objects.count() == 80  # no time to delete in
    assert loop.next_retention <= time.monotonic()  # due again on the next tick
    monkeypatch.setattr(maintenance, "RETENTION_TICK_SECONDS", 30.0)
    loop.tick()
    assert Job.objects.count() == 5
    # Caught up after being behind: still busy, the next pass soon.
    assert loop.next_retention <= time.monotonic() + maintenance.RETENTION_BUSY_INTERVAL
    loop.next_retention = 0.0
    loop.tick()
    interval = settings.JOBPLATFORM["RETENTION_INTERVAL"]
    assert loop.next_retention > time.monotonic() + interval / 2  # quiet: an interval


def another_session_holding_the_retention_lock() -> psycopg.Connection:
    """What another scheduler copy applying retention looks like: a session holding the
    advisory lock."""
    db = connection.settings_dict
    other = psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    )
    other.execute("SELECT pg_advisory_lock(%s)", [maintenance.RETENTION_LOCK])
    return other


@pytest.mark.django_db(transaction=True)
def test_one_scheduler_copy_applies_retention_at_a_time():
    Queue.objects.filter(name="default").update(keep_completed_count=5)
    finished(20)
    other = another_session_holding_the_retention_lock()
    try:
        assert maintenance.retention_step() == (0, True)  # another copy is at it
        assert Job.objects.count() == 20
        other.execute("SELECT pg_advisory_unlock(%s)", [maintenance.RETENTION_LOCK])
        assert maintenance.retention_step() == (15, True)
        assert Job.objects.count() == 5
    finally:
        other.close()


@pytest.mark.django_db(transaction=True)
def test_behind_a_transaction_pooler_no_session_lock_is_taken(settings):
    # A session lock taken through a transaction pooler could stay on a server
    # connection; retention is safe twice over, so there it runs unlocked.
    settings.DB_POOLER = "transaction"
    Queue.objects.filter(name="default").update(keep_completed_count=5)
    finished(20)
    other = another_session_holding_the_retention_lock()
    try:
        assert maintenance.retention_step() == (15, True)
        assert Job.objects.count() == 5
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            assert cursor.fetchone()[0] == 1  # only the other session's
    finally:
        other.close()


def test_the_scheduler_deletes_in_small_chunks_and_prunes_buckets_while_behind(monkeypatch):
    monkeypatch.setattr(tick, "_synced", True)
    monkeypatch.setattr(maintenance, "RETENTION_TICK_CHUNK", 7)
    Queue.objects.filter(name="default").update(keep_completed_count=5)
    finished(40)
    sizes, pruned = [], []
    real = queue_services.delete_ids

    def recording(ids, **kwargs):
        sizes.append(len(ids))
        return real(ids, **kwargs)

    monkeypatch.setattr(queue_services, "delete_ids", recording)
    monkeypatch.setattr(maintenance, "prune_buckets", lambda: pruned.append(1))
    loop = maintenance.Maintenance()
    loop.next_retention = loop.next_prune = 0.0
    loop.tick()
    # A chunk under way when the deadline passes is finished: under a deadline they are
    # small, so the tick's other steps are not held up by one long delete.
    assert Job.objects.count() == 5 and max(sizes) <= 7 and len(sizes) >= 5
    assert pruned == [1]

    # Behind for good (no time to delete in): buckets are still pruned on their interval.
    monkeypatch.setattr(maintenance, "RETENTION_TICK_SECONDS", 0.0)
    finished(40)
    loop.next_retention = loop.next_prune = 0.0
    loop.tick()
    assert pruned == [1, 1] and Job.objects.count() == 45
