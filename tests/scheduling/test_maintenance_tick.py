"""One maintenance tick with Redis unreachable: the ledger's work still gets done."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from queues import doorbell, enqueue
from queues.engine import maintenance
from queues.models import Job, JobStatus, QueueSnapshot, SchedulerHeartbeat
from scheduling import services, tick
from scheduling.models import ScheduleRun
from tests.helpers import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_down(settings):
    """A Redis URL on a port nothing listens on: every Redis call is refused at once."""
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    yield settings.REDIS_URL
    doorbell.flush()  # whatever fire_due rang goes nowhere, quietly


def test_a_tick_without_redis_fires_promotes_beats_and_snapshots(redis_down, monkeypatch):
    monkeypatch.setattr(tick, "_synced", True)  # the system schedules are not under test
    now = timezone.now()
    schedule = services.create_schedule(
        name="every-second", handler="platform.echo", every=1, now=now - timedelta(seconds=1)
    )
    delayed = enqueue("platform.echo", {"i": 1}, delay=60)
    ready = enqueue("platform.echo", {"i": 2})  # a waiting job: the tick rings its queue
    Job.objects.filter(pk=delayed.pk).update(run_at=now - timedelta(seconds=1))

    loop = maintenance.Maintenance()
    loop.next_retention = 0.0  # due now as well
    loop.tick()

    assert Job.objects.get(pk=delayed.pk).status == JobStatus.WAITING
    assert Job.objects.get(pk=ready.pk).status == JobStatus.WAITING
    assert ScheduleRun.objects.filter(schedule=schedule).count() == 1
    assert Job.objects.filter(payload={}, name="platform.echo").count() == 1
    assert SchedulerHeartbeat.objects.filter(id=loop.id).exists()
    assert QueueSnapshot.objects.filter(queue__name="default").get().counts["waiting"] == 2
    assert loop.next_retention > time.monotonic()  # retention ran in the tick, caught up


# transaction=True: a failed step drops the connection (close_old_connections), as it must
# outside a test's transaction.
@pytest.mark.django_db(transaction=True)
def test_a_failing_step_does_not_stop_the_others(monkeypatch):
    monkeypatch.setattr(tick, "_synced", True)

    def broken():
        raise RuntimeError("promotion is broken")

    monkeypatch.setattr(maintenance, "promote_delayed", broken)
    schedule = services.create_schedule(
        name="every-second",
        handler="platform.echo",
        every=1,
        now=timezone.now() - timedelta(seconds=1),
    )
    loop = maintenance.Maintenance()
    loop.tick()
    assert ScheduleRun.objects.filter(schedule=schedule).count() == 1
    assert SchedulerHeartbeat.objects.filter(id=loop.id).exists()
    assert QueueSnapshot.objects.exists()
