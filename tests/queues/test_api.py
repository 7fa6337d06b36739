"""The queues, jobs, workers and stats API: success paths, errors, 401/403 per route."""

import contextlib
import uuid

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

from jobplatform.authentication import CachedTokenAuthentication
from queues import enqueue
from queues.engine.runner import drain
from queues.metrics import flush, refresh_snapshots
from queues.models import AuditLog, Job, JobStatus, Queue
from tests.helpers import ledger_state, token_client
from tests.queues import handlers  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def unchanged(django_capture_on_commit_callbacks):
    """``with unchanged():`` around refused requests: afterwards every queue, job
    (status, attempts, payload...), attempt and audit row is as it was, and nothing was
    left to run on commit (no worker woken for a new job)."""

    @contextlib.contextmanager
    def check():
        before = ledger_state()
        with django_capture_on_commit_callbacks() as callbacks:
            yield
        assert ledger_state() == before
        assert callbacks == []

    return check


@pytest.fixture
def api(admin_user):
    return token_client(admin_user)


def test_create_get_and_list_jobs(api):
    response = api.post(
        "/api/v1/jobs/",
        {
            "name": "platform.echo",
            "payload": {"to": "alice@example.com"},
            "queue": "email",
            "priority": 1,
            "attempts": 5,
            "backoff": {"type": "fixed", "delay": 100},
            "timeout_ms": 2500,
        },
        format="json",
    )
    assert response.status_code == 201, response.data
    job = Job.objects.get(pk=response.data["id"])
    assert (job.queue.name, job.priority, job.max_attempts, job.timeout) == ("email", 1, 5, 2.5)
    drain("email")
    detail = api.get(f"/api/v1/jobs/{job.pk}/").data
    assert detail["status"] == "completed" and detail["result"] == {"to": "alice@example.com"}
    assert [a["outcome"] for a in detail["attempts"]] == ["completed"]
    # Its completing attempt lives on the job's row; the API shows it as an attempt.
    (attempt,) = detail["attempts"]
    assert attempt["number"] == 1 and attempt["worker"] == job_after(job).worker != ""
    assert attempt["started_at"] and attempt["duration_ms"] is not None
    listed = api.get("/api/v1/jobs/", {"q": "to:alice@example.com", "status": "completed"}).data
    assert [j["id"] for j in listed["results"]] == [str(job.pk)]
    assert api.get("/api/v1/jobs/", {"queue": "sms"}).data["results"] == []


def job_after(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def test_job_list_is_cursor_paginated(api):
    for i in range(7):
        enqueue("platform.echo", {"i": i})
    first = api.get("/api/v1/jobs/", {"limit": 5}).data
    second = api.get(first["next"]).data
    ids = [j["id"] for j in first["results"] + second["results"]]
    assert len(ids) == 7 == len(set(ids)) and second["next"] is None


def test_delay_run_at_unique_key_and_dependencies(api):
    delayed = api.post(
        "/api/v1/jobs/", {"name": "platform.echo", "delay_ms": 60000}, format="json"
    ).data
    assert delayed["status"] == "delayed"
    a = api.post("/api/v1/jobs/", {"name": "platform.echo", "unique_key": "k"}, format="json")
    b = api.post("/api/v1/jobs/", {"name": "platform.echo", "unique_key": "k"}, format="json")
    assert (a.status_code, b.status_code, a.data["id"]) == (201, 200, b.data["id"])
    child = api.post(
        "/api/v1/jobs/", {"name": "platform.echo", "depends_on": [a.data["id"]]}, format="json"
    ).data
    assert child["status"] == "blocked"


def test_bulk_create_is_all_or_nothing(api, unchanged):
    ok = api.post(
        "/api/v1/jobs/bulk/",
        {"jobs": [{"name": "platform.echo", "payload": {"i": i}} for i in range(3)]},
        format="json",
    )
    assert ok.status_code == 201 and len(ok.data) == 3
    with unchanged():
        bad = api.post(
            "/api/v1/jobs/bulk/",
            {"jobs": [{"name": "platform.echo"}, {"name": "nope"}]},
            format="json",
        )
    assert bad.status_code == 400 and "job #1" in str(bad.data)
    assert Job.objects.count() == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "nope"}, "detail"),
        ({"name": "platform.echo", "queue": "nope"}, "detail"),
        ({"name": "platform.echo", "priority": 0}, "priority"),
        ({"name": "platform.echo", "delay_ms": -1}, "delay_ms"),
        ({"name": "platform.echo", "delay_ms": 5, "run_at": "2030-01-01T00:00:00Z"}, "delay_ms"),
        ({"name": "platform.echo", "webhook_url": "ftp://x.example/"}, "webhook_url"),
        ({"name": "platform.echo", "depends_on": [str(uuid.uuid4())]}, "detail"),
        ({"name": "platform.echo", "backoff": {"type": "linear", "delay": 1}}, "backoff"),
        ({"payload": {}}, "name"),
    ],
)
def test_bad_job_input_is_400_and_writes_nothing(api, unchanged, body, field):
    enqueue("platform.echo", {"already": "here"})
    with unchanged():
        response = api.post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 400 and field in response.data, response.data
    assert Job.objects.count() == 1


