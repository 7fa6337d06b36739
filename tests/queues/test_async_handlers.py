"""Async handlers: their jobs run side by side in one worker process, with the same
timeouts, cancels, fencing and outcomes as sync ones."""

import threading

import pytest
from django.db import connection
from django.test import override_settings

from queues import cancel_job, enqueue, job
from queues.engine import runner
from queues.engine.runner import drain
from queues.models import AttemptOutcome, Job, JobLog, JobStatus
from tests.helpers import wait_for
from tests.queues.test_engine_outcomes import fresh, one_batch

pytestmark = pytest.mark.django_db(transaction=True)


def most_at_once(jobs) -> int:
    """The largest number of ``jobs`` whose runs overlapped, from their recorded times."""
    rows = Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("started_at", "finished_at")
    edges = sorted([(s, 1) for s, _ in rows] + [(f, -1) for _, f in rows], key=lambda e: e[:2])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_async_jobs_of_one_batch_run_side_by_side_up_to_their_handlers_concurrency():
    jobs = one_batch(*[("test.async_sleep", {"seconds": 0.5}, {}) for _ in range(10)])
    assert drain("default") == 10
    for j in jobs:
        j = fresh(j)
        assert (j.status, j.result) == (JobStatus.COMPLETED, {"slept": 0.5, "cancelled": False})
        assert [a.outcome for a in j.attempt_history()] == [AttemptOutcome.COMPLETED]
    assert most_at_once(jobs) == 5  # @job("test.async_sleep", concurrency=5)
    assert JobLog.objects.filter(message="sleeping 0.5s").count() == 10


def test_the_process_wide_bound_holds_for_every_async_handler():
    with override_settings(JOBPLATFORM={**runner.settings.JOBPLATFORM, "ASYNC_CONCURRENCY": 2}):
        jobs = one_batch(*[("test.async_sleep", {"seconds": 0.3}, {}) for _ in range(6)])
        assert drain("default") == 6
    assert all(fresh(j).status == JobStatus.COMPLETED for j in jobs)
    assert most_at_once(jobs) == 2


def test_sync_and_async_jobs_of_one_batch_all_run_in_order_of_their_segments():
    first, a1, a2, last = one_batch(
        ("platform.echo", {"n": 1}, {}),
        ("test.async_sleep", {"seconds": 0.2}, {}),
        ("test.async_sleep", {"seconds": 0.2}, {}),
        ("platform.echo", {"n": 4}, {}),
    )
    assert drain("default") == 4
    first, a1, a2, last = (fresh(j) for j in (first, a1, a2, last))
    assert {j.status for j in (first, a1, a2, last)} == {JobStatus.COMPLETED}
    assert first.finished_at <= min(a1.started_at, a2.started_at)
    assert max(a1.finished_at, a2.finished_at) <= last.started_at
    assert most_at_once([a1, a2]) == 2


def test_an_async_timeout_is_that_jobs_outcome_and_its_batchmates_go_on():
    slow, fail, ok = one_batch(
        ("test.async_sleep", {"seconds": 30}, {"timeout": 0.3, "attempts": 1}),
        ("test.async_sleep", {"seconds": 0.1, "fail": True}, {"attempts": 1}),
        ("test.async_sleep", {"seconds": 0.1}, {}),
    )
    assert drain("default") == 3
    slow, fail, ok = fresh(slow), fresh(fail), fresh(ok)
    assert slow.status == JobStatus.FAILED
    assert slow.attempts.get().outcome == AttemptOutcome.TIMEOUT
    assert "JobTimeout: the job exceeded its timeout of 0.3s" in slow.error
    # The handler's own TimeoutError is a failure like any other, not the job's timeout.
    assert fail.status == JobStatus.FAILED
    assert fail.attempts.get().outcome == AttemptOutcome.FAILED
    assert fail.error.startswith("TimeoutError: the upstream timed out")
    assert ok.status == JobStatus.COMPLETED


def test_cancelling_a_running_async_job_cancels_its_task_after_the_grace_period():
    config = {**runner.settings.JOBPLATFORM, "CANCEL_GRACE": 0.5}
    with override_settings(JOBPLATFORM=config):
        long, short = one_batch(
            ("test.async_sleep", {"seconds": 60}, {}), ("test.async_sleep", {"seconds": 0.2}, {})
        )

        def cancel_when_active():
            try:
                wait_for(
                    lambda: Job.objects.filter(pk=long.pk, status=JobStatus.ACTIVE).exists(),
                    timeout=10,
                    message="the long job to run",
                )
                cancel_job(long.pk)
            finally:
                connection.close()  # this thread's own

        canceller = threading.Thread(target=cancel_when_active)
        canceller.start()
        assert drain("default") == 2
        canceller.join()
    long, short = fresh(long), fresh(short)
    assert long.status == JobStatus.CANCELLED
    assert long.attempts.get().outcome == AttemptOutcome.CANCELLED
    assert "did not stop within the grace period" in long.attempts.get().error
    assert (long.finished_at - long.started_at).total_seconds() < 10
    assert short.status == JobStatus.COMPLETED


def test_a_sync_handler_cannot_claim_a_concurrency():
    with pytest.raises(ValueError, match="concurrency applies to async handlers"):
        job("test.never_registered")(lambda ctx, payload: None)  # fine without it
        job("test.never_registered_either", concurrency=3)(lambda ctx, payload: None)
    with pytest.raises(ValueError, match="at least 1"):
        job("test.never_registered_async", concurrency=0)


def test_an_async_job_enqueued_and_drained_end_to_end_keeps_its_log_and_result():
    j = enqueue("test.async_sleep", {"seconds": 0.01})
    assert drain("default") == 1
    j = fresh(j)
    assert j.status == JobStatus.COMPLETED
    assert j.result == {"slept": 0.01, "cancelled": False}
    assert list(j.logs.values_list("message", flat=True)) == ["sleeping 0.01s"]


def test_a_cancelled_future_inside_the_handler_is_that_jobs_failure_and_the_batch_goes_on():
    inner, after = one_batch(
        ("test.async_inner_cancel", {}, {"attempts": 1}),
        ("test.async_sleep", {"seconds": 0.05}, {}),
    )
    assert drain("default") == 2
    inner, after = fresh(inner), fresh(after)
    assert inner.status == JobStatus.FAILED
    assert inner.attempts.get().outcome == AttemptOutcome.FAILED
    assert inner.error.startswith("CancelledError")
    assert after.status == JobStatus.COMPLETED
