"""A job's own admin page acts: retry, cancel, run now, duplicate, edit (and retry), each
shown only where the job's state and the user's permissions allow it, each a POST through
the audited services. Every refusal leaves the job as it was."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from queues import enqueue, services
from queues.engine.runner import drain
from queues.exceptions import EnqueueError, InvalidJobState
from queues.humanize import human_duration, human_time
from queues.models import AuditLog, Job, JobStatus, Queue
from tests.queues import handlers  # noqa: F401

pytestmark = pytest.mark.django_db


def page(job) -> str:
    return f"/admin/queues/job/{job.pk}/change/"


def action(job, name: str) -> str:
    return f"/admin/queues/job/{job.pk}/{name}/"


def failed_job(payload=None, **options) -> Job:
    job = enqueue("platform.fail", payload or {"permanent": True}, **options)
    drain(job.queue.name)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    return job


def buttons(client, job) -> list[str]:
    html = client.get(page(job)).content.decode()
    return [a for a in services_actions() if f'data-action="{a}"' in html]


def services_actions() -> list[str]:
    return ["retry", "cancel", "promote", "duplicate", "edit"]


def staff(*perms: str) -> User:
    user = User.objects.create_user("sam", password="pw", is_staff=True)
    codenames = ["view_job", *perms]
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)  # fresh: no permission cache


def snapshot(job) -> dict:
    return Job.objects.filter(pk=job.pk).values().get()


def test_the_buttons_follow_the_job_state(admin_client):
    failed = failed_job()
    delayed = enqueue("platform.echo", {"i": 1}, delay=3600)
    done = enqueue("platform.echo", {"i": 2})
    drain("default")
    active = enqueue("test.record", {"i": 3}, queue="default")
    Job.objects.filter(pk=active.pk).update(status=JobStatus.ACTIVE, worker="w1")

    assert buttons(admin_client, failed) == ["retry", "duplicate", "edit"]
    assert buttons(admin_client, delayed) == ["cancel", "promote", "duplicate", "edit"]
    assert buttons(admin_client, done) == ["duplicate"]
    assert buttons(admin_client, active) == ["cancel", "duplicate"]
    html = admin_client.get(page(failed)).content.decode()
    assert ">Edit and retry<" in html
    assert ">Edit<" in admin_client.get(page(delayed)).content.decode()


def test_the_buttons_follow_the_permissions(client):
    failed = failed_job()
    client.force_login(staff("retry_job"))
    assert buttons(client, failed) == ["retry"]
    client.force_login(staff_with("view_job"))
    assert buttons(client, failed) == []


def staff_with(*codenames: str) -> User:
    user = User.objects.create_user(f"u{User.objects.count()}", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)


def test_retry_from_the_page_is_audited_and_goes_back_to_the_page(admin_client):
    job = failed_job()
    response = admin_client.post(action(job, "retry"), follow=True)
    assert response.redirect_chain[-1][0] == page(job)
    assert "The job was sent back to its queue." in response.content.decode()
    job.refresh_from_db()
    assert job.status == JobStatus.WAITING
    row = AuditLog.objects.get()
    assert (row.action, row.target, row.username) == ("retry_jobs", str(job.pk), "admin")


def test_a_refused_action_says_why_and_changes_nothing(admin_client):
    job = enqueue("platform.echo", {"i": 1})
    drain("default")
    before = snapshot(job)
    for name in ("retry", "cancel", "promote"):
        response = admin_client.post(action(job, name), follow=True)
        assert response.redirect_chain[-1][0] == page(job)
        assert "completed" in response.content.decode()
    assert snapshot(job) == before
    assert not AuditLog.objects.exists()


def test_the_buttons_take_post_only_and_need_their_permission(client, admin_client):
    job = failed_job()
    before = snapshot(job)
    assert admin_client.get(action(job, "retry")).status_code == 405
    client.force_login(staff("view_job"))
    for name in services_actions():
        assert client.post(action(job, name)).status_code == 403, name
    assert client.get(action(job, "edit")).status_code == 403
    # Not an action: the admin's own catch-all answers (a redirect), nothing runs.
    assert admin_client.post(f"/admin/queues/job/{job.pk}/explode/").status_code == 302
    assert snapshot(job) == before
    assert Job.objects.count() == 1
    assert not AuditLog.objects.exists()


def test_cancel_and_run_now_a_delayed_job(admin_client):
    first = enqueue("platform.echo", {"i": 1}, delay=3600)
    second = enqueue("platform.echo", {"i": 2}, delay=3600)
    admin_client.post(action(first, "cancel"))
    admin_client.post(action(second, "promote"))
    assert Job.objects.get(pk=first.pk).status == JobStatus.CANCELLED
    promoted = Job.objects.get(pk=second.pk)
    assert promoted.status == JobStatus.WAITING
    assert promoted.run_at <= timezone.now()
    assert list(AuditLog.objects.order_by("id").values_list("action", "target")) == [
        ("cancel_jobs", str(first.pk)),
        ("promote_jobs", str(second.pk)),
    ]


def test_duplicate_enqueues_a_copy_and_opens_it(admin_client):
    Queue.objects.create(name="other")
    job = failed_job({"permanent": True, "n": 7}, queue="other", priority=2, attempts=4)
    response = admin_client.post(action(job, "duplicate"), follow=True)
    copy = Job.objects.exclude(pk=job.pk).get()
    assert response.redirect_chain[-1][0] == page(copy)
    assert (copy.name, copy.payload, copy.queue.name, copy.priority, copy.max_attempts) == (
        job.name,
        job.payload,
        "other",
        2,
        4,
    )
    assert copy.status == JobStatus.WAITING
    assert copy.attempts_made == 0
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED  # the original stays
    row = AuditLog.objects.get()
    assert (row.action, row.target, row.detail) == (
        "duplicate_job",
        str(copy.pk),
        {"source": str(job.pk)},
    )


def test_the_edit_form_shows_the_job_and_refuses_bad_input_inline(admin_client):
    job = failed_job({"permanent": True, "to": "alice"})
    before = snapshot(job)
    html = admin_client.get(action(job, "edit")).content.decode()
    assert "&quot;alice&quot;" in html and 'name="priority"' in html
    bad = {"payload": "{not json", "queue": "default", "priority": "5", "delay": ""}
    response = admin_client.post(action(job, "edit"), bad)
    assert response.status_code == 200
    assert "This is not valid JSON" in response.content.decode()
    response = admin_client.post(action(job, "edit"), {**bad, "payload": "{}", "priority": "99"})
    assert "less than or equal to 10" in response.content.decode()
    response = admin_client.post(action(job, "edit"), {**bad, "payload": "{}", "queue": "nope"})
    assert "Select a valid choice" in response.content.decode()
    assert snapshot(job) == before
    assert not AuditLog.objects.exists()


def test_edit_and_retry_changes_the_job_and_audits_the_diff(admin_client):
    Queue.objects.create(name="other")
    job = failed_job({"permanent": True})
    data = {"payload": '{"permanent": false, "n": 1}', "queue": "other", "priority": "3"}
    before = timezone.now()
    response = admin_client.post(action(job, "edit"), {**data, "delay": "60"}, follow=True)
    after = timezone.now()
    assert response.redirect_chain[-1][0] == page(job)
    job.refresh_from_db()
    assert (job.payload, job.queue.name, job.priority) == ({"permanent": False, "n": 1}, "other", 3)
    assert job.status == JobStatus.DELAYED
    # 60 s from the moment of the edit, however long the request took.
    assert before + timedelta(seconds=60) <= job.run_at <= after + timedelta(seconds=60)
    assert job.attempts_base == job.attempts_made  # a fresh set of attempts
    row = AuditLog.objects.get()
    assert (row.action, row.target, row.username) == ("edit_job", str(job.pk), "admin")
    changes = row.detail["changes"]
    assert changes["payload"] == [{"permanent": True}, {"permanent": False, "n": 1}]
    assert changes["queue"] == ["default", "other"]
    assert changes["priority"] == [5, 3]
    assert changes["status"] == ["failed", "delayed"]
    assert row.detail["retried"] is True


def test_edit_a_waiting_job_in_place(admin_client):
    job = enqueue("platform.echo", {"i": 1}, delay=600)
    form = {"payload": '{"i": 2}', "queue": "default", "priority": "5", "delay": "0"}
    admin_client.post(action(job, "edit"), form)
    job.refresh_from_db()
    assert (job.payload, job.status, job.attempts_made) == ({"i": 2}, JobStatus.WAITING, 0)
    assert AuditLog.objects.get().detail["changes"]["status"] == ["delayed", "waiting"]
    assert AuditLog.objects.get().detail["retried"] is False


def test_edit_of_a_running_job_is_refused(admin_client):
    job = enqueue("test.record", {"i": 1})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.ACTIVE, worker="w1")
    before = snapshot(job)
    response = admin_client.get(action(job, "edit"), follow=True)
    assert "can be edited" in response.content.decode()
    with pytest.raises(InvalidJobState, match="active"):
        services.edit_job(job.pk, payload={"i": 2})
    assert snapshot(job) == before
    assert not AuditLog.objects.exists()


def test_edit_needs_its_own_permission(client):
    job = failed_job()
    before = snapshot(job)
    client.force_login(staff("retry_job", "cancel_job", "promote_job", "add_job"))
    assert client.post(action(job, "edit"), {"payload": "{}", "priority": "5"}).status_code == 403
    assert snapshot(job) == before


def test_an_edit_the_retry_refuses_is_rolled_back_whole():
    parent = failed_job()
    child = enqueue("platform.fail", {"permanent": True}, depends_on=[parent.pk])
    drain("default")
    child.refresh_from_db()
    assert child.status == JobStatus.FAILED  # its required parent failed
    before = snapshot(child)
    with pytest.raises(InvalidJobState, match="required dependency"):
        services.edit_job(child.pk, payload={"changed": True}, priority=1)
    assert snapshot(child) == before
    assert not AuditLog.objects.exists()


def test_a_move_onto_a_taken_unique_key_is_refused():
    Queue.objects.create(name="other")
    enqueue("platform.echo", {"i": 1}, queue="other", unique_key="k")
    job = enqueue("platform.echo", {"i": 2}, unique_key="k", delay=600)
    before = snapshot(job)
    with pytest.raises(InvalidJobState, match="unique_key"):
        services.edit_job(job.pk, queue="other")
    assert snapshot(job) == before


def test_edit_checks_what_enqueue_checks():
    job = enqueue("platform.echo", {"i": 1}, delay=600)
    before = snapshot(job)
    with pytest.raises(EnqueueError, match="JSON"):
        services.edit_job(job.pk, payload={"bad": object()})
    with pytest.raises(EnqueueError, match="priority"):
        services.edit_job(job.pk, priority=0)
    with pytest.raises(EnqueueError, match="delay"):
        services.edit_job(job.pk, delay=-1)
    with pytest.raises(EnqueueError):
        services.edit_job(job.pk, queue="no-such-queue")
    assert snapshot(job) == before


def test_the_job_list_shows_the_first_error_line_and_the_duration(admin_client):
    failed_job({"permanent": True, "message": "smtp down\nsecond line"})
    done = enqueue("platform.echo", {"i": 1})
    drain("default")
    done.refresh_from_db()
    html = admin_client.get("/admin/queues/job/").content.decode()
    assert '<span class="jp-error" title="' in html
    assert "smtp down" in html and "second line" not in html
    took = human_duration(done.finished_at - done.started_at)
    assert f'<td class="field-took">{took}</td>' in html
    assert "ago</time>" in html or "just now</time>" in html


def test_human_times_and_durations():
    now = timezone.now()
    assert ">3\xa0minutes ago</time>" in human_time(now - timedelta(minutes=3, seconds=5), now)
    assert ">in 2\xa0hours</time>" in human_time(now + timedelta(hours=2, minutes=1), now)
    assert ">just now</time>" in human_time(now, now)
    assert ">30 s ago</time>" in human_time(now - timedelta(seconds=30), now)
    assert ">in 5 s</time>" in human_time(now + timedelta(seconds=5), now)
    assert human_time(None) == "-"
    assert [human_duration(s) for s in (0.0123, 4.25, 185, 7800)] == [
        "12 ms",
        "4.2 s",
        "3 min 5 s",
        "2 h 10 min",
    ]


# --- enqueue from the admin, and handlers' schemas -----------------------------------


ADD = "/admin/queues/job/add/"


def test_a_handler_schema_refuses_a_bad_payload_everywhere(admin_client, admin_user):
    from tests.helpers import token_client

    with pytest.raises(EnqueueError, match=r"schema of handler platform.sleep.*seconds"):
        enqueue("platform.sleep", {"seconds": "soon"})
    with pytest.raises(EnqueueError, match="schema"):
        services.validate_job("platform.sleep", {"seconds": -1})
    api = token_client(admin_user)
    response = api.post(
        "/api/v1/jobs/", {"name": "platform.sleep", "payload": {"nap": 1}}, format="json"
    )
    assert response.status_code == 400
    assert "schema" in str(response.data)
    assert not Job.objects.exists()
    assert enqueue("platform.sleep", {"seconds": 0}).status == JobStatus.WAITING


def test_a_schema_or_example_that_is_wrong_is_refused_at_registration():
    from queues.registry import job

    with pytest.raises(ValueError, match="not a JSON schema"):
        job("test.bad-schema", schema={"type": "nonsense"})(lambda ctx, p: None)
    with pytest.raises(ValueError, match="does not match its schema"):
        job("test.bad-example", schema={"type": "object"}, example=[1])(lambda ctx, p: None)


def test_the_new_job_form_enqueues_a_job_and_audits_who(admin_client):
    Queue.objects.create(name="other")
    html = admin_client.get(ADD + "?name=platform.sleep").content.decode()
    assert '<option value="platform.sleep" selected>' in html
    assert "&quot;seconds&quot;: 2" in html  # the handler's example
    assert "&quot;minimum&quot;: 0" in html  # and its schema
    form = {
        "name": "platform.sleep",
        "payload": '{"seconds": 1}',
        "queue": "other",
        "priority": "2",
        "delay": "120",
        "attempts": "4",
        "backoff": '{"type": "fixed", "delay": 500}',
    }
    response = admin_client.post(ADD, form, follow=True)
    job = Job.objects.get()
    assert response.redirect_chain[-1][0] == page(job)
    assert (job.name, job.payload, job.queue.name, job.priority, job.max_attempts) == (
        "platform.sleep",
        {"seconds": 1},
        "other",
        2,
        4,
    )
    assert job.status == JobStatus.DELAYED
    assert job.backoff == {"type": "fixed", "delay": 500}
    row = AuditLog.objects.get()
    assert (row.action, row.target, row.username, row.count) == ("enqueue", str(job.pk), "admin", 1)


def test_the_new_job_form_shows_errors_inline_and_writes_nothing(admin_client):
    base = {"name": "platform.sleep", "queue": "", "priority": "", "delay": "", "attempts": ""}
    cases = [
        ({"payload": "{oops"}, "This is not valid JSON"),
        ({"payload": '{"seconds": "soon"}'}, "does not match the schema"),
        ({"payload": "{}", "name": "no.such.handler"}, "Select a valid choice"),
        ({"payload": "{}", "priority": "0"}, "greater than or equal to 1"),
        ({"payload": "{}", "backoff": '{"type": "sideways"}'}, "backoff"),
    ]
    for change, message in cases:
        response = admin_client.post(ADD, {**base, **change})
        assert response.status_code == 200, change
        assert message in response.content.decode(), change
    assert not Job.objects.exists()
    assert not AuditLog.objects.exists()


def test_enqueue_from_the_admin_needs_the_add_permission(client):
    client.force_login(staff("retry_job"))
    assert client.get(ADD).status_code == 403
    assert client.post(ADD, {"name": "platform.echo", "payload": "{}"}).status_code == 403
    assert not Job.objects.exists()


def test_the_new_pages_run_a_fixed_number_of_queries(admin_client, django_assert_num_queries):
    """Pinned: the index summary, the new-job form, the edit form and a job's page with
    its buttons, whatever the number of jobs, queues and handlers."""
    failed = failed_job()
    enqueue_many_echo(200)
    counts = {}
    for url in ("/admin/", ADD, action(failed, "edit"), page(failed)):
        admin_client.get(url)  # warm caches (content types, the session)
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url).status_code == 200
        counts[url] = len(queries)
    enqueue_many_echo(300)
    Queue.objects.create(name="another")
    for url, expected in counts.items():
        with django_assert_num_queries(expected):
            admin_client.get(url)
    assert counts["/admin/"] <= 12, counts
    assert counts[ADD] <= 6, counts
    assert counts[action(failed, "edit")] <= 6, counts
    # The session, the user, the job with its queue, its attempts, its newest log lines,
    # its dependencies, its dependants, the schedule run that made it (was 11: the job
    # read twice, its queue, its attempts twice and its logs for an inline).
    assert counts[page(failed)] == 8, counts


def enqueue_many_echo(n: int) -> None:
    from queues import enqueue_many
    from queues.metrics import refresh_snapshots

    enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(n)])
    refresh_snapshots()


# --- the timeline of a job's attempts, and its live state -----------------------------


def live(job) -> str:
    return f"/admin/queues/job/{job.pk}/live/"


def job_with_three_attempts(start=None) -> Job:
    """A completed job whose attempts started 2 s then 4 s apart: two failed (their rows,
    tracebacks and log lines), the third completed (on the job's row)."""
    from queues.models import JobAttempt, JobLog

    t0 = (start or timezone.now() - timedelta(minutes=5)).replace(microsecond=412_000)
    job = enqueue("platform.echo", {"i": 1})
    ms = lambda n: timedelta(milliseconds=n)  # noqa: E731
    JobAttempt.objects.bulk_create(
        [
            JobAttempt(
                job=job,
                number=1,
                worker="host-a:11",
                started_at=t0,
                finished_at=t0 + ms(412),
                duration_ms=412,
                outcome="failed",
                error="ConnectionError: smtp refused",
                traceback="Traceback (most recent call last):\n  File x.py\n"
                "ConnectionError: smtp refused",
            ),
            JobAttempt(
                job=job,
                number=2,
                worker="host-b:22",
                started_at=t0 + ms(2000),
                finished_at=t0 + ms(4100),
                duration_ms=2100,
                outcome="timeout",
                error="timed out after 2.1 s",
                traceback="Traceback (most recent call last):\nTimeoutError",
            ),
        ]
    )
    lines = [(1, 100, "validating"), (2, 2345, "WARNING: slow upstream"), (3, 6200, "sent")]
    for number, at, message in lines:
        row = JobLog.objects.create(job=job, attempt=number, message=message)
        JobLog.objects.filter(pk=row.pk).update(created_at=t0 + ms(at))  # auto_now_add
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.COMPLETED,
        attempts_made=3,
        worker="host-c:33",
        started_at=t0 + ms(6000),
        finished_at=t0 + ms(6250),
        progress=100,
    )
    return Job.objects.get(pk=job.pk)


