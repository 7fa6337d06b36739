"""Steering queues in place from the queue list and the dashboard: pause, resume, limits.

Each endpoint is a POST under /admin/queues/queue/<id>/ that answers JSON to fetch() and
redirects back with a message to a plain form. A permitted change writes the queue and
one audit row (who, what, before and after); a refused or invalid one changes nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone, translation

from devices.models import OperationKind
from queues import doorbell, enqueue_many, services
from queues.admin.common import ACTION_LABELS, action_label
from queues.dashboard import shown_panels
from queues.engine.claim import claim_jobs
from queues.models import AuditLog, Job, JobStatus, Queue, QueueSnapshot
from queues.selectors import forget_queue
from scheduling.services import STATUS_AUDIT_ACTIONS

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}
# What a browser sends with a plain form post.
HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
LIST = "/admin/queues/queue/"
DASHBOARD = "/admin/queues/dashboard/"
DATA = "/admin/queues/dashboard/data/"
LIMIT_FIELDS = ("concurrency", "rate_limit_max", "rate_limit_duration_ms")


def staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    perms = Permission.objects.filter(
        content_type__app_label="queues", codename__in=["view_queue", "view_job", *codenames]
    )
    user.user_permissions.set(perms)
    return user


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def state(name: str = "default") -> tuple:
    q = Queue.objects.get(name=name)
    return (q.paused, q.concurrency, q.rate_limit_max, q.rate_limit_duration_ms)


def url(step: str, name: str = "default") -> str:
    return f"{LIST}{Queue.objects.get(name=name).pk}/{step}/"


def audit_rows() -> list[tuple]:
    return list(
        AuditLog.objects.order_by("id").values_list("username", "action", "target", "detail")
    )


def snapshot(name: str, **counts: int) -> None:
    QueueSnapshot.objects.update_or_create(
        queue=Queue.objects.get(name=name),
        defaults={"counts": counts, "refreshed_at": timezone.now()},
    )


@pytest.fixture
def steerer() -> User:
    return staff("stella", "pause_queue", "change_queue")


@pytest.fixture
def steering(steerer) -> Client:
    return client_for(steerer)


# --- pause and resume ----------------------------------------------------------------------


def test_pause_then_resume_answers_json_and_audits_before_and_after(steering, steerer):
    response = steering.post(url("pause"), **JSON)
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["message"] == "Queue default is paused: it starts no new jobs."
    assert (body["queue"]["name"], body["queue"]["paused"]) == ("default", True)
    assert state() == (True, None, None, None)

    response = steering.post(url("resume"), **JSON)
    assert response.json()["queue"]["paused"] is False
    assert state() == (False, None, None, None)
    assert audit_rows() == [
        ("stella", "pause_queues", "default", {"changes": {"paused": [False, True]}}),
        ("stella", "resume_queues", "default", {"changes": {"paused": [True, False]}}),
    ]
    assert set(AuditLog.objects.values_list("user", flat=True)) == {steerer.pk}


def test_a_plain_form_post_redirects_back_with_a_message(steering):
    response = steering.post(url("pause"), {"next": "/admin/queues/queue/?paused__exact=0"}, **HTML)
    assert response.status_code == 302
    assert response["Location"] == "/admin/queues/queue/?paused__exact=0"
    assert state()[0] is True
    page = steering.get(response["Location"])
    assert "Queue default is paused: it starts no new jobs." in page.content.decode()

    response = steering.post(url("resume"), {"next": DASHBOARD}, **HTML)
    assert (response.status_code, response["Location"]) == (302, DASHBOARD)
    assert state()[0] is False
    assert [a for _, a, *_ in audit_rows()] == ["pause_queues", "resume_queues"]


def test_next_must_stay_on_this_site(steering):
    response = steering.post(url("pause"), {"next": "https://evil.example/"}, **HTML)
    assert (response.status_code, response["Location"]) == (302, LIST)


def test_the_queue_list_action_still_pauses_with_the_same_audit_row(admin_client):
    default = Queue.objects.get(name="default")
    admin_client.post(LIST, {"action": "pause_selected", "_selected_action": [default.pk]})
    assert state()[0] is True
    assert audit_rows() == [
        ("admin", "pause_queues", "default", {"changes": {"paused": [False, True]}})
    ]


def test_a_pause_stops_a_running_drain_at_its_next_claim():
    enqueue_many([{"name": "platform.echo", "payload": {}} for _ in range(3)])
    held = Queue.objects.get(name="default")  # what a drain under way holds
    services.pause_queue("default", by="test")
    assert claim_jobs(queue=held, worker="w", limit=10).jobs == []
    services.resume_queue("default", by="test")
    assert len(claim_jobs(queue=held, worker="w", limit=10).jobs) == 3


# --- limits ------------------------------------------------------------------------------


def test_limits_change_concurrency_and_rate_limit_in_one_audited_step(steering, steerer):
    posted = {"concurrency": "4", "rate_limit_max": "10", "rate_limit_duration_ms": "1000"}
    response = steering.post(url("limits"), posted, **JSON)
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == (
        "Limits of queue default saved: concurrency 4, rate limit 10 / 1000 ms."
    )
    assert {k: body["queue"][k] for k in LIMIT_FIELDS} == {
        "concurrency": 4,
        "rate_limit_max": 10,
        "rate_limit_duration_ms": 1000,
    }
    assert state() == (False, 4, 10, 1000)
    log = AuditLog.objects.get()
    assert (log.user, log.username, log.action, log.target, log.count) == (
        steerer,
        "stella",
        "set_queue_limits",
        "default",
        1,
    )
    assert log.detail == {
        "changes": {
            "concurrency": [None, 4],
            "rate_limit_max": [None, 10],
            "rate_limit_duration_ms": [None, 1000],
        }
    }

    # Empty fields: no limit. Only what changed is recorded.
    posted = {"concurrency": "", "rate_limit_max": "", "rate_limit_duration_ms": ""}
    response = steering.post(url("limits"), posted, **JSON)
    assert response.json()["message"] == (
        "Limits of queue default saved: concurrency no limit, rate limit no limit."
    )
    assert state() == (False, None, None, None)
    assert AuditLog.objects.order_by("id").last().detail == {
        "changes": {
            "concurrency": [4, None],
            "rate_limit_max": [10, None],
            "rate_limit_duration_ms": [1000, None],
        }
    }


def test_limits_by_plain_form_post_redirect_back_with_a_message(steering):
    posted = {"concurrency": "2", "rate_limit_max": "", "rate_limit_duration_ms": ""}
    response = steering.post(url("limits"), {**posted, "next": LIST}, **HTML)
    assert (response.status_code, response["Location"]) == (302, LIST)
    assert state() == (False, 2, None, None)
    page = steering.get(LIST).content.decode()
    assert "Limits of queue default saved: concurrency 2, rate limit no limit." in page


def test_a_field_left_out_keeps_its_value(steering):
    Queue.objects.filter(name="default").update(rate_limit_max=5, rate_limit_duration_ms=500)
    steering.post(url("limits"), {"concurrency": "3"}, **JSON)
    assert state() == (False, 3, 5, 500)


def test_the_same_limits_again_change_nothing_and_write_no_audit_row(steering):
    Queue.objects.filter(name="default").update(concurrency=3)
    response = steering.post(url("limits"), {"concurrency": "3"}, **JSON)
    assert response.status_code == 200
    assert state() == (False, 3, None, None)
    assert not AuditLog.objects.exists()


INVALID = [
    ({"concurrency": "0"}, "concurrency"),
    ({"concurrency": "-2"}, "concurrency"),
    ({"concurrency": "many"}, "concurrency"),
    ({"concurrency": "1.5"}, "concurrency"),
    ({"concurrency": "3000000000"}, "concurrency"),
    ({"rate_limit_max": "5", "rate_limit_duration_ms": ""}, "rate_limit_duration_ms"),
    ({"rate_limit_max": "", "rate_limit_duration_ms": "1000"}, "rate_limit_max"),
    ({"rate_limit_max": "5", "rate_limit_duration_ms": "0"}, "rate_limit_duration_ms"),
    ({"concurrency": "4", "rate_limit_max": "5"}, "rate_limit_duration_ms"),
]


@pytest.mark.parametrize(("posted", "field"), INVALID)
def test_invalid_limits_are_refused_with_the_field_and_change_nothing(steering, posted, field):
    Queue.objects.filter(name="default").update(concurrency=7)
    response = steering.post(url("limits"), posted, **JSON)
    assert response.status_code == 400
    body = response.json()
    assert body["ok"] is False
    assert list(body["errors"]) == [field]
    assert body["message"].startswith("The limits of queue default were not changed: ")
    assert state() == (False, 7, None, None)
    assert not AuditLog.objects.exists()


def test_invalid_limits_by_plain_form_post_say_why_on_the_page(steering):
    posted = {"concurrency": "0", "rate_limit_max": "5", "rate_limit_duration_ms": "", "next": LIST}
    response = steering.post(url("limits"), posted, **HTML)
    assert (response.status_code, response["Location"]) == (302, LIST)
    page = steering.get(LIST).content.decode()
    assert re.search(
        r'class="error">The limits of queue default were not changed: concurrency: '
        r"Enter a whole number from 1 to 2147483647, or leave it empty for no limit\.",
        page,
    )
    assert state() == (False, None, None, None)
    assert not AuditLog.objects.exists()


def test_the_service_checks_values_and_keeps_what_it_is_not_given():
    services.set_queue_limits("sms", rate_limit_max=3, rate_limit_duration_ms=100, by="test")
    services.set_queue_limits("sms", concurrency=2, by="test")
    assert state("sms") == (False, 2, 3, 100)
    for bad in [{"concurrency": 0}, {"concurrency": True}, {"concurrency": "2"}]:
        with pytest.raises(ValidationError) as refused:
            services.set_queue_limits("sms", **bad, by="test")
        assert list(refused.value.message_dict) == ["concurrency"]
    with pytest.raises(ValidationError, match="together"):
        services.set_queue_limits("sms", rate_limit_max=None, by="test")
    assert state("sms") == (False, 2, 3, 100)
    assert [a for _, a, *_ in audit_rows()] == ["set_queue_limits", "set_queue_limits"]


def test_a_limit_change_rings_the_doorbell_once_committed(
    monkeypatch, django_capture_on_commit_callbacks
):
    rung = []
    monkeypatch.setattr(doorbell, "ring_soon", lambda names: rung.append(list(names)))
    with django_capture_on_commit_callbacks(execute=True):
        services.set_queue_limits("email", concurrency=5, by="test")
        services.set_queue_limits("email", concurrency=5, by="test")  # no change: no ring
    assert rung == [["email"]]


def test_running_workers_apply_a_changed_limit_at_their_next_claim():
    Queue.objects.filter(name="default").update(concurrency=5)
    enqueue_many([{"name": "platform.echo", "payload": {}} for _ in range(6)])
    held = Queue.objects.get(name="default")  # a drain under way holds the row as it was
    services.set_queue_limits("default", concurrency=1, by="test")
    assert len(claim_jobs(queue=held, worker="w", limit=10).jobs) == 1
    services.set_queue_limits("default", concurrency=3, by="test")
    assert len(claim_jobs(queue=held, worker="w", limit=10).jobs) == 2
    services.set_queue_limits(
        "default", rate_limit_max=1, rate_limit_duration_ms=60_000, concurrency=None, by="test"
    )
    assert len(claim_jobs(queue=held, worker="w", limit=10).jobs) == 1
    assert Job.objects.filter(status=JobStatus.ACTIVE).count() == 4


def test_a_limit_set_on_an_unlimited_queue_binds_a_drain_under_way():
    enqueue_many([{"name": "platform.echo", "payload": {}} for _ in range(4)])
    held = Queue.objects.get(name="default")
    services.set_queue_limits("default", concurrency=1, by="test")
    assert len(claim_jobs(queue=held, worker="w", limit=10).jobs) == 1


# --- permissions, method, CSRF ------------------------------------------------------------

STEPS = ["pause", "resume", "limits"]
LIMITS_POST = {"concurrency": "9", "rate_limit_max": "9", "rate_limit_duration_ms": "9"}


@pytest.mark.parametrize("accept", [JSON, HTML], ids=["json", "form"])
@pytest.mark.parametrize(
    ("perms", "step"),
    [
        ((), "pause"),
        ((), "resume"),
        ((), "limits"),
        (("change_queue",), "pause"),
        (("change_queue",), "resume"),
        (("pause_queue",), "limits"),
    ],
)
def test_without_the_permission_403_and_nothing_changes(perms, step, accept):
    Queue.objects.filter(name="default").update(paused=step == "resume")
    before = state()
    client = client_for(staff("vic", *perms))
    response = client.post(url(step), LIMITS_POST, **accept)
    assert response.status_code == 403
    if accept is JSON:
        assert response.json()["ok"] is False
    assert state() == before
    assert not AuditLog.objects.exists()


@pytest.mark.parametrize("step", STEPS)
def test_get_is_refused_and_anonymous_users_are_sent_to_log_in(steering, step):
    assert steering.get(url(step)).status_code == 405
    response = Client().post(url(step), LIMITS_POST, **JSON)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert state() == (False, None, None, None)
    assert not AuditLog.objects.exists()


@pytest.mark.parametrize("step", STEPS)
def test_a_post_without_the_csrf_token_is_refused(steerer, step):
    client = Client(enforce_csrf_checks=True)
    client.force_login(steerer)
    assert client.post(url(step), LIMITS_POST, **JSON).status_code == 403
    assert state() == (False, None, None, None)
    assert not AuditLog.objects.exists()


def test_an_unknown_queue_is_404(steering):
    assert steering.post(f"{LIST}999999/pause/", **JSON).status_code == 404


# --- what the pages show -------------------------------------------------------------------


def test_the_queue_list_shows_utilisation_and_controls_to_those_who_may_use_them():
    Queue.objects.filter(name="default").update(concurrency=4)
    snapshot("default", active=2, waiting=1)
    snapshot("sms", active=3)
    default, sms = Queue.objects.get(name="default"), Queue.objects.get(name="sms")

    page = client_for(staff("stella", "pause_queue", "change_queue")).get(LIST).content.decode()
    assert re.search(r'<td class="field-active"><div class="jp-util-box">.*?2 / 4 · 50 %', page)
    assert '<td class="field-active">3</td>' in page  # sms: no cap, the count alone
    # The controls' forms, outside the action form, and what in the rows belongs to them.
    for pk in (default.pk, sms.pk):
        assert f'<form id="jp-steer-{pk}" class="jp-steer-form" method="post" ' in page
        assert f'action="{LIST}{pk}/limits/"' in page
        assert f'<form id="jp-pause-{pk}" class="jp-steer-form" method="post" ' in page
        assert f'action="{LIST}{pk}/pause/"' in page
        assert f'form="jp-pause-{pk}" data-steer="pause">Pause</button>' in page
        assert f'form="jp-steer-{pk}" data-steer="limits">Save</button>' in page
    assert f'name="concurrency" form="jp-steer-{default.pk}" value="4"' in page
    assert f'name="rate_limit_max" form="jp-steer-{sms.pk}" value=""' in page
    action_form = page.index('id="changelist-form"')
    assert action_form < page.index("</form>", action_form) < page.index("jp-steer-forms")
    assert "queues/queues.js" in page

    page = client_for(staff("paula", "pause_queue")).get(LIST).content.decode()
    assert 'data-steer="pause"' in page and f'id="jp-pause-{default.pk}"' in page
    assert 'data-steer="limits"' not in page and 'name="concurrency"' not in page
    assert f'id="jp-steer-{default.pk}"' not in page

    page = client_for(staff("carl", "change_queue")).get(LIST).content.decode()
    assert 'data-steer="limits"' in page and 'data-steer="pause"' not in page
    assert (
        '<td class="field-paused"><img src="/static/admin/img/icon-no.svg" alt="False"></td>'
        in (page)
    )

    page = client_for(staff("olga")).get(LIST).content.decode()
    assert "2 / 4 · 50 %" in page
    assert "jp-steer" not in page and "queues/queues.js" not in page


def test_a_paused_queue_offers_resume():
    Queue.objects.filter(name="sms").update(paused=True)
    sms = Queue.objects.get(name="sms")
    page = client_for(staff("paula", "pause_queue")).get(LIST).content.decode()
    assert f'action="{LIST}{sms.pk}/resume/"' in page
    assert 'alt="True"> <button type="submit" class="button jp-steer-button" ' in page
    assert f'form="jp-pause-{sms.pk}" data-steer="resume">Resume</button>' in page


def test_the_dashboard_shows_utilisation_and_the_controls_by_permission():
    Queue.objects.filter(name="default").update(concurrency=8, paused=True)
    snapshot("default", active=6)
    default = Queue.objects.get(name="default")

    steering = client_for(staff("stella", "pause_queue", "change_queue"))
    data = steering.get(DATA).json()
    row = next(q for q in data["queues"] if q["name"] == "default")
    assert {k: row[k] for k in ("id", "paused", "concurrency", "active", "utilisation")} == {
        "id": default.pk,
        "paused": True,
        "concurrency": 8,
        "active": 6,
        "utilisation": 0.75,
    }
    assert row["utilisation_pct"] == 75
    assert data["can"] == {"pause": True, "change": True}
    page = steering.get(DASHBOARD).content.decode()
    assert "6 / 8 · 75 %" in page
    assert f'action="{LIST}{default.pk}/resume/"' in page
    assert f'action="{LIST}{default.pk}/limits/"' in page
    assert 'data-steer="resume">Resume</button>' in page

    olga = client_for(staff("olga"))
    assert olga.get(DATA).json()["can"] == {"pause": False, "change": False}
    page = olga.get(DASHBOARD).content.decode()
    assert "6 / 8 · 75 %" in page
    assert "jp-steer-form" not in page


def test_the_dashboard_panels_show_times_as_a_person_reads_them():
    now = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
    due = "2026-12-05T02:00:00+00:00"  # a panel's time as its JSON carries it
    panel = {
        "title": "Schedules due next",
        "columns": ["schedule", "next run", "soon"],
        "rows": [["nightly", due, now + timedelta(minutes=5)], ["2026-13-45T99:00", 7, "x"]],
    }
    with translation.override("en"):
        (shown,) = shown_panels([panel], now)
    (name, next_run, soon), other = shown["rows"]
    assert name == "nightly"
    assert f'<time datetime="{due}"' in next_run and next_run.endswith(">in 6\xa0hours</time>")
    assert soon.endswith(">in 5\xa0minutes</time>")
    assert other == ["2026-13-45T99:00", 7, "x"]  # shaped like a time, but not one
    assert panel["rows"][0][1] == due  # the page's JSON keeps the data


# --- query counts --------------------------------------------------------------------------


def more_queues(start: int, stop: int) -> None:
    for i in range(start, stop):
        queue = Queue.objects.create(name=f"q{i:03d}", concurrency=2, paused=i % 2 == 0)
        QueueSnapshot.objects.create(queue=queue, counts={"active": 1}, refreshed_at=timezone.now())


# (user, page, queries). A superuser's permissions cost no query; a staff user's are read
# once (user and group permissions), for the controls too.
COUNTS = [
    ("admin", LIST, 5),
    ("staff", LIST, 7),
    ("admin", DATA, 8),
    ("staff", DATA, 10),
]


@pytest.mark.parametrize(("who", "page", "queries"), COUNTS)
def test_the_pages_run_a_fixed_number_of_queries(
    admin_user, who, page, queries, django_assert_num_queries
):
    user = admin_user if who == "admin" else staff("stella", "pause_queue", "change_queue")
    client = client_for(user)
    more_queues(0, 3)
    with django_assert_num_queries(queries):
        assert client.get(page).status_code == 200
    more_queues(3, 40)
    with django_assert_num_queries(queries):
        assert client.get(page).status_code == 200


# --- what the audit rows are called ---------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def written_audit_actions() -> set[str]:
    """Every action code the services write: the ``action="..."`` literals (passed to
    audit.record() or on to it) and audited()'s, schedule status changes, and devices'
    device_<kind>."""
    codes: set[str] = set()
    for source in [*ROOT.glob("queues/services/*.py"), ROOT / "scheduling/services.py"]:
        text = source.read_text()
        codes |= set(re.findall(r'\baction="(\w+)"', text))
        codes |= set(re.findall(r'audited\(\s*"(\w+)"', text))
    codes |= set(STATUS_AUDIT_ACTIONS.values())
    assert 'action=f"device_{kind}"' in (ROOT / "devices/services.py").read_text()
    return codes | {f"device_{kind}" for kind in OperationKind.values}


def test_every_audited_action_has_a_translatable_label():
    codes = written_audit_actions()
    assert {"set_queue_limits", "pause_queues", "enqueue", "run_schedules"} <= codes
    assert sorted(codes - set(ACTION_LABELS)) == []


def test_a_limits_change_is_reported_by_its_label(steering):
    steering.post(url("limits"), {"concurrency": "3"}, **JSON)
    assert action_label(AuditLog.objects.get().action) == "Set queue limits"


def test_a_drain_whose_queue_was_renamed_keeps_claiming_by_its_own_row():
    enqueue_many([{"name": "platform.echo", "payload": {}} for _ in range(2)])
    held = Queue.objects.get(name="default")
    Queue.objects.filter(pk=held.pk).update(name="renamed")
    forget_queue("default")
    assert len(claim_jobs(queue=held, worker="w", limit=10).jobs) == 2


def test_pausing_a_paused_queue_writes_and_audits_nothing():
    services.pause_queue("default", by="test")
    before = Queue.objects.get(name="default")
    audits = AuditLog.objects.count()
    assert services.pause_queue("default", by="test").paused is True
    assert AuditLog.objects.count() == audits
    assert Queue.objects.get(name="default").updated_at == before.updated_at