def test_job_state_changes_and_409(api, unchanged):
    failed = enqueue("platform.fail", {"permanent": True})
    done = enqueue("platform.echo", {})
    delayed = enqueue("platform.echo", {}, delay=3600)
    drain("default")
    assert api.post(f"/api/v1/jobs/{failed.pk}/retry/").data["status"] == "waiting"
    with unchanged():
        conflict = api.post(f"/api/v1/jobs/{done.pk}/retry/")
        assert conflict.status_code == 409 and conflict.data["state"] == "completed"
        assert api.post(f"/api/v1/jobs/{done.pk}/cancel/").status_code == 409
    assert api.post(f"/api/v1/jobs/{delayed.pk}/promote/").data["status"] == "waiting"
    with unchanged():
        assert api.post(f"/api/v1/jobs/{delayed.pk}/promote/").status_code == 409
    assert api.post(f"/api/v1/jobs/{delayed.pk}/cancel/").data["status"] == "cancelled"
    assert api.delete(f"/api/v1/jobs/{done.pk}/").status_code == 204
    assert api.get(f"/api/v1/jobs/{done.pk}/").status_code == 404
    assert api.get(f"/api/v1/jobs/{uuid.uuid4()}/wait/?timeout=0").status_code == 404
    assert {a.action for a in AuditLog.objects.all()} >= {
        "retry_jobs",
        "promote_jobs",
        "cancel_jobs",
        "delete_jobs",
    }


def test_retry_and_cancel_by_filter(api):
    for _ in range(4):
        enqueue("platform.fail", {"permanent": True})
    drain("default")
    enqueue("platform.echo", {}, queue="sms")
    assert api.post("/api/v1/jobs/retry/", {"status": "failed"}, format="json").data == {"count": 4}
    assert api.post("/api/v1/jobs/cancel/", {"queue": "sms"}, format="json").data == {"count": 1}
    assert Job.objects.filter(status=JobStatus.WAITING).count() == 4


def test_queues_status_shape_and_operations(api, unchanged):
    enqueue("platform.echo", {})
    refresh_snapshots()
    data = api.get("/api/v1/queues/").data
    assert data["summary"]["total_queues"] == Queue.objects.count()
    assert data["summary"]["waiting"] == 1
    assert api.get("/api/v1/queues/default/").data["counts"]["waiting"] == 1
    assert api.post("/api/v1/queues/default/pause/").data["paused"] is True
    assert api.post("/api/v1/queues/default/resume/").data["paused"] is False
    assert api.post("/api/v1/queues/default/empty/").data == {"count": 1}
    patched = api.patch(
        "/api/v1/queues/default/", {"concurrency": 4, "default_attempts": 7}, format="json"
    )
    assert (patched.data["concurrency"], patched.data["default_attempts"]) == (4, 7)
    enqueue("platform.echo", {})  # something "clean" must not touch
    with unchanged():
        bad = api.patch("/api/v1/queues/default/", {"rate_limit_max": 5}, format="json")
        assert bad.status_code == 400
        assert Queue.objects.get(name="default").rate_limit_max is None
        clean = api.post("/api/v1/queues/default/clean/", {"status": "active"}, format="json")
        assert clean.status_code == 400
    assert api.post(
        "/api/v1/queues/default/clean/", {"status": "completed"}, format="json"
    ).data == {"count": 0}
    assert api.get("/api/v1/queues/nope/").status_code == 404