def test_the_timeline_shows_every_attempt_to_the_millisecond(admin_client):
    job = job_with_three_attempts()
    t0 = job.started_at - timedelta(seconds=6)
    html = admin_client.get(page(job)).content.decode()
    starts = [t0, t0 + timedelta(seconds=2), t0 + timedelta(seconds=6)]
    clocks = [timezone.localtime(s).strftime("%H:%M:%S.%f")[:-3] for s in starts]
    assert len(set(clocks)) == 3 and all(c.endswith(".412") for c in clocks)
    for number, (start, clock) in enumerate(zip(starts, clocks, strict=True), start=1):
        assert f'<tr class="jp-tl-row" data-attempt="{number}"' in html
        assert f'<time datetime="{start.isoformat()}"' in html
        assert f">{clock}</time>" in html
    # Number, outcome, worker; the completing attempt from the job's row.
    assert "<td>1</td><td>Failed</td><td>host-a:11</td>" in html
    assert "<td>2</td><td>Timeout</td><td>host-b:22</td>" in html
    assert "<td>3</td><td>Completed</td><td>host-c:33</td>" in html
    durations = ['"jp-tl-duration">412 ms<', '"jp-tl-duration">2.1 s<', '"jp-tl-duration">250 ms<']
    assert all(d in html for d in durations)
    assert ">ConnectionError: smtp refused</span>" in html
    assert ">timed out after 2.1 s</span>" in html
    # Bars on one axis (6.25 s): offsets and widths; the waits before attempts 2 and 3.
    assert 'data-outcome="failed" style="left:0%;width:6.592%"' in html
    assert 'data-outcome="timeout" style="left:32%;width:33.6%"' in html
    assert 'data-outcome="completed" style="left:96%;width:4%"' in html
    assert 'class="jp-tl-gap" style="left:6.592%;width:25.408%" title="waited 1.6 s"' in html
    assert 'class="jp-tl-gap" style="left:65.6%;width:30.4%" title="waited 1.9 s"' in html
    # Each traceback folded under its attempt; log lines with their level and time.
    assert html.count('<details class="jp-tl-traceback"') == 2
    assert "ConnectionError: smtp refused</pre></details>" in html
    for at, level, message in [(100, "INFO", "validating"), (2345, "WARNING", "slow upstream")]:
        clock = timezone.localtime(t0 + timedelta(milliseconds=at)).strftime("%H:%M:%S.%f")[:-3]
        assert f'>{clock}</time></span> <span class="jp-tl-level jp-data">{level}</span>' in html
        assert f'<span class="jp-tl-message">{message}</span>' in html
    # The job's moments read "4 minutes ago", the exact time in the tooltip.
    exact = timezone.localtime(job.started_at).strftime("%Y-%m-%d %H:%M:%S UTC")
    started = f'<time datetime="{job.started_at.isoformat()}" title="{exact}">4\xa0minutes ago'
    assert started in html
    assert 'id="jp-job-live"' in html and 'data-poll="0"' in html  # finished: no polling


