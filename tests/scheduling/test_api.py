"""The schedules API: each route's success path with the database state after it, the 400
matrix (nothing written), 404, and 401/403 for every route."""

from datetime import UTC, datetime, timedelta
from operator import attrgetter, itemgetter
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission, User
from django.forms.models import model_to_dict
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule
from rest_framework.test import APIClient

from queues.models import Job
from scheduling import services
from scheduling.models import ScheduledJob, ScheduleRun, ScheduleStatus
from scheduling.selectors import next_runs
from tests.helpers import freeze_clock, ledger_state

pytestmark = pytest.mark.django_db

URL = "/api/v1/schedules/"
SHANGHAI = ZoneInfo("Asia/Shanghai")
BASE = {"name": "n", "handler": "platform.echo"}
CRON = {**BASE, "cron": "0 2 * * *"}
BACKWARDS = {"start_at": "2030-01-02T00:00Z", "end_at": "2030-01-01T00:00Z"}


def client_for(user=None) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def admin():
    return client_for(User.objects.create_superuser("root", "root@example.com", "pw"))


@pytest.fixture
def tick():
    # start_at anchors the every-60-seconds grid (whole seconds, so each run instant is too).
    start = timezone.now().replace(microsecond=0)
    kw = {"every": 60, "payload": {"a": 1}, "start_at": start}
    return services.create_schedule(name="tick", handler="platform.echo", **kw)


def state() -> dict:
    """Everything a refused request must leave as it was: the schedules (every column),
    their beat rows and runs, and the ledger (jobs, queues, audit log)."""
    return {
        "schedules": [model_to_dict(s) for s in ScheduledJob.objects.order_by("pk")],
        "rows": [m.objects.count() for m in (CrontabSchedule, IntervalSchedule, ClockedSchedule)],
        **ledger_state(ScheduledJob, ScheduleRun),
    }


def attrs(obj, names: str) -> tuple:
    return attrgetter(*names.split())(obj)


def items(data, names: str) -> tuple:
    return itemgetter(*names.split())(data)


def test_create_cron_schedule(admin, monkeypatch):
    # One instant for the request and the checks: "the next 02:00 in Shanghai" is then the
    # same answer even when the test runs across 02:00 there (18:00 UTC).
    now = freeze_clock(monkeypatch, timezone.now())
    body = {**CRON, "name": "backup", "timezone": "Asia/Shanghai", "description": "nightly"}
    body |= {"queue": "data-export", "payload": {"backupType": "full"}, "domain": "ops"}
    body |= {"priority": 3, "retry_attempts": 5, "retry_delay_ms": 5000, "timeout_ms": 300000}
    body |= {"misfire_policy": "catch_up", "max_catch_up": 3, "run_limit": 10}
    response = admin.post(URL, body, format="json")
    assert response.status_code == 201, response.data
    schedule = ScheduledJob.objects.get()
    crontab = schedule.crontab
    assert (crontab.minute, crontab.hour, str(crontab.timezone)) == ("0", "2", "Asia/Shanghai")
    assert attrs(schedule, "queue.name payload priority retry_attempts retry_delay_ms") == (
        ("data-export", {"backupType": "full"}, 3, 5, 5000)
    )
    assert attrs(schedule, "timeout misfire_policy max_catch_up run_limit status domain") == (
        (300, "catch_up", 3, 10, 1, "ops")
    )
    local = schedule.next_run_at.astimezone(SHANGHAI)
    assert (local.hour, local.minute) == (2, 0)
    assert now < schedule.next_run_at <= now + timedelta(days=1)
    data = response.data
    assert data["id"] == schedule.pk and data["status_name"] == "enabled"
    assert items(data, "cron timezone every run_at schedule_text timeout_ms description") == (
        ("0 2 * * *", "Asia/Shanghai", None, None, "At 02:00 (Asia/Shanghai)", 300000, "nightly")
    )
    runs = [datetime.fromisoformat(t) for t in data["next_runs"]]
    assert runs[0] == schedule.next_run_at and len(runs) == 5
    assert all(b - a == timedelta(days=1) for a, b in zip(runs, runs[1:], strict=False))
    assert Job.objects.count() == 0


