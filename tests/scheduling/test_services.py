"""Schedule services with an explicit clock: firing, misfires, limits, status, isolation."""

from datetime import UTC, datetime, timedelta

import pytest
from django_celery_beat.models import CrontabSchedule, IntervalSchedule

from queues.engine.runner import drain
from queues.models import Job
from scheduling import services
from scheduling.cron import ScheduleError
from scheduling.models import RunTrigger, ScheduledJob, ScheduleRun, ScheduleStatus
from scheduling.selectors import describe_schedule, next_runs
from scheduling.system import SYSTEM_SCHEDULES, sync_system_schedules

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def at(**delta) -> datetime:
    return T0 + timedelta(**delta)


def every(seconds: int, name: str = "tick", **kw) -> ScheduledJob:
    return services.create_schedule(
        name=name, handler="platform.echo", every=seconds, start_at=T0, now=T0, **kw
    )


def runs(schedule) -> list[tuple[datetime, str]]:
    return list(schedule.runs.order_by("due_at").values_list("due_at", "trigger"))


def test_cron_schedule_fires_into_its_queue_with_its_options():
    schedule = services.create_schedule(
        name="backup",
        handler="platform.echo",
        cron="0 2 * * *",
        timezone_name="Asia/Shanghai",
        queue="data-export",
        payload={"backupType": "full"},
        priority=3,
        retry_attempts=5,
        retry_delay_ms=5000,
        timeout=300,
        now=T0,
    )
    due = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)  # 02:00 in Shanghai
    assert schedule.next_run_at == due
    assert services.fire_due(now=due - timedelta(seconds=1)) == 0
    assert services.fire_due(now=due) == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at == due + timedelta(days=1)
    assert (schedule.run_count, schedule.last_run_at) == (1, due)
    run = schedule.runs.get()
    assert (run.due_at, run.trigger, run.lateness_ms) == (due, RunTrigger.SCHEDULED, 0)
    job = run.job
    assert job.queue.name == "data-export" and job.payload == {"backupType": "full"}
    assert (job.priority, job.max_attempts, job.timeout) == (3, 5, 300)
    assert job.backoff == {"type": "fixed", "delay": 5000}
    assert services.fire_due(now=due) == 0  # nothing due twice


def test_the_database_refuses_a_second_run_of_the_same_instant():
    schedule = every(60)
    services.fire_due(now=at(seconds=60))
    # A stale copy of the row would try the same instant again: the unique run row stops it.
    ScheduledJob.objects.filter(pk=schedule.pk).update(next_run_at=at(seconds=60))
    assert services.fire_due(now=at(seconds=60)) == 0
    assert ScheduleRun.objects.count() == 1 and Job.objects.count() == 1


def test_interval_schedule_fires_on_its_grid():
    schedule = every(10)
    for second in (10, 20, 30):
        services.fire_due(now=at(seconds=second, milliseconds=300))
    assert [d for d, _ in runs(schedule)] == [at(seconds=10), at(seconds=20), at(seconds=30)]


def test_clocked_one_off_fires_once_then_is_done():
    schedule = services.create_schedule(
        name="once", handler="platform.echo", run_at=at(minutes=5), now=T0
    )
    assert services.fire_due(now=at(minutes=5)) == 1
    schedule.refresh_from_db()
    assert schedule.status == ScheduleStatus.DISABLED and schedule.next_run_at is None
    assert services.fire_due(now=at(days=1)) == 0


def test_run_limit_and_end_date_stop_the_schedule():
    limited = every(10, run_limit=2)
    ended = every(10, name="ended", end_at=at(seconds=15))
    for second in (10, 20, 30):
        services.fire_due(now=at(seconds=second))
    assert len(runs(limited)) == 2 and len(runs(ended)) == 1
    for schedule in (limited, ended):
        schedule.refresh_from_db()
        assert schedule.status == ScheduleStatus.DISABLED and schedule.next_run_at is None


def test_start_date_and_run_immediately():
    later = services.create_schedule(
        name="later", handler="platform.echo", cron="0 * * * *", start_at=at(hours=5), now=T0
    )
    assert later.next_run_at == at(hours=5)
    now = services.create_schedule(
        name="now", handler="platform.echo", cron="0 * * * *", run_immediately=True, now=T0
    )
    assert runs(now) == [(T0, RunTrigger.IMMEDIATE)]
    assert now.next_run_at == at(hours=1)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("skip", []),
        ("run_once", [(at(minutes=60), RunTrigger.CATCH_UP)]),
        (
            "catch_up",
            [(at(minutes=m), RunTrigger.CATCH_UP) for m in (40, 50, 60)],
        ),
    ],
)
def test_misfire_policies(policy, expected):
    schedule = every(600, misfire_policy=policy, max_catch_up=3)
    # The scheduler was down from 10:00 to 11:05; six runs were missed.
    now = at(minutes=65)
    services.fire_due(now=now)
    assert runs(schedule) == expected
    schedule.refresh_from_db()
    assert schedule.next_run_at == at(minutes=70)