def test_an_active_job_page_shows_its_running_attempt_and_polls(admin_client):
    job = enqueue("platform.echo", {"i": 1})
    started = timezone.now() - timedelta(seconds=3)
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.ACTIVE, attempts_made=1, worker="host:9", started_at=started, progress=35
    )
    html = admin_client.get(page(job)).content.decode()
    assert "<td>1</td><td>Running</td><td>host:9</td>" in html
    assert " so far<" in html and 'data-outcome="running"' in html
    assert 'data-poll="1"' in html and 'data-url="/admin/queues/job/' in html
    assert 'aria-valuenow="35"' in html and '<div style="width:35%">' in html
    assert "/static/queues/job.js" in html and "/admin/jp-jsi18n/" in html


def test_the_live_state_is_json_of_one_query(admin_client, django_assert_num_queries):
    job = enqueue("platform.echo", {"i": 1})
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.ACTIVE, attempts_made=2, worker="host:9", progress=60
    )
    admin_client.get(live(job))  # the session read
    with django_assert_num_queries(3):  # the session, the user, the job
        response = admin_client.get(live(job))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    data = response.json()
    assert {k: data[k] for k in ("status", "progress", "attempts_made", "worker", "final")} == {
        "status": "active",
        "progress": 60,
        "attempts_made": 2,
        "worker": "host:9",
        "final": False,
    }
    assert (data["status_label"], data["status_color"]) == ("active", "#2b7bb9")
    assert data["finished_at"] is None and data["now"]
    done = job_with_three_attempts()
    data = admin_client.get(live(done)).json()
    assert (data["status"], data["final"], data["progress"]) == ("completed", True, 100)
    assert parse_datetime(data["finished_at"]) == done.finished_at  # to the ms, as it has
    missing = "/admin/queues/job/00000000-0000-0000-0000-000000000000/live/"
    assert admin_client.get(missing).status_code == 404


