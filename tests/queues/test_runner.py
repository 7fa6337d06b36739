"""The runner, in process: claim order, outcomes, retries and attempt history."""

from datetime import timedelta

import pytest
from django.utils import timezone

from queues import (
    Priority,
    cancel_job,
    enqueue,
    enqueue_many,
    pause_queue,
    resume_queue,
    retry_job,
)
from queues.backoff import retry_delay_ms
from queues.engine.claim import claim_jobs
from queues.engine.finalize import Outcome, finalize
from queues.engine.maintenance import promote_delayed
from queues.engine.recovery import recover_stalled
from queues.engine.runner import drain
from queues.exceptions import InvalidJobState, JobNotFound, QueueNotFound
from queues.models import AttemptOutcome, Job, JobAttempt, JobLog, JobStatus
from queues.selectors import get_queue
from queues.services import delete_jobs
from tests.helpers import wait_for
from tests.queues import handlers

pytestmark = pytest.mark.django_db


def make_due(job: Job) -> None:
    """Jump a delayed job's clock: its run_at is now."""
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now())


def test_echo_completes_with_result_progress_and_one_attempt():
    job = enqueue("platform.echo", {"hello": "world"})
    assert drain("default") == 1
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert job.result == {"hello": "world"}
    assert job.progress == 100
    assert job.attempts_made == 1
    assert job.started_at <= job.finished_at
    assert job.locked_until is None and job.worker  # who ran it stays on the job
    assert not job.attempts.exists()  # a first-try success costs no attempt row
    (attempt,) = job.attempt_history()
    assert attempt.number == 1 and attempt.worker == job.worker
    assert attempt.outcome == AttemptOutcome.COMPLETED
    # The attempt's timestamps are the job's, and its duration is theirs in whole ms.
    assert (attempt.started_at, attempt.finished_at) == (job.started_at, job.finished_at)
    assert attempt.duration_ms == (attempt.finished_at - attempt.started_at) // timedelta(
        milliseconds=1
    )
    assert attempt.worker


def test_an_attempt_records_how_long_the_handler_ran():
    job = enqueue("platform.sleep", {"seconds": 0.2})
    assert drain("default") == 1
    (attempt,) = Job.objects.get(pk=job.pk).attempt_history()
    assert attempt.outcome == AttemptOutcome.COMPLETED
    assert 200 <= attempt.duration_ms < 5000
    assert attempt.duration_ms == (attempt.finished_at - attempt.started_at) // timedelta(
        milliseconds=1
    )


def test_critical_jobs_all_start_before_any_low_job():
    handlers.started.clear()
    pause_queue("default")
    enqueue_many(
        [
            {"name": "test.record", "payload": {"tag": "low", "n": i}, "priority": Priority.LOW}
            for i in range(50)
        ]
    )
    enqueue_many(
        [
            {
                "name": "test.record",
                "payload": {"tag": "critical", "n": i},
                "priority": Priority.CRITICAL,
            }
            for i in range(50)
        ]
    )
    assert drain("default") == 0  # paused: nothing starts
    resume_queue("default")
    assert drain("default") == 100
    tags = [tag for tag, _ in handlers.started]
    assert tags == ["critical"] * 50 + ["low"] * 50
    # Within a priority, first in, first out.
    assert [n for _, n in handlers.started[:50]] == list(range(50))
    assert [n for _, n in handlers.started[50:]] == list(range(50))
    last_critical = max(Job.objects.filter(priority=1).values_list("started_at", flat=True))
    first_low = min(Job.objects.filter(priority=7).values_list("started_at", flat=True))
    assert last_critical <= first_low


def test_progress_and_log_lines_are_recorded():
    job = enqueue("test.report", {})
    drain("default")
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert job.progress == 100
    logs = list(JobLog.objects.filter(job=job).values_list("attempt", "message"))
    assert logs == [(1, "validating"), (1, f"attempt 1 of job {job.pk}")]


