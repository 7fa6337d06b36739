"""Edge cases that once broke a whole batch or let a job run twice."""

import time

import pytest

from queues import cancel_job, enqueue, enqueue_many, retry_job, retry_jobs
from queues.engine.claim import claim_jobs
from queues.engine.finalize import Outcome, finalize
from queues.engine.runner import drain
from queues.exceptions import EnqueueError, InvalidJobState
from queues.models import AttemptOutcome, Job, JobAttempt, JobStatus, Queue
from queues.selectors import get_queue
from queues.services import delete_jobs
from tests.queues import handlers  # noqa: F401

pytestmark = pytest.mark.django_db


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


def test_a_payload_with_nul_is_refused():
    with pytest.raises(EnqueueError, match="NUL"):
        enqueue("platform.echo", {"s": "a\x00b"})
    assert not Job.objects.exists()


def claim_one(job):
    (claimed,) = claim_jobs(queue=get_queue("default"), worker="host:1", limit=1).jobs
    assert claimed.id == job.pk
    return claimed


def outcome_of(claimed, status=JobStatus.COMPLETED):
    from django.utils import timezone

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
    assert list(JobAttempt.objects.values_list("job_id", flat=True)) == [b.pk]


def test_retrying_a_job_whose_unique_key_is_taken_is_refused_cleanly():
    first = enqueue("platform.fail", {"permanent": True}, unique_key="k")
    drain("default")
    second = enqueue("platform.echo", {}, unique_key="k")
    assert second.pk != first.pk
    with pytest.raises(InvalidJobState, match="has its unique_key 'k'"):
        retry_job(first.pk)
    assert retry_jobs(Job.objects.filter(status=JobStatus.FAILED)) == 0
    assert Job.objects.get(pk=first.pk).status == JobStatus.FAILED


def test_a_full_concurrency_cap_does_not_hold_the_worker():
    Queue.objects.filter(name="default").update(concurrency=1)
    running = enqueue("platform.echo", {})
    claim_one(running)  # another worker holds the only slot
    enqueue("platform.echo", {})
    started = time.monotonic()
    assert drain("default") == 0
    assert time.monotonic() - started < 1.0


def test_a_late_outcome_after_a_stall_sweep_keeps_the_stalled_attempt_row():
    from datetime import timedelta

    from django.utils import timezone

    from queues.engine.recovery import recover_stalled

    job = enqueue("platform.echo", {})
    claimed = claim_one(job)
    recover_stalled(now=timezone.now() + timedelta(minutes=5))  # the lock "expired"
    assert finalize([outcome_of(claimed)], worker="host:1") == set()
    job.refresh_from_db()
    assert job.status == JobStatus.WAITING
    assert list(job.attempts.values_list("number", "outcome")) == [(1, "stalled")]
    assert "late report from host:1, discarded" in job.attempts.get().error