def test_create_from_a_camel_case_body_with_a_six_field_cron(admin):
    # The camelCase body: handlerName, a six-field cronExpression (seconds must be 0),
    # timeout in ms, status 2 (paused).
    body = {"name": "每日数据备份", "handlerName": "platform.echo", "cronExpression": "0 0 2 * * *"}
    body |= {"timezone": "Asia/Shanghai", "payload": {"backupType": "full"}, "status": 2}
    body |= {"retryAttempts": 3, "retryDelay": 5000, "timeout": 300000}
    assert admin.post(URL, body, format="json").status_code == 201
    schedule = ScheduledJob.objects.get()
    assert attrs(schedule, "handler retry_attempts retry_delay_ms timeout status") == (
        ("platform.echo", 3, 5000, 300, ScheduleStatus.PAUSED)
    )
    assert attrs(schedule, "crontab.hour crontab.minute") == ("2", "0")


def test_create_interval_one_off_and_run_immediately(admin):
    body = {**BASE, "name": "i", "every": 30, "period": "minutes", "status": "disabled"}
    response = admin.post(URL, body, format="json")
    assert response.status_code == 201
    assert items(response.data, "every period schedule_text next_runs") == (
        (30, "minutes", "Every 0:30:00", [])
    )
    interval = ScheduledJob.objects.get(name="i")
    assert attrs(interval, "interval.every interval.period status next_run_at") == (
        (30, "minutes", 0, None)
    )

    at = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    body = {**BASE, "name": "o", "run_at": at.isoformat(), "run_immediately": True}
    assert admin.post(URL, body, format="json").status_code == 201
    once = ScheduledJob.objects.get(name="o")
    assert (once.clocked.clocked_time, once.next_run_at, once.run_immediately) == (at, at, True)
    run = once.runs.get()
    assert attrs(run, "trigger job.name job.status") == ("immediate", "platform.echo", "waiting")


def test_list_is_paginated_by_name_with_last_outcome(admin, tick, django_assert_num_queries):
    services.create_schedule(name="alpha", handler="platform.echo", cron="*/5 * * * *")
    services.run_now(tick)
    with django_assert_num_queries(2):  # count + one annotated page, however many rows
        response = admin.get(URL, {"page_size": 1, "page": 2})
    assert response.status_code == 200
    assert response.data["count"] == 2 and response.data["previous"] is not None
    [row] = response.data["results"]
    assert items(row, "name last_run_status every period") == ("tick", "waiting", 60, "seconds")
    assert "payload" not in row and "next_runs" not in row


def test_detail(admin, tick):
    data = admin.get(f"{URL}{tick.pk}/").data
    assert items(data, "name payload schedule_text") == ("tick", {"a": 1}, "Every 0:01:00")
    assert datetime.fromisoformat(data["next_run_at"]) == tick.next_run_at
    runs = [datetime.fromisoformat(t) for t in data["next_runs"]]
    assert runs == [tick.next_run_at + timedelta(minutes=n) for n in range(5)]
    assert (data["last_run_at"], data["run_count"], data["last_error"]) == (None, 0, "")


def test_interval_without_start_at_keeps_one_grid():
    schedule = services.create_schedule(name="g", handler="platform.echo", every=60)
    assert next_runs(schedule, 1) == [schedule.next_run_at]


def test_patch_changes_options_status_and_schedule(admin, tick):
    body = {
        "status": "paused",
        "payload": {"b": 2},
        "priority": 1,
        "retry_attempts": 2,
        "timeout_ms": 1500,
        "description": "d",
        "cron": "30 9 * * 1-5",
        "timezone": "Europe/Paris",
    }
    response = admin.patch(f"{URL}{tick.pk}/", body, format="json")
    assert response.status_code == 200, response.data
    tick.refresh_from_db()
    assert attrs(tick, "status payload priority retry_attempts timeout description") == (
        (2, {"b": 2}, 1, 2, 1.5, "d")
    )
    assert (tick.interval_id, tick.crontab.day_of_week, str(tick.crontab.timezone)) == (
        (None, "1-5", "Europe/Paris")
    )
    local = tick.next_run_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute, local.isoweekday() <= 5) == (9, 30, True)
    assert (response.data["cron"], response.data["status_name"]) == ("30 9 * * 1-5", "paused")

    # The time zone alone keeps the cron string; disabling clears the next run.
    admin.patch(f"{URL}{tick.pk}/", {"timezone": "UTC", "status": 0}, format="json")
    tick.refresh_from_db()
    assert (tick.crontab.hour, str(tick.crontab.timezone), tick.next_run_at) == ("9", "UTC", None)
    admin.patch(f"{URL}{tick.pk}/", {"status": 1, "every": 5, "period": "hours"}, format="json")
    tick.refresh_from_db()
    assert attrs(tick, "crontab_id interval.every interval.period status") == (None, 5, "hours", 1)
    assert tick.next_run_at > timezone.now()