def test_failure_is_retried_with_exponential_backoff_spacing():
    job = enqueue(
        "platform.fail",
        {"message": "smtp down"},
        attempts=4,
        backoff={"type": "exponential", "delay": 1000},
    )
    for expected_ms in (1000, 2000, 4000):
        drain("default")
        job.refresh_from_db()
        assert job.status == JobStatus.DELAYED
        last = job.attempts.order_by("-number").first()
        assert last.outcome == AttemptOutcome.FAILED
        assert job.run_at - last.finished_at == timedelta(milliseconds=expected_ms)
        assert "smtp down" in job.error
        # Not runnable before its time...
        assert promote_delayed() == []
        assert drain("default") == 0
        make_due(job)
        assert promote_delayed() == ["default"]
    drain("default")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "attempts exhausted: 4 of 4" in job.error
    assert list(job.attempts.values_list("number", "outcome")) == [
        (n, AttemptOutcome.FAILED) for n in (1, 2, 3, 4)
    ]
    assert all("RuntimeError: smtp down" in a.traceback for a in job.attempts.all())


@pytest.mark.parametrize(
    ("backoff", "attempt", "expected"),
    [
        ({"type": "exponential", "delay": 2000}, 1, 2000),
        ({"type": "exponential", "delay": 2000}, 2, 4000),
        ({"type": "exponential", "delay": 2000}, 3, 8000),
        ({"type": "exponential", "delay": 2000, "max_delay": 5000}, 3, 5000),
        ({"type": "exponential", "delay": 2000, "max_delay": 60000}, 200, 60000),
        ({"type": "fixed", "delay": 5000}, 1, 5000),
        ({"type": "fixed", "delay": 5000}, 9, 5000),
    ],
)
def test_retry_delay_math(backoff, attempt, expected):
    assert retry_delay_ms(backoff, attempt) == expected


def test_a_flaky_job_succeeds_on_a_later_attempt():
    job = enqueue("test.flaky", {"succeed_on": 2}, backoff={"type": "fixed", "delay": 0})
    drain("default")
    assert promote_delayed() == ["default"]
    drain("default")
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert job.result == {"attempt": 2}
    assert [a.outcome for a in job.attempt_history()] == ["failed", "completed"]
    assert job.attempts.count() == 1  # the failure is history; the success is on the job


def test_permanent_error_fails_at_once_without_retry():
    job = enqueue("platform.fail", {"message": "bad address", "permanent": True}, attempts=5)
    drain("default")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "PermanentError: bad address"
    assert job.attempts.count() == 1
    assert promote_delayed() == []


def test_result_that_is_not_json_fails_permanently():
    job = enqueue("test.bad_result", {})
    drain("default")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "not JSON-serializable" in job.error
    assert job.attempts.count() == 1


def test_job_of_a_handler_unknown_to_this_worker_fails_clearly():
    job = enqueue("platform.echo", {})
    Job.objects.filter(pk=job.pk).update(name="removed.handler")
    drain("default")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "no job handler is registered as 'removed.handler'" in job.error


def test_delay_is_honoured():
    job = enqueue("platform.echo", {}, delay=0.3)
    assert promote_delayed() == []
    assert drain("default") == 0
    wait_for(lambda: promote_delayed(), timeout=5, message="the delayed job to come due")
    drain("default")
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert job.started_at >= job.run_at


def test_cancel_waiting_and_delayed_jobs():
    waiting = enqueue("platform.echo", {})
    delayed = enqueue("platform.echo", {}, delay=60)
    assert cancel_job(waiting.pk).status == JobStatus.CANCELLED
    assert cancel_job(str(delayed.pk)).status == JobStatus.CANCELLED
    assert drain("default") == 0
    assert JobAttempt.objects.count() == 0
    with pytest.raises(InvalidJobState, match="already cancelled"):
        cancel_job(waiting.pk)


def test_cancelled_while_active_keeps_cancelled_and_records_the_attempt():
    job = enqueue("test.cancel_self", {})
    drain("default")
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.result is None
    (attempt,) = job.attempts.all()
    assert attempt.outcome == AttemptOutcome.CANCELLED
    assert "cancelled while this attempt ran" in attempt.error


def test_retry_gives_a_failed_job_a_fresh_set_of_attempts():
    job = enqueue("platform.fail", {"message": "x"}, attempts=1)
    drain("default")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    retried = retry_job(job.pk)
    assert retried.status == JobStatus.WAITING
    assert retried.error == "" and retried.finished_at is None
    drain("default")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert list(job.attempts.values_list("number", flat=True)) == [1, 2]


