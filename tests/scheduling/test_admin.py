"""The ScheduledJob admin: changelist, change page, add form, actions and permissions."""

from datetime import UTC, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db.models import F
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule

from queues.models import Job
from scheduling import admin as admin_module
from scheduling import services
from scheduling.models import RunTrigger, ScheduledJob, ScheduleRun, ScheduleStatus
from tests.helpers import freeze_clock, rows

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/scheduling/scheduledjob/"
ADD = CHANGELIST + "add/"


def make_schedules(start: int, stop: int) -> None:
    """Cron (which also has a run), interval and clocked schedules, in turn."""
    for i in range(start, stop):
        name = f"s{i:02d}"
        if i % 3 == 0:
            s = services.create_schedule(
                name=name, handler="platform.echo", cron="0 2 * * *", timezone_name="Asia/Shanghai"
            )
            services.run_now(s)
        elif i % 3 == 1:
            services.create_schedule(name=name, handler="platform.echo", every=i, period="minutes")
        else:
            at = timezone.now() + timedelta(days=i)
            services.create_schedule(name=name, handler="platform.sleep", run_at=at)


def cron_schedule(name="nightly", **kw) -> ScheduledJob:
    return services.create_schedule(name=name, handler="platform.echo", cron="0 2 * * *", **kw)


def form_data(**overrides) -> dict:
    data = {
        "name": "weekday-report",
        "status": "1",
        "handler": "platform.echo",
        "payload": "{}",
        "kind": "cron",
        "cron": "0 9 * * 1-5",
        "timezone": "Asia/Shanghai",
        "misfire_policy": "run_once",
        "max_catch_up": "10",
        # The run-history inline (prefix "runs") is part of the change form.
        "runs-TOTAL_FORMS": "0",
        "runs-INITIAL_FORMS": "0",
        "runs-MIN_NUM_FORMS": "0",
        "runs-MAX_NUM_FORMS": "0",
    }
    data.update(overrides)
    return data


def post_action(client, action: str, *schedules):
    return client.post(
        CHANGELIST,
        {"action": action, "index": "0", "_selected_action": [s.pk for s in schedules]},
    )


def staff_client(client, django_user_model, *codenames: str):
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    perms = Permission.objects.filter(content_type__app_label="scheduling", codename__in=codenames)
    assert perms.count() == len(codenames)
    user.user_permissions.set(perms)
    client.force_login(user)
    return client


# --- change page ----------------------------------------------------------------------


def test_change_page_shows_run_history_and_next_runs(admin_client, monkeypatch):
    # The page lists the runs after "now": one instant for creating and viewing, or a page
    # viewed just after 02:00 UTC would start a day later than the schedule's next run.
    freeze_clock(monkeypatch, timezone.now())
    schedule = cron_schedule()
    run = services.run_now(schedule)
    response = admin_client.get(f"{CHANGELIST}{schedule.pk}/change/")
    assert response.status_code == 200
    (formset,) = response.context["inline_admin_formsets"]
    assert formset.opts.model is ScheduleRun
    assert [f.original for f in formset] == [run]
    html = response.content.decode()
    assert "Next runs" in html
    schedule.refresh_from_db()
    first = schedule.next_run_at.astimezone(UTC)
    assert f"{first:%Y-%m-%d %H:%M:%S}, {first + timedelta(days=1):%Y-%m-%d %H:%M:%S}" in html
    assert "Run now" in html  # the run's trigger
    assert run.job.status in html


# --- add form -------------------------------------------------------------------------


def test_the_add_page_has_no_run_history(admin_client):
    # A new schedule has no runs: no empty (and, on a phone, sideways-scrolling) table.
    response = admin_client.get(ADD)
    assert response.status_code == 200
    assert response.context["inline_admin_formsets"] == []
    assert 'name="runs-TOTAL_FORMS"' not in response.content.decode()


