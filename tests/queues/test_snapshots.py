"""Queue snapshots: counts by status and each queue's oldest waiting job, as the
maintenance loop stores them. The oldest waiting job is read from the claim index, one
probe a priority: it must be the job a plain scan of every waiting job finds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Min

from queues import enqueue_many, metrics
from queues.models import Job, JobStatus, Queue, QueueSnapshot
from queues.priority import MAX_PRIORITY, MIN_PRIORITY

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _aged(job: Job, minutes: int, **fields) -> None:
    Job.objects.filter(pk=job.pk).update(created_at=T0 + timedelta(minutes=minutes), **fields)


def test_the_oldest_waiting_job_of_each_queue_whatever_its_priority():
    default, email = Queue.objects.get(name="default"), Queue.objects.get(name="email")
    Queue.objects.get_or_create(name="quiet")
    jobs = enqueue_many(
        [{"name": "platform.echo", "priority": p} for p in (MIN_PRIORITY, 5, MAX_PRIORITY)]
        + [{"name": "platform.echo", "queue": "email", "priority": 3} for _ in range(2)]
    )
    # The oldest waiting job of "default" has the lowest urgency (priority 10): a probe
    # that stopped at the first priority with jobs would miss it.
    _aged(jobs[0], 30)
    _aged(jobs[1], 20)
    _aged(jobs[2], 10)
    # Older than all, but not waiting: they do not count.
    _aged(jobs[3], 1, status=JobStatus.ACTIVE)
    _aged(jobs[4], 40)
    older_delayed = enqueue_many([{"name": "platform.echo", "delay": 60}])[0]
    _aged(older_delayed, 0)

    metrics.refresh_snapshots(now=T0 + timedelta(hours=1))

    oldest = dict(QueueSnapshot.objects.values_list("queue__name", "oldest_waiting_at"))
    assert oldest == {
        "default": T0 + timedelta(minutes=10),
        "email": T0 + timedelta(minutes=40),
        "quiet": None,  # nothing waits
        **{
            name: None
            for name in Queue.objects.exclude(name__in=["default", "email", "quiet"]).values_list(
                "name", flat=True
            )
        },
    }
    # The same as a scan of every waiting job.
    scanned = dict(
        Job.objects.filter(status=JobStatus.WAITING)
        .order_by()
        .values_list("queue__name")
        .annotate(oldest=Min("created_at"))
    )
    assert {k: v for k, v in oldest.items() if v} == scanned
    snapshot = QueueSnapshot.objects.get(queue=default)
    assert snapshot.counts[JobStatus.WAITING] == 3
    assert QueueSnapshot.objects.get(queue=email).counts[JobStatus.ACTIVE] == 1
    # What the pages show: the age of that job.
    page_default = Queue.objects.select_related("snapshot").get(pk=default.pk)
    assert page_default.latency_seconds(T0 + timedelta(hours=1)) == 50 * 60