def test_refused_operations_change_nothing():
    job = enqueue("platform.echo", {})
    drain("default")
    before = Job.objects.values().get(pk=job.pk)
    with pytest.raises(InvalidJobState, match="only failed or cancelled"):
        retry_job(job.pk)
    with pytest.raises(InvalidJobState, match="already completed"):
        cancel_job(job.pk)
    assert Job.objects.values().get(pk=job.pk) == before
    with pytest.raises(JobNotFound):
        retry_job("not-a-uuid")
    with pytest.raises(JobNotFound):
        cancel_job("01a205ef-13dd-71e0-9ec0-5c865531f7f1")
    with pytest.raises(QueueNotFound):
        pause_queue("nope")


def test_batches_grow_for_fast_jobs_and_every_job_runs_once():
    enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(450)])
    assert drain("default") == 450
    assert Job.objects.filter(status=JobStatus.COMPLETED).count() == 450
    assert not JobAttempt.objects.exists()  # each ran once, and succeeded: no history
    assert sorted(Job.objects.values_list("result__i", flat=True)) == list(range(450))


# --- one bad job, a deleted job or a late report never breaks a batch ----------------------


def test_a_result_or_error_the_database_cannot_hold_fails_only_that_job():
    enqueue("platform.echo", {"warm": True})
    drain("default")  # learn: the next claim takes the whole batch
    good = enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(4)])
    nan = enqueue("test.nan_result", {})
    nul = enqueue("test.nul_error", {}, attempts=1)
    drain("default")
    assert all(Job.objects.get(pk=j.pk).status == JobStatus.COMPLETED for j in good)
    nan.refresh_from_db()
    nul.refresh_from_db()
    assert nan.status == JobStatus.FAILED and "not JSON-serializable" in nan.error
    assert nul.status == JobStatus.FAILED and "bad\\x00byte" in nul.error


def claim_one(job):
    (claimed,) = claim_jobs(queue=get_queue("default"), worker="host:1", limit=1).jobs
    assert claimed.id == job.pk
    return claimed


def outcome_of(claimed, status=JobStatus.COMPLETED):
    now = timezone.now()
    return Outcome(
        job=claimed,
        status=status,
        attempt_outcome=AttemptOutcome.COMPLETED,
        started_at=now,
        finished_at=now,
        result_json="{}",
    )


def test_a_cancelled_job_still_stopping_cannot_be_retried_or_deleted_until_it_stops():
    job = enqueue("platform.echo", {})
    claimed = claim_one(job)
    cancel_job(job.pk)
    with pytest.raises(InvalidJobState, match="still stopping"):
        retry_job(job.pk)
    assert delete_jobs(Job.objects.filter(pk=job.pk)) == (0, 1)
    finalize([outcome_of(claimed)], worker="host:1")  # the handler returned
    job.refresh_from_db()
    assert (job.status, job.worker) == (JobStatus.CANCELLED, "")
    assert job.attempts.get().outcome == AttemptOutcome.CANCELLED
    assert retry_job(job.pk).status == JobStatus.WAITING


def test_finalizing_a_job_deleted_meanwhile_does_not_break_the_batch():
    a, b = enqueue("platform.echo", {}), enqueue("platform.echo", {})
    claimed = claim_jobs(queue=get_queue("default"), worker="host:1", limit=2).jobs
    Job.objects.filter(pk=a.pk).delete()
    applied = finalize([outcome_of(c) for c in claimed], worker="host:1")
    assert applied == {b.pk}
    assert Job.objects.get(pk=b.pk).status == JobStatus.COMPLETED
    assert [a.outcome for a in Job.objects.get(pk=b.pk).attempt_history()] == ["completed"]


def test_a_late_outcome_after_a_stall_sweep_keeps_the_stalled_attempt_row():
    job = enqueue("platform.echo", {})
    claimed = claim_one(job)
    recover_stalled(now=timezone.now() + timedelta(minutes=5))  # the lock "expired"
    assert finalize([outcome_of(claimed)], worker="host:1") == set()
    job.refresh_from_db()
    assert job.status == JobStatus.WAITING
    assert list(job.attempts.values_list("number", "outcome")) == [(1, "stalled")]
    assert "late report from host:1, discarded" in job.attempts.get().error