def test_delete_keeps_the_jobs(admin, tick):
    job = services.run_now(tick).job
    assert admin.delete(f"{URL}{tick.pk}/").status_code == 204
    assert not ScheduledJob.objects.exists() and not ScheduleRun.objects.exists()
    assert Job.objects.get() == job


def test_run_now_does_not_move_the_next_run(admin, tick):
    response = admin.post(f"{URL}{tick.pk}/run/")
    assert response.status_code == 201
    run = ScheduleRun.objects.get()
    assert (run.trigger, run.job.payload, run.job.name) == ("manual", {"a": 1}, "platform.echo")
    assert response.data["id"] == run.pk and response.data["job"] == str(run.job_id)
    assert (response.data["trigger"], response.data["job_status"]) == ("manual", "waiting")
    assert ScheduledJob.objects.get().next_run_at == tick.next_run_at


def test_runs_newest_first_with_job_outcome(admin, tick):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    older, newer = services.run_now(tick, now=t0), services.run_now(tick, now=t0 + timedelta(1))
    Job.objects.filter(pk=newer.job_id).update(
        status="completed", started_at=t0, finished_at=t0 + timedelta(milliseconds=250)
    )
    response = admin.get(f"{URL}{tick.pk}/runs/", {"page_size": 1})
    assert (response.data["count"], response.data["next"] is not None) == (2, True)
    [row] = response.data["results"]
    assert (row["id"], row["job_status"], row["duration_ms"]) == (newer.pk, "completed", 250)
    [row] = admin.get(f"{URL}{tick.pk}/runs/", {"page_size": 1, "page": 2}).data["results"]
    assert (row["id"], row["job_status"], row["duration_ms"]) == (older.pk, "waiting", None)


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({**BASE, "cron": "* * 2"}, "cron", "has 3 fields"),
        ({**BASE, "cron": "0 25 * * *"}, "cron", "invalid hour field"),
        ({**BASE, "cron": "*/10 * * * * *"}, "cron", "interval schedule"),
        ({**BASE, "cronExpression": "*/10 * * * * *"}, "cronExpression", "interval"),
        ({**CRON, "timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({**CRON, "handler": "nope"}, "handler", "no job handler"),
        ({**CRON, "queue": "nope"}, "queue", "no queue is named"),
        ({**CRON, "every": 10}, "non_field_errors", "exactly one"),
        (BASE, "non_field_errors", "one of cron"),
        ({**CRON, "status": 5}, "status", "status must be"),
        ({**CRON, "status": "running"}, "status", "status must be"),
        ({**BASE, "every": 0}, "every", "greater than or equal to 1"),
        ({**BASE, "every": 1, "period": "weeks"}, "period", "not a valid choice"),
        ({**CRON, "period": "hours"}, "period", "Only an interval"),
        ({**BASE, "run_at": "2030-01-01T00:00:00Z", "timezone": "UTC"}, "timezone", "cron"),
        ({**CRON, "priority": 11}, "priority", "less than or equal to 10"),
        ({**CRON, "colour": "red"}, "colour", "Unknown field"),
        ({**CRON, "handlerName": "platform.echo"}, "handlerName", "not both"),
        ({**CRON, **BACKWARDS}, "detail", "end_at must be after"),
        ({**CRON, "retry_attempts": 5000}, "detail", "attempts must be"),
    ],
)
def test_create_refuses_bad_input_and_writes_nothing(
    admin, django_capture_on_commit_callbacks, body, field, text
):
    before = state()
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin.post(URL, body, format="json")
    assert response.status_code == 400
    assert text in str(response.data[field]), response.data
    assert state() == before and callbacks == []


