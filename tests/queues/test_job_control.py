"""Timeouts, keyed rate limits, queue rate limits and concurrency caps, run in process."""

import time

import pytest
from django.utils import timezone

from queues import enqueue, enqueue_many
from queues.engine.claim import claim_jobs
from queues.engine.maintenance import promote_delayed
from queues.engine.runner import drain
from queues.models import AttemptOutcome, Job, JobAttempt, JobStatus, Queue
from queues.selectors import get_queue
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db


def test_a_job_over_its_timeout_is_stopped_recorded_and_retried():
    job = enqueue(
        "test.slow", {"seconds": 30}, timeout=0.3, attempts=2, backoff={"type": "fixed", "delay": 0}
    )
    started = time.monotonic()
    drain("default")
    assert time.monotonic() - started < 5
    job.refresh_from_db()
    assert job.status == JobStatus.DELAYED
    assert "exceeded its timeout of 0.3s" in job.error
    promote_delayed()
    drain("default")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "attempts exhausted: 2 of 2" in job.error
    outcomes = list(job.attempts.values_list("outcome", "duration_ms"))
    assert [o for o, _ in outcomes] == [AttemptOutcome.TIMEOUT, AttemptOutcome.TIMEOUT]
    assert all(250 <= ms < 3000 for _, ms in outcomes)


def test_timeout_comes_from_the_queue_default_when_not_given():
    Queue.objects.filter(name="email").update(default_timeout=0.2)
    job = enqueue("test.slow", {"seconds": 30}, queue="email", attempts=1)
    assert job.timeout == 0.2
    drain("email")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.attempts.get().outcome == AttemptOutcome.TIMEOUT


def test_a_job_within_its_timeout_is_not_disturbed():
    job = enqueue("test.slow", {"seconds": 0.05}, timeout=5)
    drain("default")
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED


def test_keyed_rate_limit_delays_jobs_without_failing_or_spending_attempts():
    jobs = enqueue_many(
        [{"name": "test.sms", "payload": {"phone": "+100", "limit": 2, "per": 1}} for _ in range(5)]
        + [{"name": "test.sms", "payload": {"phone": "+200", "limit": 2, "per": 1}}]
    )
    drain("default")
    statuses = {j.pk: Job.objects.get(pk=j.pk) for j in jobs}
    completed = [j for j in statuses.values() if j.status == JobStatus.COMPLETED]
    delayed = [j for j in statuses.values() if j.status == JobStatus.DELAYED]
    # Two for +100 and the one for +200 went out; three +100 messages wait for the window.
    assert len(completed) == 3 and len(delayed) == 3
    assert all(j.attempts_made == 0 and j.run_at > timezone.now() for j in delayed)
    assert all("rate limit 'phone:+100' exhausted" in j.error for j in delayed)
    assert not JobAttempt.objects.exists()  # no rows for the deferred tries
    # The three sent: one attempt each, on its job's row.
    assert [len(j.attempt_history()) for j in completed] == [1, 1, 1]

    def all_done():
        promote_delayed()
        drain("default")
        return Job.objects.filter(status=JobStatus.COMPLETED).count() == 6

    wait_for(all_done, timeout=10, interval=0.1, message="the limited messages to go out")
    assert not Job.objects.filter(status=JobStatus.FAILED).exists()
    starts = sorted(
        JobAttempt.objects.filter(job__payload__phone="+100").values_list("started_at", flat=True)
    )
    # Never more than 2 per 1 s window for one phone.
    assert all((starts[i + 2] - starts[i]).total_seconds() >= 0.9 for i in range(len(starts) - 2))


def test_queue_rate_limit_spreads_starts_over_windows():
    Queue.objects.filter(name="default").update(rate_limit_max=5, rate_limit_duration_ms=500)
    enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(12)])

    def all_done():
        drain("default")
        return Job.objects.filter(status=JobStatus.COMPLETED).count() == 12

    wait_for(all_done, timeout=15, interval=0.05, message="12 rate-limited jobs")
    starts = sorted(JobAttempt.objects.values_list("started_at", flat=True))
    assert all((starts[i + 5] - starts[i]).total_seconds() >= 0.45 for i in range(len(starts) - 5))
    assert not Job.objects.exclude(status=JobStatus.COMPLETED).exists()


def test_a_full_concurrency_cap_does_not_hold_the_worker():
    Queue.objects.filter(name="default").update(concurrency=1)
    running = enqueue("platform.echo", {})
    # Another worker holds the only slot.
    (claimed,) = claim_jobs(queue=get_queue("default"), worker="host:1", limit=1).jobs
    assert claimed.id == running.pk
    enqueue("platform.echo", {})
    started = time.monotonic()
    assert drain("default") == 0
    assert time.monotonic() - started < 1.0