def test_add_with_a_cron_string_and_zone(admin_client, monkeypatch):
    # One instant for saving and checking: crossing 09:00 in Shanghai in between cannot
    # make the next run look past.
    now = freeze_clock(monkeypatch, timezone.now())
    response = admin_client.post(ADD, form_data())
    assert response.status_code == 302, response.context["adminform"].form.errors
    schedule = ScheduledJob.objects.get(name="weekday-report")
    crontab = schedule.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_month) == ("0", "9", "*")
    assert (crontab.month_of_year, crontab.day_of_week) == ("*", "1-5")
    assert str(crontab.timezone) == "Asia/Shanghai"
    assert schedule.interval is None and schedule.clocked is None
    assert schedule.status == ScheduleStatus.ENABLED
    assert schedule.next_run_at is not None
    assert now < schedule.next_run_at <= now + timedelta(days=3)  # Friday 09:00 -> Monday
    local = schedule.next_run_at.astimezone(crontab.timezone)
    assert (local.hour, local.minute) == (9, 0) and local.isoweekday() <= 5


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("61 * * * *", "invalid minute field &#x27;61&#x27;"),
        ("*/10 * * * * *", "use an interval schedule"),
    ],
)
def test_add_with_a_bad_cron_creates_nothing(admin_client, cron, message):
    response = admin_client.post(ADD, form_data(cron=cron))
    assert response.status_code == 200
    assert len(response.context["adminform"].form.errors["cron"]) == 1
    assert message in response.content.decode()
    assert not ScheduledJob.objects.exists()
    assert not CrontabSchedule.objects.filter(hour="9").exists()


@pytest.mark.parametrize("cron", ["61 * * * *", ""])
def test_add_without_a_schedule_shows_only_the_clear_error(admin_client, cron):
    response = admin_client.post(ADD, form_data(cron=cron))
    form = response.context["adminform"].form
    assert "schedule_exactly_one_kind" not in str(form.errors)


def test_add_with_run_immediately_runs_once(admin_client):
    response = admin_client.post(ADD, form_data(run_immediately="on"))
    assert response.status_code == 302
    run = ScheduleRun.objects.get()
    assert (run.trigger, run.job) == (RunTrigger.IMMEDIATE, Job.objects.get())


