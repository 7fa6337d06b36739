"""The per-job step always ends in an outcome, and every outcome can be recorded: timeouts
that land outside the handler, interrupts inside a database call, errors the ledger cannot
hold, webhooks that cannot be queued, a lost database connection, batchmates cancelled
before their turn. In-process drains on real Postgres and Redis."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from queues import doorbell, enqueue, metrics, pause_queue, resume_queue
from queues.backoff import ABSOLUTE_MAX_DELAY_MS, DEFAULT_MAX_DELAY_MS, retry_delay_ms
from queues.engine import finalize as finalize_module
from queues.engine import runner
from queues.engine.claim import ClaimedJob, claim_jobs
from queues.engine.outcomes import Outcome, failure_outcome
from queues.engine.recovery import recover_stalled, requeue_from_workers
from queues.engine.runner import drain
from queues.models import (
    AttemptOutcome,
    HandlerStats,
    Job,
    JobAttempt,
    JobLog,
    JobStatus,
    Queue,
)
from tests.helpers import wait_for
from tests.queues import handlers

pytestmark = pytest.mark.django_db(transaction=True)


def one_batch(*specs):
    """Enqueue jobs so that the next drain claims them all in one batch, in this order."""
    runner._seconds_per_job["default"] = 0.0001  # a warm worker: batches of MAX_BATCH
    pause_queue("default")
    jobs = [
        enqueue(name, payload, priority=1 + i, **options)
        for i, (name, payload, options) in enumerate(specs)
    ]
    resume_queue("default")
    return jobs


def fresh(job) -> Job:
    return Job.objects.get(pk=job.pk)


def test_a_timeout_while_the_error_is_formatted_is_that_jobs_outcome():
    # The handler raises at once; its error's message takes 0.6 s to format, and the
    # 0.2 s timeout fires meanwhile, outside the handler. The batch goes on.
    slow, echo = one_batch(
        ("test.slow_message", {}, {"timeout": 0.2, "attempts": 1}),
        ("platform.echo", {"n": 1}, {}),
    )
    assert drain("default") == 2
    slow, echo = fresh(slow), fresh(echo)
    assert (slow.status, slow.error) == (
        JobStatus.FAILED,
        "SlowMessage: slow to describe (attempts exhausted: 1 of 1)",
    )
    assert echo.status == JobStatus.COMPLETED
    assert slow.attempts.get().outcome == AttemptOutcome.FAILED


def test_a_timeout_inside_a_database_call_leaves_the_next_job_a_working_connection():
    sleeper, query = one_batch(
        ("test.pg_sleep", {"seconds": 5}, {"timeout": 0.3, "attempts": 1}),
        ("test.db_query", {}, {"attempts": 1}),
    )
    assert drain("default") == 2
    sleeper, query = fresh(sleeper), fresh(query)
    assert sleeper.status == JobStatus.FAILED
    assert sleeper.attempts.get().outcome == AttemptOutcome.TIMEOUT
    assert (query.status, query.result) == (JobStatus.COMPLETED, {"ok": True})
    assert list(JobLog.objects.filter(job=query).values_list("message", flat=True)) == [
        "the connection works"
    ]

    # The interrupted query was cancelled on the server, not left running for its 5 s.
    def still_sleeping() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(%%' "
                "AND state = 'active' AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0]

    wait_for(lambda: still_sleeping() == 0, timeout=3, message="the query to be cancelled")


def test_backoff_is_capped_and_a_late_attempt_never_overflows():
    exponential = {"type": "exponential", "delay": 2000}
    assert retry_delay_ms(exponential, 5) == 32_000
    assert retry_delay_ms(exponential, 38) == DEFAULT_MAX_DELAY_MS
    assert retry_delay_ms(exponential, 1000) == DEFAULT_MAX_DELAY_MS
    huge = {"type": "exponential", "delay": 2000, "max_delay": 10**15}
    assert retry_delay_ms(huge, 999) == ABSOLUTE_MAX_DELAY_MS
    assert retry_delay_ms({"type": "fixed", "delay": 10**15}, 1) == ABSOLUTE_MAX_DELAY_MS
    job = enqueue("platform.fail", {}, attempts=1000)
    Job.objects.filter(pk=job.pk).update(attempts_made=40)
    assert drain("default") == 1
    job = fresh(job)
    assert job.status == JobStatus.DELAYED
    assert job.run_at <= timezone.now() + timedelta(milliseconds=DEFAULT_MAX_DELAY_MS)


def test_failure_outcome_plans_no_retry_beyond_the_absolute_limit():
    claimed = ClaimedJob(
        id=None,
        name="x",
        payload={},
        priority=5,
        created_at=timezone.now(),
        attempt=999,
        attempts_base=0,
        max_attempts=1000,
        backoff={"type": "fixed", "delay": 10**18},
        timeout=None,
    )
    now = timezone.now()
    outcome = failure_outcome(
        claimed,
        started_at=now,
        finished_at=now,
        error="e",
        traceback="",
        attempt_outcome=AttemptOutcome.FAILED,
        permanent=False,
    )
    assert outcome.run_at == now + timedelta(milliseconds=ABSOLUTE_MAX_DELAY_MS)


def test_an_error_with_a_lone_surrogate_is_recorded():
    job = enqueue("test.surrogate", {}, attempts=1)
    assert drain("default") == 1
    job = fresh(job)
    assert job.status == JobStatus.FAILED
    assert job.error == "RuntimeError: cannot parse caf\\udce9.txt (attempts exhausted: 1 of 1)"
    assert "\\udce9" in job.attempts.get().traceback


def test_a_webhook_that_cannot_be_queued_never_blocks_the_outcome():
    job = enqueue("platform.echo", {"x": 1})
    # Its delivery cannot be queued: the queue webhook deliveries go to is gone.
    Job.objects.filter(pk=job.pk).update(webhook_url="http://127.0.0.1:9/hook")
    Queue.objects.filter(name="notification").delete()
    assert drain("default") == 1
    assert fresh(job).status == JobStatus.COMPLETED
    assert not Job.objects.filter(name="platform.webhook").exists()


def test_one_unrecordable_outcome_fails_only_its_own_job(monkeypatch):
    a, b, c = one_batch(*[("platform.echo", {"n": i}, {}) for i in range(3)])
    real = finalize_module._update_postgres

    def refuse_b(outcomes):
        if any(o.job.id == b.pk and o.status == JobStatus.COMPLETED for o in outcomes):
            raise ValueError("this row cannot be written")
        return real(outcomes)

    monkeypatch.setattr(finalize_module, "_update_postgres", refuse_b)
    assert drain("default") == 3
    assert [fresh(j).status for j in (a, b, c)] == [
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.COMPLETED,
    ]
    assert "the outcome could not be recorded: ValueError" in fresh(b).error


def test_a_batchmate_cancelled_before_its_turn_never_runs():
    handlers.started.clear()
    first, second = one_batch(
        ("test.cancel_other", {"other": None}, {}),
        ("test.record", {"tag": "second", "n": 1}, {}),
    )
    Job.objects.filter(pk=first.pk).update(payload={"other": str(second.pk)})
    drain("default")
    second = fresh(second)
    assert handlers.started == []
    assert second.status == JobStatus.CANCELLED
    assert (second.worker, second.locked_until, second.attempts_made) == ("", None, 0)
    assert not JobAttempt.objects.filter(job=second).exists()
    assert fresh(first).status == JobStatus.COMPLETED


def test_a_cancelled_job_still_stopping_counts_against_the_concurrency_cap():
    Queue.objects.filter(name="default").update(concurrency=1)
    stopping = enqueue("platform.echo", {})
    Job.objects.filter(pk=stopping.pk).update(status=JobStatus.CANCELLED, worker="host:1")
    enqueue("platform.echo", {})
    queue = Queue.objects.get(name="default")
    assert claim_jobs(queue=queue, worker="host:2", limit=5).jobs == []
    Job.objects.filter(pk=stopping.pk).update(worker="")  # it stopped
    assert len(claim_jobs(queue=queue, worker="host:2", limit=5).jobs) == 1


def test_a_lost_database_connection_is_retried_without_using_an_attempt():
    job = enqueue("test.lose_connection", {}, attempts=1)
    assert drain("default") == 1
    job = fresh(job)
    assert job.status == JobStatus.DELAYED
    first = job.attempts.get()
    assert first.outcome == AttemptOutcome.FAILED
    assert "the database connection was lost: this try is not counted; retry 1 of" in first.error
    assert (job.attempts_made, job.attempts_base, job.stalled_count) == (1, 1, 1)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.WAITING, run_at=None)
    assert drain("default") == 1
    job = fresh(job)
    assert (job.status, job.result) == (JobStatus.COMPLETED, {"attempt": 2})


def test_a_lost_connection_past_max_stalled_counts_as_a_failure():
    Queue.objects.filter(name="default").update(max_stalled=0)
    job = enqueue("test.lose_connection", {}, attempts=1)
    assert drain("default") == 1
    job = fresh(job)
    assert job.status == JobStatus.FAILED
    assert "attempts exhausted: 1 of 1" in job.error


def test_a_job_killed_with_its_worker_counts_a_stall():
    Queue.objects.filter(name="default").update(max_stalled=1)
    job = enqueue("platform.echo", {})
    for expected in (JobStatus.WAITING, JobStatus.FAILED):
        Job.objects.filter(pk=job.pk).update(
            status=JobStatus.ACTIVE, worker="host:7", attempts_made=1 + fresh(job).attempts_base
        )
        requeue_from_workers(workers=["host:7"], reason="its worker was frozen")
        assert fresh(job).status == expected
    job = fresh(job)
    assert job.stalled_count == 2
    assert "stalled 2 times" in job.error
    assert set(job.attempts.values_list("outcome", flat=True)) == {AttemptOutcome.STALLED}


def test_a_job_that_stalled_before_runs_in_a_batch_of_its_own(monkeypatch):
    before, suspect, after = one_batch(
        ("platform.echo", {"n": 1}, {}),
        ("platform.echo", {"n": 2}, {}),
        ("platform.echo", {"n": 3}, {}),
    )
    Job.objects.filter(pk=suspect.pk).update(stalled_count=1)
    batches = []
    begin = runner.runtime.begin_batch

    def seen(*, worker, ids, lock_duration):
        batches.append(list(ids))
        begin(worker=worker, ids=ids, lock_duration=lock_duration)

    monkeypatch.setattr(runner.runtime, "begin_batch", seen)
    assert drain("default") == 3
    assert batches == [[before.pk], [suspect.pk], [after.pk]]
    for job in (before, suspect, after):
        job = fresh(job)
        assert (job.status, job.attempts_made - job.attempts_base) == (JobStatus.COMPLETED, 1)
    # The ones given back before they ran left no attempt behind.
    assert not JobAttempt.objects.exists()


def test_a_stall_shared_by_a_batch_fails_none_of_it():
    Queue.objects.filter(name="default").update(max_stalled=0)
    jobs = [enqueue("platform.echo", {"i": i}) for i in range(3)]
    Job.objects.filter(pk__in=[j.pk for j in jobs]).update(
        status=JobStatus.ACTIVE, worker="host:7", attempts_made=1
    )
    requeue_from_workers(workers=["host:7"], reason="its worker was frozen")
    for job in jobs:
        job = fresh(job)
        assert (job.status, job.stalled_count) == (JobStatus.WAITING, 1)
        assert "one of 3 jobs its worker held" in job.attempts.get().error
    # Alone, the next stall fails the job.
    Job.objects.filter(pk=jobs[0].pk).update(
        status=JobStatus.ACTIVE, worker="host:8", attempts_made=2
    )
    requeue_from_workers(workers=["host:8"], reason="its worker was frozen")
    assert fresh(jobs[0]).status == JobStatus.FAILED
    assert fresh(jobs[0]).error.startswith("stalled 2 times (queue max_stalled=0)")


def test_a_fenced_off_outcome_is_not_counted_in_the_metrics():
    job = enqueue("platform.echo", {})
    claimed = claim_jobs(queue=Queue.objects.get(name="default"), worker="w:1", limit=1).jobs[0]
    recover_stalled(now=timezone.now() + timedelta(hours=1))  # its lock expired: requeued
    now = timezone.now()
    late = Outcome(
        job=claimed,
        status=JobStatus.COMPLETED,
        attempt_outcome=AttemptOutcome.COMPLETED,
        started_at=now,
        finished_at=now,
        result_json="{}",
    )
    assert finalize_module.finalize([late], worker="w:1") == set()
    metrics.flush(force=True)
    assert not HandlerStats.objects.filter(name="platform.echo", completed__gt=0).exists()
    assert fresh(job).status == JobStatus.WAITING


def test_a_pending_bell_whose_message_was_taken_never_blocks_a_ring():
    client = doorbell.redis_client()
    list_key = doorbell.list_key_for(None)
    doorbell.advertise(list_key, [])
    assert doorbell.ring(["default"]) == 1
    # A worker took the message, then died before answering the bell.
    client.delete(f"django_q:{list_key}:q")
    assert client.exists(f"{doorbell.KEY_PREFIX}:bell:{list_key}:default")
    assert doorbell.ring(["default"]) == 1
    # While a message still waits in the list, rings coalesce.
    assert doorbell.ring(["default"]) == 0
    assert client.llen(f"django_q:{list_key}:q") == 1


def test_the_cancelled_job_sweep_has_its_own_index():
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        with CaptureQueriesContext(connection) as queries:
            Job.objects.filter(status=JobStatus.CANCELLED, locked_until__lt=timezone.now()).exclude(
                worker=""
            ).update(worker="", locked_until=None)
        cursor.execute("EXPLAIN " + queries.captured_queries[-1]["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "job_cancelled_lock_idx" in plan, plan


def test_metrics_a_drain_leaves_pending_are_written_once_the_worker_is_idle(monkeypatch):
    # A drain writes metrics at most once a second (a trickle of jobs is a drain each);
    # what the last one left behind is written by the keeper while the worker idles.
    job = enqueue("platform.echo", {})
    import time

    monkeypatch.setattr(metrics, "_last_flush", time.monotonic())  # the last write: now,
    monkeypatch.setattr(metrics, "FLUSH_SECONDS", 3600.0)  # and the next one not due
    assert drain("default") == 1
    assert fresh(job).status == JobStatus.COMPLETED
    completed = HandlerStats.objects.filter(name="platform.echo", completed=1)
    assert not completed.exists()  # not yet: not due
    monkeypatch.setattr(metrics, "FLUSH_SECONDS", 0.0)  # due now
    wait_for(completed.exists, timeout=10, message="the keeper to write the metrics")
    assert not metrics.pending()


def test_a_drain_that_finds_its_queue_dry_ends_without_another_claim(monkeypatch):
    jobs = one_batch(("platform.echo", {"n": 1}, {}), ("platform.echo", {"n": 2}, {}))
    claims = []
    real = runner.claim_jobs

    def counting(**kwargs):
        claims.append(kwargs["limit"])
        return real(**kwargs)

    monkeypatch.setattr(runner, "claim_jobs", counting)
    assert drain("default") == 2
    assert len(claims) == 1  # two of up to 500: the queue ran dry
    assert {fresh(j).status for j in jobs} == {JobStatus.COMPLETED}
    # A queue with a concurrency cap claims again: its short claim says nothing.
    Queue.objects.filter(name="default").update(concurrency=1)
    more = [enqueue("platform.echo", {"n": n}) for n in range(3)]
    claims.clear()
    assert drain("default") == 3
    assert len(claims) == 4  # one job each, then the empty claim
    assert {fresh(j).status for j in more} == {JobStatus.COMPLETED}