def test_paused_schedule_does_not_fire_and_resume_applies_the_misfire_policy():
    schedule = every(600, misfire_policy="run_once")
    services.pause(schedule, now=T0)
    assert services.fire_due(now=at(minutes=30)) == 0
    services.resume(schedule, now=at(minutes=25))
    services.fire_due(now=at(minutes=25))
    # 10:10 and 10:20 were missed while paused: run once, for the latest.
    assert runs(schedule) == [(at(minutes=20), RunTrigger.CATCH_UP)]


def test_disable_and_enable():
    schedule = every(600)
    schedule = services.disable(schedule)
    assert (schedule.status, schedule.next_run_at) == (ScheduleStatus.DISABLED, None)
    assert services.fire_due(now=at(days=1)) == 0
    schedule = services.enable(schedule, now=at(minutes=15))
    assert schedule.next_run_at == at(minutes=20)
    with pytest.raises(ScheduleError, match="status must be 1"):
        services.set_status(schedule, 5)


def test_run_now_does_not_move_the_next_run():
    schedule = every(600)
    run = services.run_now(schedule, now=at(minutes=3))
    assert run.trigger == RunTrigger.MANUAL and run.job.name == "platform.echo"
    schedule.refresh_from_db()
    assert schedule.next_run_at == at(minutes=10) and schedule.run_count == 0


def test_a_poison_schedule_does_not_stop_the_others():
    good = [every(60, name=f"good-{i}") for i in range(3)]
    poison = every(60, name="poison")
    ScheduledJob.objects.filter(pk=poison.pk).update(handler="removed.handler")
    CrontabSchedule.objects.create(minute="99", hour="*")  # a malformed row nobody uses
    assert services.fire_due(now=at(seconds=60)) == 3
    assert all(len(runs(s)) == 1 for s in good)
    poison.refresh_from_db()
    assert "removed.handler" in poison.last_error
    assert poison.next_run_at == at(seconds=60) + services.POISON_RETRY
    assert not poison.runs.exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of cron, every"),
        ({"cron": "0 2 * * *", "every": 10}, "exactly one of cron, every"),
        ({"cron": "*/10 * * * * *"}, "interval schedule"),
        ({"cron": "0 2 * * *", "timezone_name": "Nowhere/City"}, "unknown time zone"),
        ({"cron": "0 2 * * *", "handler": "nope"}, "no job handler is registered as 'nope'"),
        ({"cron": "0 2 * * *", "queue": "nope"}, "no queue is named 'nope'"),
        ({"cron": "0 2 * * *", "status": 5}, "status must be 1"),
        ({"cron": "0 2 * * *", "priority": 0}, "priority must be"),
        ({"every": 0}, "every must be a whole number"),
        ({"every": 5, "period": "fortnights"}, "period must be one of"),
        ({"run_at": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"cron": "0 2 * * *", "start_at": at(days=2), "end_at": at(days=1)}, "end_at must be"),
        ({"cron": "0 2 * * *", "misfire_policy": "panic"}, "misfire_policy must be"),
    ],
)
def test_bad_definitions_are_refused_and_nothing_is_written(kwargs, message):
    crontabs = CrontabSchedule.objects.count()
    with pytest.raises(ScheduleError, match=message):
        services.create_schedule(**{"name": "bad", "handler": "platform.echo", "now": T0, **kwargs})
    assert not ScheduledJob.objects.exists()
    assert CrontabSchedule.objects.count() == crontabs


def test_duplicate_name_is_refused():
    every(60, name="same")
    with pytest.raises(ScheduleError, match="already exists"):
        every(60, name="same")


def test_next_runs_and_description():
    schedule = services.create_schedule(
        name="weekdays",
        handler="platform.echo",
        cron="0 0 9 * * 1-5",
        timezone_name="UTC",
        now=T0,
    )
    assert next_runs(schedule, 3, after=T0) == [
        datetime(2026, 11, 24, 9, tzinfo=UTC),
        datetime(2026, 11, 25, 9, tzinfo=UTC),
        datetime(2026, 11, 26, 9, tzinfo=UTC),
    ]
    assert describe_schedule(schedule) == "At 09:00, Monday through Friday (UTC)"
    assert describe_schedule(every(90, name="i")) == "Every 0:01:30"


def test_system_schedules_sync_idempotently_and_their_handlers_run():
    assert sync_system_schedules() == {"created": 4, "updated": 0, "retired": 0}
    assert sync_system_schedules() == {"created": 0, "updated": 0, "retired": 0}
    names = set(ScheduledJob.objects.filter(is_system=True).values_list("name", flat=True))
    assert names == {s.name for s in SYSTEM_SCHEDULES}
    ScheduledJob.objects.filter(name="system.hourly-report").update(description="edited")
    assert sync_system_schedules()["updated"] == 1
    for schedule in ScheduledJob.objects.filter(is_system=True):
        services.run_now(schedule)
    for queue in ("log-processing", "report-generation"):
        drain(queue)
    statuses = set(Job.objects.values_list("status", flat=True))
    assert statuses == {"completed"}, list(Job.objects.values_list("name", "error"))
    report = Job.objects.get(name="system.hourly-report").result
    assert report["hours"] == 1 and "queues" in report


