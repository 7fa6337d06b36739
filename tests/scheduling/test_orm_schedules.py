"""Schedules written with the ORM (fixtures, loaddata, data migrations, scripts): the
scheduler plans the ones nobody planned and replans the ones edited behind its back."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, IntervalSchedule

from scheduling import services, tick
from scheduling.models import RunTrigger, ScheduledJob

pytestmark = pytest.mark.django_db

FIXTURE = Path(__file__).parent / "fixtures" / "every_ten_seconds.json"
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # the fixture's start_at


def at(**delta) -> datetime:
    return T0 + timedelta(**delta)


def runs(schedule) -> list[tuple[datetime, str]]:
    return list(schedule.runs.order_by("due_at").values_list("due_at", "trigger"))


def test_a_loaddata_schedule_is_planned_and_fires_on_the_next_tick(monkeypatch):
    monkeypatch.setattr(tick, "_synced", True)  # the system schedules are not under test
    call_command("loaddata", str(FIXTURE), verbosity=0)
    schedule = ScheduledJob.objects.get(name="fixture-every-ten-seconds")
    assert schedule.next_run_at is None

    tick.scheduler_tick(now=at(seconds=5))
    schedule.refresh_from_db()
    assert schedule.next_run_at == at(seconds=10)
    assert runs(schedule) == []

    tick.scheduler_tick(now=at(seconds=10))
    schedule.refresh_from_db()
    assert runs(schedule) == [(at(seconds=10), RunTrigger.SCHEDULED)]
    assert schedule.runs.get().job.payload == {"from": "fixture"}
    assert (schedule.run_count, schedule.next_run_at) == (1, at(seconds=20))


def every(seconds: int, name: str = "tick") -> ScheduledJob:
    return services.create_schedule(
        name=name, handler="platform.echo", every=seconds, start_at=T0, now=T0
    )


def test_an_orm_edit_of_the_interval_moves_the_next_run():
    schedule = every(10)
    services.fire_due(now=at(seconds=10))
    schedule.refresh_from_db()
    assert schedule.next_run_at == at(seconds=20)

    schedule.interval = IntervalSchedule.objects.create(every=60, period="seconds")
    schedule.save()  # a script's edit: no service recomputes the next run
    assert services.plan_schedules(now=at(seconds=15)) == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at == at(seconds=60)
    assert services.fire_due(now=at(seconds=20)) == 0
    assert services.fire_due(now=at(seconds=60)) == 1
    assert runs(schedule) == [
        (at(seconds=10), RunTrigger.SCHEDULED),
        (at(seconds=60), RunTrigger.SCHEDULED),
    ]


def test_an_edit_of_a_shared_crontab_row_moves_the_next_run():
    schedule = services.create_schedule(
        name="nightly", handler="platform.echo", cron="0 2 * * *", timezone_name="UTC", now=T0
    )
    assert schedule.next_run_at == datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    CrontabSchedule.objects.filter(pk=schedule.crontab_id).update(hour="3")  # celery-beat admin
    assert services.plan_schedules(now=T0) == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at == datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def test_planning_leaves_untouched_schedules_and_their_missed_runs_alone():
    schedule = every(10)
    # The scheduler was away for a minute: the overdue run must stay due (misfire policy).
    assert services.plan_schedules(now=at(seconds=70)) == 0
    schedule.refresh_from_db()
    assert schedule.next_run_at == at(seconds=10)
    assert services.fire_due(now=at(seconds=70)) == 7  # all within the misfire grace
    assert runs(schedule) == [(at(seconds=s), RunTrigger.SCHEDULED) for s in range(10, 71, 10)]


def test_an_orm_row_that_names_its_next_run_keeps_it():
    interval = IntervalSchedule.objects.create(every=10, period="seconds")
    schedule = ScheduledJob.objects.create(
        name="scripted", handler="platform.echo", interval=interval, next_run_at=at(seconds=3)
    )
    assert services.plan_schedules(now=T0) == 0
    schedule.refresh_from_db()
    assert schedule.next_run_at == at(seconds=3)
    # Adopted: a later edit behind the services' back is seen.
    ScheduledJob.objects.filter(pk=schedule.pk).update(start_at=at(minutes=5))
    assert services.plan_schedules(now=T0) == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at == at(minutes=5)


def test_an_enabled_orm_row_whose_one_off_has_passed_is_disabled():
    clocked = services.clocked_for(at(seconds=-1))
    schedule = ScheduledJob.objects.create(name="late", handler="platform.echo", clocked=clocked)
    assert services.plan_schedules(now=T0) == 1
    schedule.refresh_from_db()
    assert (schedule.status, schedule.next_run_at) == (0, None)