def test_create_refuses_a_taken_name(admin, tick):
    before = state()
    response = admin.post(URL, {**CRON, "name": "tick"}, format="json")
    assert response.status_code == 400
    assert state() == before
    assert response.data["name"] == ["A schedule named 'tick' already exists."]


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"cron": "0 0 2 30 2 *"}, "detail", "never fires"),
        ({"cron": "61 * * * *", "priority": 2}, "cron", "minute"),
        ({"status": 7, "priority": 2}, "status", "status must be"),
        ({"timezone": "UTC"}, "timezone", "Only a cron schedule"),
        ({"run_at": "2030-01-01T00:00Z", "period": "hours"}, "period", "Only an interval"),
        ({"every": 5, "run_at": "2030-01-01T00:00Z"}, "non_field_errors", "exactly one"),
        ({"name": "renamed"}, "name", "Unknown field"),
        ({"cron": "0 * * * *", "retry_attempts": 5000}, "detail", "attempts must be"),
        (BACKWARDS, "detail", "end_at must be"),
    ],
)
def test_patch_refuses_bad_input_and_writes_nothing(
    admin, tick, django_capture_on_commit_callbacks, body, field, text
):
    before = state()
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin.patch(f"{URL}{tick.pk}/", body, format="json")
    assert response.status_code == 400
    assert text in str(response.data[field]), response.data
    assert state() == before and callbacks == []


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", "/"), ("patch", "/"), ("delete", "/"), ("post", "/run/"), ("get", "/runs/")],
)
def test_unknown_schedule_is_404(admin, method, suffix):
    response = getattr(admin, method)(f"{URL}999999{suffix}", {}, format="json")
    assert response.status_code == 404


ROUTES = [
    ("get", "", "view_scheduledjob", 200),
    ("post", "", "add_scheduledjob", 201),
    ("get", "{pk}/", "view_scheduledjob", 200),
    ("patch", "{pk}/", "change_scheduledjob", 200),
    ("delete", "{pk}/", "delete_scheduledjob", 204),
    ("post", "{pk}/run/", "run_schedule", 201),
    ("get", "{pk}/runs/", "view_scheduledjob", 200),
]
BODIES = {"post": {"name": "new", "handler": "platform.echo", "every": 5}, "patch": {"status": 2}}


@pytest.mark.parametrize(("method", "path", "codename", "ok"), ROUTES)
def test_every_route_needs_staff_and_its_permission(
    tick, django_capture_on_commit_callbacks, method, path, codename, ok
):
    def call(user=None):
        url = URL + path.format(pk=tick.pk)
        return getattr(client_for(user), method)(url, BODIES.get(method), format="json")

    perm = Permission.objects.get(codename=codename)
    holder = User.objects.create_user("holder")  # the permission but not staff
    holder.user_permissions.add(perm)
    staff = User.objects.create_user("staff", is_staff=True)
    other = "add_scheduledjob" if codename == "view_scheduledjob" else "view_scheduledjob"
    staff.user_permissions.add(Permission.objects.get(codename=other))
    before = state()
    with django_capture_on_commit_callbacks() as callbacks:
        assert call().status_code == 401
        assert call(staff).status_code == 403
        assert call(holder).status_code == 403
    assert state() == before and callbacks == []
    staff.user_permissions.add(perm)
    assert call(User.objects.get(pk=staff.pk)).status_code == ok  # fresh: no cached perms


def test_openapi_documents_input_and_output_bodies(admin):
    schema = admin.get("/api/v1/schema/", {"format": "json"}).json()
    paths = schema["paths"]

    def ref(node):
        return node["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]

    assert ref(paths["/api/v1/schedules/"]["post"]["requestBody"]) == "ScheduleCreateInputRequest"
    assert ref(paths["/api/v1/schedules/"]["post"]["responses"]["201"]) == "ScheduleDetailOut"
    detail = paths["/api/v1/schedules/{id}/"]
    assert ref(detail["patch"]["requestBody"]) == "PatchedScheduleUpdateInputRequest"
    assert ref(paths["/api/v1/schedules/{id}/run/"]["post"]["responses"]["201"]) == "ScheduleRunOut"
    runs = paths["/api/v1/schedules/{id}/runs/"]["get"]["responses"]["200"]
    assert ref(runs) == "PaginatedScheduleRunOutList"
    created = schema["components"]["schemas"]["ScheduleCreateInputRequest"]["properties"]
    assert {"cron", "timezone", "every", "period", "run_at", "handlerName"} <= set(created)