def test_workers_and_stats(api, django_capture_on_commit_callbacks, unchanged):
    enqueue("platform.echo", {})
    enqueue("platform.fail", {"permanent": True})
    with django_capture_on_commit_callbacks(execute=True):
        drain("default")
    flush(force=True)
    stats = api.get("/api/v1/stats/", {"window": 3600}).data
    assert (stats["total"], stats["completed"], stats["failed"]) == (2, 1, 1)
    assert stats["success_rate"] == 0.5 and stats["queues"]["default"]["total"] == 2
    with unchanged():
        assert api.get("/api/v1/stats/", {"window": 5}).status_code == 400
    assert api.get("/api/v1/workers/").data == []


def test_request_body_over_the_limit_is_413(api, settings, unchanged):
    settings.API_MAX_BODY_BYTES = 1000
    with unchanged():
        response = api.post(
            "/api/v1/jobs/", {"name": "platform.echo", "payload": {"x": "y" * 2000}}, format="json"
        )
    assert response.status_code == 413
    assert not Job.objects.exists()


ROUTES = [
    ("get", "/api/v1/queues/", "view_queue"),
    ("get", "/api/v1/queues/default/", "view_queue"),
    ("patch", "/api/v1/queues/default/", "change_queue"),
    ("post", "/api/v1/queues/default/pause/", "pause_queue"),
    ("post", "/api/v1/queues/default/resume/", "pause_queue"),
    ("post", "/api/v1/queues/default/empty/", "delete_job"),
    ("post", "/api/v1/queues/default/clean/", "delete_job"),
    ("get", "/api/v1/jobs/", "view_job"),
    ("post", "/api/v1/jobs/", "add_job"),
    ("post", "/api/v1/jobs/bulk/", "add_job"),
    ("post", "/api/v1/jobs/retry/", "retry_job"),
    ("post", "/api/v1/jobs/cancel/", "cancel_job"),
    ("get", "/api/v1/jobs/{id}/", "view_job"),
    ("delete", "/api/v1/jobs/{id}/", "delete_job"),
    ("post", "/api/v1/jobs/{id}/retry/", "retry_job"),
    ("post", "/api/v1/jobs/{id}/cancel/", "cancel_job"),
    ("post", "/api/v1/jobs/{id}/promote/", "promote_job"),
    ("get", "/api/v1/jobs/{id}/wait/?timeout=0", "view_job"),
    ("get", "/api/v1/workers/", "view_worker"),
    ("get", "/api/v1/stats/", "view_job"),
]


@pytest.mark.parametrize(("method", "url", "perm"), ROUTES)
def test_anonymous_is_401_and_without_permission_is_403(unchanged, method, url, perm):
    job = enqueue("platform.echo", {})
    url = url.replace("{id}", str(job.pk))
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    client = token_client(user)
    with unchanged():
        anonymous = getattr(APIClient(), method)(url, {}, format="json")
        assert anonymous.status_code == 401
        assert getattr(client, method)(url, {}, format="json").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename=perm))
    # An API process remembers a token's user (and its permissions) for a few seconds.
    CachedTokenAuthentication._cache.clear()
    assert getattr(client, method)(url, {}, format="json").status_code not in (401, 403)


@pytest.mark.parametrize("field", ["concurrency", "rate_limit_max", "rate_limit_duration_ms"])
def test_a_zero_limit_is_refused_not_read_as_no_limit(admin_client, field):
    before = Queue.objects.filter(name="default").values().get()
    response = admin_client.patch(
        "/api/v1/queues/default/", {field: 0}, content_type="application/json"
    )
    assert response.status_code == 400
    assert field in response.json()
    assert Queue.objects.filter(name="default").values().get() == before