def test_duplicate_crontab_and_interval_rows_do_not_break_creation_or_the_sync():
    # celery-beat's models have no unique constraint: an operator can add a twin row.
    for _ in range(2):
        CrontabSchedule.objects.create(
            minute="0",
            hour="2",
            day_of_month="*",
            month_of_year="*",
            day_of_week="*",
            timezone="UTC",
        )
        IntervalSchedule.objects.create(every=30, period="seconds")
    first_crontab = CrontabSchedule.objects.order_by("pk").first()
    first_interval = IntervalSchedule.objects.order_by("pk").first()
    cron = services.create_schedule(
        name="nightly", handler="platform.echo", cron="0 2 * * *", timezone_name="UTC", now=T0
    )
    interval = every(30, name="half-minute")
    assert (cron.crontab, interval.interval) == (first_crontab, first_interval)
    assert cron.next_run_at == datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    assert interval.next_run_at == at(seconds=30)
    assert sync_system_schedules()["created"] == len(SYSTEM_SCHEDULES)
    nightly = ScheduledJob.objects.get(name="system.cleanup-expired-data")
    assert nightly.crontab == first_crontab
    assert CrontabSchedule.objects.count() == 4  # + hourly and daily; no third "0 2 * * *"
    assert IntervalSchedule.objects.count() == 2


def test_run_now_and_status_changes_are_audited_with_who_asked():
    from django.contrib.auth.models import User

    from queues.models import AuditLog

    user = User.objects.create_user("ops")
    schedule = every(60)
    services.run_now(schedule, by=user, now=at(minutes=1))
    services.pause(schedule, by="manage.py")
    services.resume(schedule, by=user)
    services.disable(schedule)
    assert list(
        AuditLog.objects.order_by("id").values_list("action", "target", "count", "username")
    ) == [
        ("run_schedules", "tick", 1, "ops"),
        ("pause_schedules", "tick", 1, "manage.py"),
        ("enable_schedules", "tick", 1, "ops"),
        ("disable_schedules", "tick", 1, ""),
    ]
    assert AuditLog.objects.get(action="run_schedules").user == user


def test_the_api_and_the_admin_edit_form_audit_who_asked(admin_client, admin_user):
    # The edges pass their user on: the API's run-now and status change, and a status
    # changed through the admin's edit form (scheduling/changes.py update_schedule).
    from rest_framework.test import APIClient

    from queues.models import AuditLog

    schedule = services.create_schedule(
        name="nightly", handler="platform.echo", cron="0 2 * * *", timezone_name="UTC"
    )
    api = APIClient()
    api.force_authenticate(admin_user)
    url = f"/api/v1/schedules/{schedule.pk}/"
    assert api.post(f"{url}run/").status_code == 201
    assert api.patch(url, {"status": "paused"}, format="json").status_code == 200
    form = {
        "name": "nightly",
        "status": str(ScheduleStatus.ENABLED),
        "handler": "platform.echo",
        "payload": "{}",
        "kind": "cron",
        "cron": "0 2 * * *",
        "timezone": "UTC",
        "misfire_policy": schedule.misfire_policy,
        "max_catch_up": str(schedule.max_catch_up),
        # The run-history inline (prefix "runs") is part of the change form.
        "runs-TOTAL_FORMS": "0",
        "runs-INITIAL_FORMS": "0",
        "runs-MIN_NUM_FORMS": "0",
        "runs-MAX_NUM_FORMS": "0",
    }
    response = admin_client.post(f"/admin/scheduling/scheduledjob/{schedule.pk}/change/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert ScheduledJob.objects.get().status == ScheduleStatus.ENABLED
    assert list(
        AuditLog.objects.order_by("id").values_list("action", "target", "count", "username")
    ) == [
        ("run_schedules", "nightly", 1, "admin"),
        ("pause_schedules", "nightly", 1, "admin"),
        ("enable_schedules", "nightly", 1, "admin"),
    ]
    assert {row.user for row in AuditLog.objects.all()} == {admin_user}


def test_a_refused_status_writes_no_audit_row():
    from queues.models import AuditLog

    schedule = every(60)
    with pytest.raises(ScheduleError):
        services.set_status(schedule, 5, by="manage.py")
    assert not AuditLog.objects.exists()


def test_identical_one_offs_share_their_clocked_row():
    from django_celery_beat.models import ClockedSchedule

    when = T0 + timedelta(days=1)
    a = services.create_schedule(name="a", handler="platform.echo", run_at=when, now=T0)
    b = services.create_schedule(name="b", handler="platform.echo", run_at=when, now=T0)
    assert a.clocked_id == b.clocked_id and ClockedSchedule.objects.count() == 1
