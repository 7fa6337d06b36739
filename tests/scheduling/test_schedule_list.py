"""The schedule list: timing in words, zone, next run, the last 20 runs as a sparkline,
and per-row Run now / Pause buttons that go through the audited services."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.utils.text import capfirst

from queues.admin.common import STATUS_COLORS
from queues.models import AuditLog, Job, JobStatus
from scheduling import services
from scheduling.models import RunTrigger, ScheduledJob, ScheduleRun, ScheduleStatus
from tests.helpers import freeze_clock, rows

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/scheduling/scheduledjob/"
NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    return freeze_clock(monkeypatch, NOW)


def action_url(schedule, action: str) -> str:
    return f"{CHANGELIST}{schedule.pk}/{action}/"


def nightly(name="nightly", **kw) -> ScheduledJob:
    return services.create_schedule(
        name=name, handler="platform.echo", cron="0 2 * * *", timezone_name="Asia/Shanghai", **kw
    )


def runs_with(schedule, outcomes: list[str | None], *, start=NOW - timedelta(days=30)):
    """Runs one minute apart, oldest first; each outcome is its job's status (None: the
    job was deleted since)."""
    for i, outcome in enumerate(outcomes):
        run = services.run_now(schedule, now=start + timedelta(minutes=i))
        if outcome is None:
            run.job.delete()
        else:
            Job.objects.filter(pk=run.job_id).update(status=outcome)


def staff(client, django_user_model, *codenames):
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    perms = Permission.objects.filter(content_type__app_label="scheduling", codename__in=codenames)
    assert perms.count() == len(codenames)
    user.user_permissions.set(perms)
    client.force_login(user)
    return user


def row_html(response, schedule) -> str:
    html = response.content.decode()
    match = re.search(
        rf"<tr>(?:(?!</tr>).)*/{schedule.pk}/change/(?:(?!</tr>).)*</tr>", html, re.DOTALL
    )
    assert match, f"no row for {schedule.name}"
    return match.group(0)


# --- columns --------------------------------------------------------------------------


def test_columns_describe_zone_and_next_run(admin_client):
    cron = nightly()
    services.create_schedule(name="every", handler="platform.echo", every=90, period="seconds")
    services.create_schedule(
        name="once", handler="platform.echo", run_at=NOW + timedelta(minutes=34)
    )
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    headers = [capfirst(h["text"]) for h in response.context["result_headers"][1:]]
    assert headers == [
        "Name",
        "Schedule",
        "Time zone",
        "Status",
        "Queue",
        "Next run",
        "Last runs",
        "Actions",
    ]
    html = row_html(response, cron)
    assert "At 02:00" in html and "Asia/Shanghai" in html
    # 02:00 in Shanghai is 18:00 UTC: 8 hours from 10:00 UTC.
    assert '<time datetime="2026-01-05T18:00:00+00:00" title="2026-01-05 18:00:00 UTC">' in html
    assert ">in 8\xa0hours</time>" in html
    every = row_html(response, ScheduledJob.objects.get(name="every"))
    assert "Every 90 seconds" in every
    assert '<td class="field-zone">-</td>' in every  # an interval has no wall clock
    once = row_html(response, ScheduledJob.objects.get(name="once"))
    assert "Once, on Mon 2026-01-05 10:34 UTC" in once
    assert 'title="2026-01-05 10:34:00 UTC">in 34\xa0minutes</time>' in once


def test_the_sparkline_shows_the_last_20_runs_coloured_by_outcome(admin_client):
    schedule = nightly()
    old = ["completed"] * 5  # older than the last 20: not shown
    last = [
        *["completed"] * 14,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
        JobStatus.ACTIVE,
        None,  # its job was deleted
        JobStatus.FAILED,
        JobStatus.WAITING,
    ]
    runs_with(schedule, old + last)
    quiet = nightly("quiet")
    html = row_html(admin_client.get(CHANGELIST), schedule)
    boxes = re.findall(r'data-outcome="(\w+)" style="background:(#\w+)"', html)
    expected = [s if s else "gone" for s in last]
    assert [outcome for outcome, _ in boxes] == expected  # oldest first
    colours = {**STATUS_COLORS, "gone": "#999"}
    assert [colour for _, colour in boxes] == [colours[o] for o in expected]
    assert 'aria-label="Last 20 runs, latest: waiting"' in html
    assert 'title="2026-12-06' not in html
    first = NOW - timedelta(days=30) + timedelta(minutes=5)
    assert f'title="{first:%Y-%m-%d %H:%M:%S} · completed"' in html
    assert "job deleted" in html
    assert "no runs yet" in row_html(admin_client.get(CHANGELIST), quiet)


def make_page(count: int) -> None:
    """Schedules of every kind, every third with runs."""
    for i in range(ScheduledJob.objects.count(), count):
        if i % 3 == 0:
            runs_with(nightly(f"s{i:02d}"), ["completed", "failed"])
        elif i % 3 == 1:
            services.create_schedule(
                name=f"s{i:02d}", handler="platform.echo", every=i, period="minutes"
            )
        else:
            services.create_schedule(
                name=f"s{i:02d}", handler="platform.sleep", run_at=NOW + timedelta(days=i)
            )


@pytest.mark.parametrize("count", [3, 30])
def test_the_list_runs_the_same_queries_for_3_or_30_rows(
    admin_client, django_assert_num_queries, count
):
    make_page(count)
    # session, user, 2 counts (filtered, total), the page, its runs (one query, every row),
    # the queue filter's choices, the domain filter's values.
    with django_assert_num_queries(8):
        response = admin_client.get(CHANGELIST)
    assert response.context["cl"].result_count == count
    assert response.content.decode().count('class="jp-spark"') == len(range(0, count, 3))


# --- buttons --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codenames", "buttons"),
    [
        ((), []),
        (("run_schedule",), ["run"]),
        (("pause_schedule",), ["pause"]),
        (("run_schedule", "pause_schedule"), ["run", "pause"]),
    ],
)
def test_buttons_follow_the_permissions(client, django_user_model, codenames, buttons):
    staff(client, django_user_model, "view_scheduledjob", *codenames)
    schedule = nightly()
    html = row_html(client.get(CHANGELIST), schedule)
    assert re.findall(r'data-action="(\w+)"', html) == buttons
    for action in buttons:
        assert f'formaction="{action_url(schedule, action)}"' in html


def test_a_paused_and_a_disabled_schedule_offer_resume_and_enable(admin_client):
    paused = nightly("paused", status=ScheduleStatus.PAUSED)
    disabled = nightly("disabled", status=ScheduleStatus.DISABLED)
    response = admin_client.get(CHANGELIST)
    assert re.findall(r'data-action="resume"[^>]*>(\w+)<', row_html(response, paused)) == ["Resume"]
    assert re.findall(r'data-action="resume"[^>]*>(\w+)<', row_html(response, disabled)) == [
        "Enable"
    ]


def audit_rows():
    return list(AuditLog.objects.order_by("id").values_list("action", "target", "username"))


def test_run_now_and_pause_with_a_plain_post_redirect_with_a_message(admin_client):
    schedule = nightly()
    next_run = schedule.next_run_at
    response = admin_client.post(action_url(schedule, "run"))
    assert (response.status_code, response["Location"]) == (302, CHANGELIST)
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "nightly: a run was enqueued now."
    ]
    run = ScheduleRun.objects.get()
    assert (run.trigger, run.due_at, run.job) == (RunTrigger.MANUAL, NOW, Job.objects.get())

    response = admin_client.post(action_url(schedule, "pause"))
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.status, schedule.next_run_at) == (ScheduleStatus.PAUSED, next_run)
    response = admin_client.post(action_url(schedule, "resume"))
    schedule.refresh_from_db()
    assert (schedule.status, schedule.next_run_at) == (ScheduleStatus.ENABLED, next_run)
    assert audit_rows() == [
        ("run_schedules", "nightly", "admin"),
        ("pause_schedules", "nightly", "admin"),
        ("enable_schedules", "nightly", "admin"),
    ]


def test_fetch_gets_json_with_the_rows_new_cells(admin_client):
    schedule = nightly()
    response = admin_client.post(action_url(schedule, "pause"), HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    data = response.json()
    assert (data["ok"], data["message"], data["status"]) == (True, "nightly: paused.", 2)
    assert data["cells"]["status"] == "Paused"
    assert 'data-action="resume"' in data["cells"]["row_actions"]
    assert "no runs yet" in data["cells"]["recent_runs"]
    assert list(get_messages(response.wsgi_request)) == []  # the page shows the message

    data = admin_client.post(action_url(schedule, "run"), HTTP_ACCEPT="application/json").json()
    assert data["ok"] is True
    assert 'data-outcome="waiting"' in data["cells"]["recent_runs"]
    assert ScheduleRun.objects.get().job.status == JobStatus.WAITING


@pytest.mark.parametrize(
    ("codenames", "action"),
    [
        (("view_scheduledjob",), "run"),
        (("view_scheduledjob",), "pause"),
        (("view_scheduledjob", "pause_schedule"), "run"),
        (("view_scheduledjob", "run_schedule"), "pause"),
        (("view_scheduledjob", "change_scheduledjob"), "resume"),
    ],
)
def test_without_the_permission_a_403_and_nothing_changes(
    client, django_user_model, codenames, action
):
    schedule = nightly(status=ScheduleStatus.PAUSED if action == "resume" else 1)
    staff(client, django_user_model, *codenames)
    before = rows(ScheduledJob, ScheduleRun, Job, AuditLog)
    for accept in ("text/html", "application/json"):
        assert client.post(action_url(schedule, action), HTTP_ACCEPT=accept).status_code == 403
    assert rows(ScheduledJob, ScheduleRun, Job, AuditLog) == before


def test_the_buttons_need_a_post_and_a_known_schedule(admin_client):
    schedule = nightly()
    assert admin_client.get(action_url(schedule, "run")).status_code == 405
    assert admin_client.post(f"{CHANGELIST}999999/run/").status_code == 404
    assert not ScheduleRun.objects.exists() and not AuditLog.objects.exists()


def test_the_bulk_actions_are_audited_too(admin_client):
    a, b = nightly("a"), nightly("b")
    admin_client.post(
        CHANGELIST,
        {"action": "pause_schedules", "index": "0", "_selected_action": [a.pk, b.pk]},
    )
    admin_client.post(CHANGELIST, {"action": "run_now", "index": "0", "_selected_action": [a.pk]})
    assert audit_rows() == [
        ("pause_schedules", "a", "admin"),
        ("pause_schedules", "b", "admin"),
        ("run_schedules", "a", "admin"),
    ]


def test_the_domain_filter_names_the_empty_domain(admin_client):
    nightly("plain")
    nightly("ops", domain="ops")
    response = admin_client.get(CHANGELIST)
    html = response.content.decode()
    assert '<a href="?domain=__none__">(no domain)</a>' in html
    assert '<a href="?domain=ops">ops</a>' in html
    assert [
        s.name for s in admin_client.get(CHANGELIST + "?domain=__none__").context["cl"].result_list
    ] == ["plain"]
    assert [
        s.name for s in admin_client.get(CHANGELIST + "?domain=ops").context["cl"].result_list
    ] == ["ops"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (CHANGELIST + "?status__exact=1", CHANGELIST + "?status__exact=1"),  # this site
        ("https://evil.example/", CHANGELIST),  # another site: back to the list
        ("//evil.example/x", CHANGELIST),
    ],
)
def test_a_plain_post_goes_back_only_to_a_page_of_this_site(admin_client, given, expected):
    schedule = nightly()
    response = admin_client.post(action_url(schedule, "pause"), {"next": given})
    assert (response.status_code, response["Location"]) == (302, expected)
    schedule.refresh_from_db()
    assert schedule.status == ScheduleStatus.PAUSED