@pytest.mark.parametrize(
    ("who", "expected"),
    [("anonymous", 302), ("not staff", 302), ("staff without view_job", 403), ("viewer", 200)],
)
def test_the_live_state_needs_staff_and_the_view_permission(client, who, expected):
    job = enqueue("platform.echo", {"i": 1})
    if who == "not staff":
        user = User.objects.create_user("nina", password="pw")
        user.user_permissions.set(Permission.objects.filter(codename="view_job"))
        client.force_login(user)
    elif who == "staff without view_job":
        client.force_login(staff_with("view_queue"))
    elif who == "viewer":
        client.force_login(staff_with("view_job"))
    response = client.get(live(job))
    assert response.status_code == expected
    if expected == 302:
        assert response["Location"].startswith("/admin/login/?next=")
    if expected == 200:
        assert response.json()["status"] == "waiting"


def test_the_job_page_queries_do_not_grow_with_attempts_and_logs(admin_client):
    from queues.models import JobAttempt, JobLog

    job = job_with_three_attempts()
    admin_client.get(page(job))
    with CaptureQueriesContext(connection) as small:
        admin_client.get(page(job))
    t0 = job.started_at + timedelta(seconds=10)
    JobAttempt.objects.bulk_create(
        JobAttempt(
            job=job,
            number=n,
            started_at=t0 + timedelta(seconds=n),
            finished_at=t0 + timedelta(seconds=n, milliseconds=300),
            duration_ms=300,
            outcome="failed",
            error=f"try {n}",
            traceback=f"Traceback {n}",
        )
        for n in range(4, 40)
    )
    # The completing attempt is the 40th now.
    end = t0 + timedelta(seconds=50)
    Job.objects.filter(pk=job.pk).update(attempts_made=40, started_at=end, finished_at=end)
    JobLog.objects.bulk_create(JobLog(job=job, attempt=5, message=f"line {i}") for i in range(600))
    with CaptureQueriesContext(connection) as large:
        html = admin_client.get(page(job)).content.decode()
    assert len(large) == len(small) == 8, [q["sql"][:80] for q in large.captured_queries]
    assert html.count('class="jp-tl-row"') == 39  # 1, 2, 4 to 39, and 40 on the job's row
    # The newest 500 lines, and a note that there are more.
    assert "line 599" in html and "line 99<" not in html and "line 100<" in html
    assert "Only the newest 500 log lines are shown." in html
