"""The schedule editor (the ScheduledJob admin form): one place for the timing, in three
kinds, whose beat rows the services create and reuse; a refused form writes nothing."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule

from queues.models import AuditLog, Job
from queues.registry import handler_names
from scheduling import services
from scheduling.models import ScheduledJob, ScheduleRun, ScheduleStatus
from tests.helpers import freeze_clock, rows

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/scheduling/scheduledjob/"
ADD = CHANGELIST + "add/"
# A Monday, 10:00 UTC (18:00 in Shanghai); no zone used here changes its offset near it.
NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
TIMING = (ScheduledJob, CrontabSchedule, IntervalSchedule, ClockedSchedule)


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    return freeze_clock(monkeypatch, NOW)


def form_data(**overrides) -> dict:
    data = {
        "name": "report",
        "status": "1",
        "handler": "platform.echo",
        "payload": "{}",
        "kind": "cron",
        "cron": "",
        "timezone": "UTC",
        "every": "",
        "period": "",
        "run_at": "",
        "misfire_policy": "run_once",
        "max_catch_up": "10",
        "runs-TOTAL_FORMS": "0",
        "runs-INITIAL_FORMS": "0",
        "runs-MIN_NUM_FORMS": "0",
        "runs-MAX_NUM_FORMS": "0",
    }
    data.update(overrides)
    return data


def add(client, **overrides):
    response = client.post(ADD, form_data(**overrides))
    if response.status_code != 302:
        pytest.fail(f"refused: {response.context['adminform'].form.errors.as_json()}")
    return response


def edit(client, schedule, **overrides):
    return client.post(
        f"{CHANGELIST}{schedule.pk}/change/", form_data(name=schedule.name, **overrides)
    )


def counts() -> tuple[int, int, int]:
    return (
        CrontabSchedule.objects.count(),
        IntervalSchedule.objects.count(),
        ClockedSchedule.objects.count(),
    )


# --- the page -------------------------------------------------------------------------


def test_the_add_page_has_the_timing_fields_and_no_beat_row_selects(admin_client, settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    response = admin_client.get(ADD)
    assert response.status_code == 200
    form = response.context["adminform"].form
    for field in ("crontab", "interval", "clocked", "timezone_name"):
        assert field not in form.fields
    html = response.content.decode()
    assert 'name="crontab"' not in html and 'name="interval"' not in html
    assert 'name="clocked"' not in html
    # Without JavaScript every kind's fields are on the page; the radio picks the kind.
    for name in ("kind", "cron", "every", "period", "run_at", "timezone"):
        assert f'name="{name}"' in html, name
    assert [value for value, _ in form.fields["kind"].choices] == ["cron", "interval", "one_off"]
    assert form["kind"].value() == "cron"
    # The zone: a select of every IANA zone, sorted, the project's selected.
    zones = [value for value, _ in form.fields["timezone"].choices]
    assert zones == sorted(available_timezones())
    assert form["timezone"].value() == "Asia/Shanghai"
    assert '<option value="Asia/Shanghai" selected>' in html
    assert [v for v, _ in form.fields["period"].choices] == [
        "",
        "seconds",
        "minutes",
        "hours",
        "days",
    ]
    # The handler: a select of the registered handlers.
    assert [v for v, _ in form.fields["handler"].choices] == ["", *handler_names()]
    assert 'id="jp-schedule-preview"' in html
    assert "scheduling/schedule_form.js" in html and "scheduling/schedules.css" in html
    assert "/admin/jp-jsi18n/" in html


def test_the_change_page_shows_the_saved_timing(admin_client):
    cron = services.create_schedule(
        name="c", handler="platform.echo", cron="0 9 * * 1-5", timezone_name="Asia/Shanghai"
    )
    every = services.create_schedule(name="i", handler="platform.echo", every=90, period="minutes")
    once = services.create_schedule(
        name="o", handler="platform.echo", run_at=datetime(2026, 3, 1, 1, 30, tzinfo=UTC)
    )
    expected = {
        cron: {"kind": "cron", "cron": "0 9 * * 1-5", "timezone": "Asia/Shanghai"},
        every: {"kind": "interval", "every": 90, "period": "minutes"},
        # A clocked row keeps the instant: it reads on the project's clock (UTC here).
        once: {"kind": "one_off", "run_at": "2026-03-01T01:30:00", "timezone": "UTC"},
    }
    for schedule, values in expected.items():
        response = admin_client.get(f"{CHANGELIST}{schedule.pk}/change/")
        form = response.context["adminform"].form
        shown = {name: form[name].value() for name in values}
        if "run_at" in shown:
            shown["run_at"] = form.fields["run_at"].prepare_value(shown["run_at"])
        assert shown == values, schedule.name
    html = admin_client.get(f"{CHANGELIST}{cron.pk}/change/").content.decode()
    assert "At 09:00, Monday through Friday" in html  # the preview, before any JavaScript


# --- each kind writes (or reuses) its beat row -------------------------------------------


def test_a_cron_schedule_and_its_crontab_row_reused_when_identical(admin_client):
    add(admin_client, cron="0 9 * * 1-5", timezone="Asia/Shanghai")
    schedule = ScheduledJob.objects.get()
    crontab = schedule.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_month) == ("0", "9", "*")
    assert (crontab.month_of_year, crontab.day_of_week) == ("*", "1-5")
    assert str(crontab.timezone) == "Asia/Shanghai"
    assert schedule.interval is None and schedule.clocked is None
    # Monday 18:00 in Shanghai: the next weekday 09:00 there is Tuesday's, 01:00 UTC.
    assert schedule.next_run_at == datetime(2026, 1, 6, 1, 0, tzinfo=UTC)

    add(admin_client, name="report-2", cron="  0 9 * *   1-5 ", timezone="Asia/Shanghai")
    add(admin_client, name="report-berlin", cron="0 9 * * 1-5", timezone="Europe/Berlin")
    assert ScheduledJob.objects.get(name="report-2").crontab_id == crontab.pk
    assert ScheduledJob.objects.get(name="report-berlin").crontab_id != crontab.pk
    assert counts() == (2, 0, 0)


def test_an_interval_schedule_and_its_row_reused_when_identical(admin_client):
    add(admin_client, kind="interval", every="10", period="seconds", cron="ignored")
    schedule = ScheduledJob.objects.get()
    assert (schedule.interval.every, schedule.interval.period) == (10, "seconds")
    assert schedule.crontab is None and schedule.clocked is None
    assert schedule.next_run_at == NOW + timedelta(seconds=10)
    add(admin_client, name="again", kind="interval", every="10", period="seconds")
    add(admin_client, name="minutes", kind="interval", every="10", period="minutes")
    assert ScheduledJob.objects.get(name="again").interval_id == schedule.interval_id
    assert counts() == (0, 2, 0)


def test_a_one_off_in_its_zone_and_its_clocked_row_reused_when_identical(admin_client):
    add(admin_client, kind="one_off", run_at="2026-03-01T09:30", timezone="Asia/Shanghai")
    schedule = ScheduledJob.objects.get()
    at = datetime(2026, 3, 1, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
    assert schedule.clocked.clocked_time == at
    assert schedule.next_run_at == at
    assert schedule.crontab is None and schedule.interval is None
    # The same instant typed on another clock is the same row.
    add(admin_client, name="same", kind="one_off", run_at="2026-03-01 01:30:00", timezone="UTC")
    assert ScheduledJob.objects.get(name="same").clocked_id == schedule.clocked_id
    assert counts() == (0, 0, 1)


def test_an_edit_changes_the_kind_and_replans(admin_client):
    schedule = services.create_schedule(
        name="report", handler="platform.echo", cron="0 2 * * *", timezone_name="UTC"
    )
    old_crontab = schedule.crontab_id
    response = edit(admin_client, schedule, kind="interval", every="30", period="minutes")
    assert response.status_code == 302, response.context["adminform"].form.errors
    schedule.refresh_from_db()
    assert (schedule.crontab_id, schedule.clocked_id) == (None, None)
    assert (schedule.interval.every, schedule.interval.period) == (30, "minutes")
    # The interval's grid keeps its anchor (the creation instant, NOW).
    assert schedule.next_run_at == NOW + timedelta(minutes=30)
    assert CrontabSchedule.objects.filter(pk=old_crontab).exists()  # beat rows are shared

    response = edit(
        admin_client, schedule, kind="cron", cron="15 8 * * *", timezone="Asia/Shanghai"
    )
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.crontab.minute, schedule.crontab.hour) == ("15", "8")
    assert str(schedule.crontab.timezone) == "Asia/Shanghai"
    assert schedule.interval_id is None
    assert schedule.next_run_at == datetime(2026, 1, 6, 0, 15, tzinfo=UTC)


def test_an_edit_that_keeps_a_past_one_off_is_accepted(admin_client, monkeypatch):
    schedule = services.create_schedule(
        name="once", handler="platform.echo", run_at=NOW + timedelta(hours=1)
    )
    freeze_clock(monkeypatch, NOW + timedelta(days=1))  # the time has passed meanwhile
    response = edit(
        admin_client,
        schedule,
        kind="one_off",
        run_at="2026-01-05T11:00",
        timezone="UTC",
        description="kept",
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    schedule.refresh_from_db()
    assert schedule.description == "kept"
    assert schedule.clocked.clocked_time == NOW + timedelta(hours=1)


# --- refused: a field error, nothing written --------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"cron": "61 * * * *"}, "cron", "invalid minute field &#x27;61&#x27;"),
        ({"cron": "*/10 * * * * *"}, "cron", "use an interval schedule"),
        ({"cron": "0 0 30 2 *"}, "cron", "never fires"),
        ({"cron": ""}, "cron", "Enter a cron string"),
        ({"cron": "0 2 * * *", "timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"kind": "interval", "every": "5"}, "period", "Choose a unit"),
        ({"kind": "interval", "every": "5", "period": "weeks"}, "period", "Select a valid choice"),
        ({"kind": "interval", "period": "minutes"}, "every", "Enter a whole number"),
        (
            {"kind": "interval", "every": "0", "period": "minutes"},
            "every",
            "greater than or equal to 1",
        ),
        ({"kind": "one_off"}, "run_at", "Enter the date and time"),
        ({"kind": "one_off", "run_at": "tomorrow"}, "run_at", "Enter a date and time such as"),
        ({"kind": "one_off", "run_at": "2026-01-05T09:59"}, "run_at", "in the past"),
        ({"kind": "weekly"}, "kind", "Select a valid choice"),
        ({"cron": "0 2 * * *", "handler": "platform.nope"}, "handler", "Select a valid choice"),
    ],
)
def test_a_bad_timing_is_a_field_error_and_writes_nothing(admin_client, overrides, field, message):
    before = rows(*TIMING, ScheduleRun, Job, AuditLog)
    response = admin_client.post(ADD, form_data(**overrides))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert list(form.errors) == [field]
    assert message in response.content.decode()
    assert rows(*TIMING, ScheduleRun, Job, AuditLog) == before


def test_a_bad_edit_writes_nothing(admin_client):
    schedule = services.create_schedule(name="report", handler="platform.echo", cron="0 2 * * *")
    before = rows(*TIMING)
    response = edit(admin_client, schedule, kind="interval", every="5", description="new")
    assert list(response.context["adminform"].form.errors) == ["period"]
    response = edit(admin_client, schedule, cron="0 2 * * *", timezone="Nowhere/Land")
    assert list(response.context["adminform"].form.errors) == ["timezone"]
    assert rows(*TIMING) == before


def test_an_unregistered_handler_is_shown_and_must_be_replaced(admin_client):
    schedule = services.create_schedule(name="report", handler="platform.echo", cron="0 2 * * *")
    ScheduledJob.objects.filter(pk=schedule.pk).update(handler="gone.handler")
    page = admin_client.get(f"{CHANGELIST}{schedule.pk}/change/")
    form = page.context["adminform"].form
    assert form["handler"].value() == "gone.handler"
    assert "gone.handler (not registered)" in page.content.decode()
    before = rows(ScheduledJob)
    response = edit(admin_client, schedule, handler="gone.handler", cron="0 2 * * *")
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["handler"]
    assert "no job handler is registered as 'gone.handler'" in errors["handler"][0]
    assert rows(ScheduledJob) == before
    response = edit(admin_client, schedule, handler="platform.sleep", cron="0 2 * * *")
    assert response.status_code == 302
    assert ScheduledJob.objects.get().handler == "platform.sleep"


def test_a_disabled_schedule_is_saved_unplanned(admin_client):
    add(admin_client, cron="0 2 * * *", status=str(ScheduleStatus.DISABLED))
    schedule = ScheduledJob.objects.get()
    assert (schedule.status, schedule.next_run_at) == (ScheduleStatus.DISABLED, None)
    assert schedule.crontab is not None


def test_an_interval_schedule_offers_the_project_zone_for_another_kind(admin_client, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    schedule = services.create_schedule(name="i", handler="platform.echo", every=5, period="hours")
    form = admin_client.get(f"{CHANGELIST}{schedule.pk}/change/").context["adminform"].form
    assert (form["kind"].value(), form["timezone"].value()) == ("interval", "Europe/Berlin")


def test_the_add_page_takes_the_timing_from_its_query_string(admin_client):
    response = admin_client.get(ADD + "?kind=interval&every=15&period=minutes")
    form = response.context["adminform"].form
    assert (form["kind"].value(), form["every"].value(), form["period"].value()) == (
        "interval",
        "15",
        "minutes",
    )