def test_add_with_an_unknown_handler_creates_nothing(admin_client):
    # The handler is a select of the registered ones; a name posted by hand is refused on
    # its field.
    response = admin_client.post(ADD, form_data(handler="platform.nope"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["handler"]
    assert "platform.nope" in errors["handler"][0]
    assert not ScheduledJob.objects.exists()


# --- actions --------------------------------------------------------------------------


def test_status_actions(admin_client, monkeypatch):
    # Enabling recomputes the next run from "now": one instant throughout, or crossing
    # 02:00 UTC between creating and enabling would move it a day.
    freeze_clock(monkeypatch, timezone.now())
    a, b = cron_schedule("a"), cron_schedule("b")
    next_run = a.next_run_at

    post_action(admin_client, "disable_schedules", a, b)
    assert list(ScheduledJob.objects.values_list("status", "next_run_at")) == [
        (ScheduleStatus.DISABLED, None),
        (ScheduleStatus.DISABLED, None),
    ]
    post_action(admin_client, "enable_schedules", a)
    a.refresh_from_db()
    assert (a.status, a.next_run_at) == (ScheduleStatus.ENABLED, next_run)
    post_action(admin_client, "pause_schedules", a)
    a.refresh_from_db()
    assert (a.status, a.next_run_at) == (ScheduleStatus.PAUSED, next_run)
    b.refresh_from_db()
    assert (b.status, b.next_run_at) == (ScheduleStatus.DISABLED, None)


def test_run_now_action(admin_client):
    schedule = cron_schedule()
    response = post_action(admin_client, "run_now", schedule)
    assert response.status_code == 302
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert messages == ["1 schedule(s) run now."]
    run = ScheduleRun.objects.get()
    assert (run.schedule, run.trigger) == (schedule, RunTrigger.MANUAL)
    job = Job.objects.get()
    assert run.job == job
    assert (job.name, job.queue.name) == ("platform.echo", "default")
    assert ScheduledJob.objects.get().next_run_at == schedule.next_run_at


# --- permissions ----------------------------------------------------------------------


def test_view_and_change_only_has_no_actions(client, django_user_model):
    client = staff_client(client, django_user_model, "view_scheduledjob", "change_scheduledjob")
    schedule = cron_schedule()
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert response.context["action_form"] is None  # every action is filtered out
    html = response.content.decode()
    for action in ("enable_schedules", "disable_schedules", "pause_schedules", "run_now"):
        assert f'value="{action}"' not in html
        # With no action available the POST just renders the changelist again.
        refused = post_action(client, action, schedule)
        assert refused.status_code == 200
        assert list(get_messages(refused.wsgi_request)) == []
    after = ScheduledJob.objects.get()
    assert (after.status, after.next_run_at) == (ScheduleStatus.ENABLED, schedule.next_run_at)
    assert not ScheduleRun.objects.exists() and not Job.objects.exists()


def test_run_permission_allows_run_now_only(client, django_user_model):
    client = staff_client(client, django_user_model, "view_scheduledjob", "run_schedule")
    schedule = cron_schedule()
    choices = client.get(CHANGELIST).context["action_form"].fields["action"].choices
    assert [name for name, _ in choices] == ["", "run_now"]
    post_action(client, "run_now", schedule)
    post_action(client, "disable_schedules", schedule)
    assert ScheduleRun.objects.get().job == Job.objects.get()
    assert ScheduledJob.objects.get().status == ScheduleStatus.ENABLED


# --- django-celery-beat ---------------------------------------------------------------


def test_celery_beat_admin_pages_are_gone(admin_client):
    # Beat's rows are the services' business (created and reused behind the schedule
    # editor): none of its admin pages is left, on the index or by URL.
    index = admin_client.get("/admin/")
    assert index.status_code == 200
    assert "django_celery_beat" not in index.content.decode()
    labels = {app["app_label"] for app in index.context["app_list"]}
    assert "django_celery_beat" not in labels
    assert admin_client.get("/admin/django_celery_beat/").status_code == 404
    for model in (
        "periodictask",
        "crontabschedule",
        "intervalschedule",
        "clockedschedule",
        "solarschedule",
    ):
        assert admin_client.get(f"/admin/django_celery_beat/{model}/").status_code == 404
        assert admin_client.get(f"/admin/django_celery_beat/{model}/add/").status_code == 404


# --- edits go through the services ------------------------------------------------------


def change_data(schedule: ScheduledJob, **overrides) -> dict:
    """The change form as the page posts it back, with ``overrides``."""
    return form_data(
        name=schedule.name,
        kind="cron",
        cron=f"{schedule.crontab.minute} {schedule.crontab.hour} * * *",
        timezone=str(schedule.crontab.timezone),
        **overrides,
    )


def change_url(schedule: ScheduledJob) -> str:
    return f"{CHANGELIST}{schedule.pk}/change/"


def test_an_edit_keeps_a_run_count_written_meanwhile(admin_client, monkeypatch):
    schedule = cron_schedule()
    clean = admin_module.ScheduledJobForm.clean

    def clean_while_the_schedule_fires(form):
        # A scheduler fires the schedule between the page loading it and saving it.
        ScheduledJob.objects.filter(pk=schedule.pk).update(run_count=F("run_count") + 1)
        return clean(form)

    monkeypatch.setattr(admin_module.ScheduledJobForm, "clean", clean_while_the_schedule_fires)
    response = admin_client.post(change_url(schedule), change_data(schedule, description="new"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    schedule.refresh_from_db()
    assert (schedule.description, schedule.run_count) == ("new", 1)


def test_an_edit_that_leaves_the_timing_keeps_the_missed_run(admin_client):
    schedule = cron_schedule()
    overdue = timezone.now() - timedelta(minutes=5)
    ScheduledJob.objects.filter(pk=schedule.pk).update(next_run_at=overdue)
    response = admin_client.post(change_url(schedule), change_data(schedule, description="new"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    schedule.refresh_from_db()
    assert (schedule.description, schedule.next_run_at) == ("new", overdue)


def test_an_edit_the_services_refuse_changes_nothing(admin_client):
    schedule = cron_schedule()
    before = rows(ScheduledJob)
    response = admin_client.post(change_url(schedule), change_data(schedule, run_limit="0"))
    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors() == ["run_limit must be at least 1"]
    assert rows(ScheduledJob) == before
