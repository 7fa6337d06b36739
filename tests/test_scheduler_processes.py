"""runscheduler processes: several copies fire every due schedule exactly once, and a
Redis outage does not stop the firing."""

import shutil
import statistics
from datetime import timedelta

import pytest
from django.db.models import QuerySet
from django.utils import timezone

from queues.models import Job, JobStatus, SchedulerHeartbeat
from scheduling import services
from scheduling.models import ScheduledJob, ScheduleRun
from tests.helpers import PrivateRedis, skip_unless_ci, wait_for

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]


def test_three_scheduler_copies_fire_60_schedules_exactly_once_despite_a_poison_row(processes):
    due = timezone.now() + timedelta(seconds=4)
    for i in range(60):
        services.create_schedule(
            name=f"one-off-{i}", handler="platform.echo", run_at=due, payload={"i": i}
        )
    poison = services.create_schedule(name="poison", handler="platform.echo", run_at=due)
    ScheduledJob.objects.filter(pk=poison.pk).update(handler="removed.handler")

    copies = [processes.start("runscheduler") for _ in range(3)]
    wait_for(lambda: ScheduleRun.objects.count() >= 60, timeout=30, message="60 runs")
    wait_for(
        lambda: ScheduledJob.objects.get(pk=poison.pk).last_error != "",
        timeout=30,
        message="the poison row to be recorded",
    )
    for copy in copies:
        assert processes.stop(copy) == 0, processes.output(copy)

    assert ScheduleRun.objects.count() == 60
    assert Job.objects.filter(name="platform.echo").count() == 60
    assert sorted(Job.objects.values_list("payload__i", flat=True)) == list(range(60))
    assert "removed.handler" in ScheduledJob.objects.get(pk=poison.pk).last_error
    lateness = sorted(r.lateness_ms for r in ScheduleRun.objects.all())
    print(
        f"\nFIRE LATENESS over 60 firings, 3 copies: p50={statistics.median(lateness):.0f} ms "
        f"p99={lateness[int(len(lateness) * 0.99) - 1]} ms max={lateness[-1]} ms"
    )
    assert lateness[-1] < 1000  # within 1 s of the due time


@pytest.fixture
def own_redis(settings):
    """A redis-server of this test's own, which it may stop and start again (never the
    shared one): ``(url, client, start, stop)``."""
    if shutil.which("redis-server") is None:
        skip_unless_ci("redis-server is not installed")
    server = PrivateRedis()
    try:  # every server started goes away, even when one fails to come up
        server.start()
        settings.REDIS_URL = server.url
        yield server.url, server.client, server.start, server.stop
    finally:
        server.close()


def test_the_scheduler_keeps_firing_through_a_redis_outage_and_the_backlog_runs_after(
    processes, own_redis
):
    url, _, start_redis, stop_redis = own_redis
    fast = {"REWAKE_INTERVAL": "1", "STALL_CHECK_INTERVAL": "0.5", "REDIS_URL": url}
    schedule = services.create_schedule(name="every-second", handler="platform.echo", every=1)
    scheduler = processes.start("runscheduler", **fast)
    worker = processes.start("runworker", "--workers", "1", **fast)

    def fired() -> QuerySet:
        return Job.objects.filter(schedule_runs__schedule=schedule)

    wait_for(
        lambda: fired().filter(status=JobStatus.COMPLETED).count() >= 2,
        timeout=30,
        message="the schedule's first jobs to run",
    )
    stop_redis()
    runs_at_stop = ScheduleRun.objects.filter(schedule=schedule).count()
    beat_at_stop = SchedulerHeartbeat.objects.get().last_tick

    # About 10 s without Redis: the schedule goes on firing into the ledger, one run a
    # second, and the scheduler's heartbeat goes on.
    wait_for(
        lambda: ScheduleRun.objects.filter(schedule=schedule).count() >= runs_at_stop + 10,
        timeout=20,
        message="10 runs while Redis is down",
    )
    assert SchedulerHeartbeat.objects.get().last_tick > beat_at_stop
    # No doorbell reached the worker: the runs' jobs pile up in the ledger.
    piled = fired().filter(status=JobStatus.WAITING).count()
    assert piled >= 5
    assert scheduler.poll() is None and worker.poll() is None

    start_redis()
    upto = ScheduleRun.objects.filter(schedule=schedule).count()
    wait_for(
        lambda: fired().filter(status=JobStatus.COMPLETED).count() >= upto,
        timeout=30,
        message="the jobs that piled up to run once Redis is back",
    )
    for proc in (scheduler, worker):
        assert processes.stop(proc) == 0, processes.output(proc)
    runs = ScheduleRun.objects.filter(schedule=schedule)
    assert runs.filter(job__isnull=True).count() == 0
    # Only runs fired after the last check may still wait; nothing failed or was lost.
    assert set(fired().values_list("status", flat=True)) <= {"completed", "waiting"}
    assert runs.count() == fired().count()
    # Every second of the outage has its run: no instant was skipped or fired twice.
    dues = list(runs.order_by("due_at").values_list("due_at", flat=True))
    assert all(b - a == timedelta(seconds=1) for a, b in zip(dues, dues[1:], strict=False))
