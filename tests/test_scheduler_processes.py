"""Several runscheduler processes at once: every due schedule fires exactly once."""

import statistics
from datetime import timedelta

import pytest
from django.utils import timezone

from queues.models import Job
from scheduling import services
from scheduling.models import ScheduledJob, ScheduleRun
from tests.helpers import wait_for

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
