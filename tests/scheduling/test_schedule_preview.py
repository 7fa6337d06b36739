"""The schedule editor's preview endpoint: the timing in words and its next five runs on
the schedule's clock and the viewer's, at instants the tests fix (``now``)."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from scheduling.models import ScheduledJob

pytestmark = pytest.mark.django_db

URL = "/admin/scheduling/scheduledjob/preview/"


def get(client, **params):
    return client.get(URL, params, HTTP_ACCEPT="application/json")


def test_the_url_is_named():
    assert reverse("admin:scheduling_scheduledjob_preview") == URL


def test_a_cron_in_its_zone_and_the_viewers(admin_client):
    # Friday 2026-01-09, 08:30 in Shanghai; Berlin is on CET (+01:00) all of January.
    response = get(
        admin_client,
        kind="cron",
        cron="0 9 * * 1-5",
        timezone="Asia/Shanghai",
        viewer_tz="Europe/Berlin",
        now="2026-01-09T00:30:00Z",
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    data = response.json()
    assert {k: v for k, v in data.items() if k != "next_runs"} == {
        "kind": "cron",
        "description": "At 09:00, Monday through Friday",
        "timezone": "Asia/Shanghai",
        "viewer_timezone": "Europe/Berlin",
    }
    assert data["next_runs"][0] == {
        "utc": "2026-01-09T01:00:00+00:00",
        "local": "2026-01-09T09:00:00+08:00",
        "viewer": "2026-01-09T02:00:00+01:00",
        "local_text": "Fri 2026-01-09 09:00 CST",
        "viewer_text": "Fri 2026-01-09 02:00 CET",
    }
    # Friday, then Monday to Thursday of the next week: the weekend is skipped.
    assert [run["local"] for run in data["next_runs"]] == [
        "2026-01-09T09:00:00+08:00",
        "2026-01-12T09:00:00+08:00",
        "2026-01-13T09:00:00+08:00",
        "2026-01-14T09:00:00+08:00",
        "2026-01-15T09:00:00+08:00",
    ]
    assert [run["viewer"] for run in data["next_runs"]][1:] == [
        "2026-01-12T02:00:00+01:00",
        "2026-01-13T02:00:00+01:00",
        "2026-01-14T02:00:00+01:00",
        "2026-01-15T02:00:00+01:00",
    ]


def test_the_next_runs_follow_the_schedule_zone_through_a_clock_change(admin_client):
    # Berlin springs forward on 2026-03-29 (02:00 CET -> 03:00 CEST): 02:30 that day does
    # not exist and runs at 03:30; the viewer in Shanghai (no DST) sees the hour move.
    data = get(
        admin_client,
        kind="cron",
        cron="30 2 * * *",
        timezone="Europe/Berlin",
        viewer_tz="Asia/Shanghai",
        now="2026-03-27T12:00:00Z",
    ).json()
    assert [(r["local"], r["viewer"]) for r in data["next_runs"]] == [
        ("2026-03-28T02:30:00+01:00", "2026-03-28T09:30:00+08:00"),
        ("2026-03-29T03:30:00+02:00", "2026-03-29T09:30:00+08:00"),
        ("2026-03-30T02:30:00+02:00", "2026-03-30T08:30:00+08:00"),
        ("2026-03-31T02:30:00+02:00", "2026-03-31T08:30:00+08:00"),
        ("2026-04-01T02:30:00+02:00", "2026-04-01T08:30:00+08:00"),
    ]


def test_an_interval_counts_from_now_and_the_viewer_falls_back_to_the_project_zone(
    admin_client, settings
):
    settings.TIME_ZONE = "Asia/Shanghai"
    data = get(
        admin_client, kind="interval", every="90", period="minutes", now="2026-01-05T10:00:00Z"
    ).json()
    assert data["description"] == "Every 90 minutes"
    assert (data["timezone"], data["viewer_timezone"]) == ("Asia/Shanghai", "Asia/Shanghai")
    assert [r["utc"] for r in data["next_runs"]] == [
        "2026-01-05T11:30:00+00:00",
        "2026-01-05T13:00:00+00:00",
        "2026-01-05T14:30:00+00:00",
        "2026-01-05T16:00:00+00:00",
        "2026-01-05T17:30:00+00:00",
    ]
    # A zone the browser sends that Python does not know: the project's too.
    data = get(
        admin_client, kind="interval", every="1", period="hours", viewer_tz="Mars/Base"
    ).json()
    assert (data["description"], data["viewer_timezone"]) == ("Every hour", "Asia/Shanghai")


def test_a_one_off_in_its_zone_and_once_it_has_passed(admin_client):
    params = {
        "kind": "one_off",
        "run_at": "2026-03-01T09:30",
        "timezone": "America/New_York",
        "viewer_tz": "UTC",
    }
    data = get(admin_client, **params, now="2026-01-01T00:00:00Z").json()
    assert data["description"] == "Once, on Sun 2026-03-01 09:30 EST"
    assert data["next_runs"] == [
        {
            "utc": "2026-03-01T14:30:00+00:00",
            "local": "2026-03-01T09:30:00-05:00",
            "viewer": "2026-03-01T14:30:00+00:00",
            "local_text": "Sun 2026-03-01 09:30 EST",
            "viewer_text": "Sun 2026-03-01 14:30 UTC",
        }
    ]
    assert get(admin_client, **params, now="2026-03-01T14:30:00Z").json()["next_runs"] == []


def test_the_description_is_in_the_request_language(admin_client):
    response = admin_client.get(
        URL,
        {
            "kind": "cron",
            "cron": "0 9 * * 1-5",
            "timezone": "Asia/Shanghai",
            "now": "2026-01-09T00:30:00Z",
        },
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert response.status_code == 200
    data = response.json()
    # The day names come from Django's own Chinese catalog; the phrases around them from
    # the scheduling catalog once its translations are merged (/tmp/zh_schedules.json).
    assert "星期一" in data["description"] and "星期五" in data["description"]
    assert "Monday" not in data["description"]
    assert data["next_runs"][0]["local_text"].startswith("星期五")
    english = get(admin_client, kind="cron", cron="0 9 * * 1-5", timezone="Asia/Shanghai")
    assert english.json()["description"] == "At 09:00, Monday through Friday"


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"kind": "cron", "cron": "61 * * * *"}, "cron", "invalid minute field '61'"),
        ({"kind": "cron", "cron": "* * * *"}, "cron", "has 4 fields"),
        ({"kind": "cron", "cron": ""}, "cron", "Enter a cron string"),
        ({"kind": "cron", "cron": "0 0 30 2 *"}, "cron", "never fires"),
        ({"kind": "cron", "cron": "0 2 * * *", "timezone": "Mars/Olympus"}, "timezone", "unknown"),
        ({"kind": "interval", "every": "5"}, "period", "Choose a unit"),
        ({"kind": "interval", "period": "hours"}, "every", "Enter a whole number"),
        ({"kind": "interval", "every": "-1", "period": "hours"}, "every", "greater than"),
        ({"kind": "one_off", "run_at": "soon"}, "run_at", "Enter a date and time"),
        ({"kind": "one_off"}, "run_at", "Enter the date and time"),
        ({"kind": "yearly"}, "kind", "Select a valid choice"),
        ({}, "kind", "This field is required"),
        ({"kind": "interval", "every": "5", "period": "hours", "now": "noon"}, "now", "valid"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(admin_client, params, field, message):
    response = get(admin_client, **params)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == [field]
    assert message in errors[field]


def test_staff_login_is_required(client, django_user_model):
    params = {"kind": "cron", "cron": "0 2 * * *"}
    anonymous = get(client, **params)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/")
    user = django_user_model.objects.create_user("someone", password="pw")
    client.force_login(user)
    assert get(client, **params).status_code == 302  # not staff: the admin's login page
    user.is_staff = True
    user.save()
    assert get(client, **params).status_code == 403  # staff, but no schedule permission
    user.user_permissions.add(Permission.objects.get(codename="add_scheduledjob"))
    assert get(client, **params).status_code == 200
    assert not ScheduledJob.objects.exists()


def test_only_get(admin_client):
    assert admin_client.post(URL, {"kind": "cron", "cron": "0 2 * * *"}).status_code == 405
