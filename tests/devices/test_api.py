"""The devices API: 202 with the job to poll, the detail as the answer a client polls
(status, current operation with progress and state, recent operations),
400/401/403/404/409 on every route."""

import contextlib

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

from devices.models import Device, DeviceOperation
from queues.engine.runner import drain
from queues.models import Job
from tests.helpers import ledger_state, token_client

pytestmark = pytest.mark.django_db

PKG = "com.example.app"
APK = "https://example.com/app.apk"
# Each operation route: the device's state that allows it, a valid body, its handler.
OPERATIONS = [
    ("start", "stopped", {"resolution": "720x1280", "dpi": 320}, "start-device"),
    ("stop", "running", {}, "stop-device"),
    ("restart", "running", {}, "restart-device"),
    ("reset", "running", {}, "reset-device"),
    ("install", "running", {"packageName": PKG, "apkUrl": APK}, "install-app"),
    ("uninstall", "running", {"packageName": PKG}, "uninstall-app"),
]
ROUTES = [("get", "/api/v1/devices/"), ("get", "/api/v1/devices/{id}/")] + [
    ("post", f"/api/v1/devices/{{id}}/{op}/") for op, *_ in OPERATIONS
]


@pytest.fixture
def unchanged(django_capture_on_commit_callbacks):
    """``with unchanged():`` around refused requests: afterwards the devices, operations,
    jobs, queues and audit rows are as they were and nothing waits to run on commit."""

    @contextlib.contextmanager
    def check():
        before = ledger_state(Device, DeviceOperation)
        with django_capture_on_commit_callbacks() as callbacks:
            yield
        assert ledger_state(Device, DeviceOperation) == before
        assert callbacks == []

    return check


@pytest.fixture
def api(operator):
    return token_client(operator)


@pytest.mark.parametrize(("op", "status", "body", "handler"), OPERATIONS)
def test_every_operation_answers_202_with_the_job_and_operation(
    api, operator, make_device, op, status, body, handler
):
    device = make_device(status, installed_apps=[PKG] if op == "uninstall" else [])
    response = api.post(f"/api/v1/devices/{device.pk}/{op}/", body, format="json")
    assert response.status_code == 202, response.data
    operation = DeviceOperation.objects.get()
    job = Job.objects.get()
    assert response.data == {
        "message": response.data["message"],
        "jobId": str(job.pk),
        "operationId": operation.pk,
    }
    assert response.data["message"].endswith("operation queued")
    assert (job.name, job.queue.name, job.priority) == (handler, "device-operation", 3)
    assert job.payload["deviceId"] == device.pk and job.payload["userId"] == str(operator.pk)
    assert (operation.job_id, operation.kind, operation.requested_by) == (job.pk, op, operator)
    drain("device-operation")
    job.refresh_from_db()
    assert job.status == "completed", job.error


def test_the_detail_answers_progress_while_the_device_starts(api, make_device, recording_provider):
    device = make_device()
    accepted = api.post(f"/api/v1/devices/{device.pk}/start/", {}, format="json").data
    url = f"/api/v1/devices/{device.pk}/"
    queued = api.get(url).data
    assert queued["status"] == "stopped"
    current = queued["currentOperation"]
    assert (current["id"], current["jobId"]) == (accepted["operationId"], accepted["jobId"])
    assert (current["kind"], current["status"], current["progress"]) == ("start", "waiting", 0)
    assert (current["state"], current["attemptsMade"]) == ("waiting", 0)

    # Poll from inside the container step, as a client would while the worker runs.
    seen = []
    recording_provider.hooks.append(
        lambda method: seen.append(api.get(url).data) if method == "start_container" else None
    )
    drain("device-operation")
    (during,) = seen
    assert during["status"] == "starting"
    polled = during["currentOperation"]
    assert (polled["status"], polled["progress"], polled["state"]) == ("running", 50, "active")
    assert polled["attemptsMade"] == 1

    done = api.get(url).data
    assert (done["status"], done["currentOperation"]) == ("running", None)
    (last,) = done["recentOperations"]
    assert (last["id"], last["status"], last["progress"]) == (
        accepted["operationId"],
        "completed",
        100,
    )
    assert last["finishedAt"] is not None


def test_list_filters_by_status_with_queries_that_do_not_grow(
    api, make_device, django_assert_max_num_queries
):
    for _ in range(3):
        make_device("running")
    stopped = make_device()
    api.post(f"/api/v1/devices/{stopped.pk}/start/", {}, format="json")
    with django_assert_max_num_queries(10) as few:
        listed = api.get("/api/v1/devices/").data
    queries = len(few.captured_queries)  # before the next request resets the query log
    assert listed["count"] == 4
    by_id = {d["id"]: d for d in listed["results"]}
    assert by_id[stopped.pk]["currentOperation"]["state"] == "waiting"
    assert api.get("/api/v1/devices/", {"status": "stopped"}).data["count"] == 1
    for _ in range(20):
        make_device("stopped")
    with django_assert_max_num_queries(queries):
        assert api.get("/api/v1/devices/").data["count"] == 24


@pytest.mark.parametrize(
    ("op", "body", "field"),
    [
        ("start", {"resolution": "big"}, "resolution"),
        ("start", {"dpi": 5}, "dpi"),
        ("install", {"apkUrl": APK}, "packageName"),
        ("install", {"packageName": "not a package", "apkUrl": APK}, "packageName"),
        ("install", {"packageName": PKG, "apkUrl": "ftp://example.com/app.apk"}, "apkUrl"),
        ("install", {"packageName": PKG, "apkUrl": "nope"}, "apkUrl"),
        ("uninstall", {}, "packageName"),
    ],
)
def test_bad_input_is_400_and_writes_nothing(api, make_device, unchanged, op, body, field):
    device = make_device("stopped" if op == "start" else "running", installed_apps=[PKG])
    with unchanged():
        response = api.post(f"/api/v1/devices/{device.pk}/{op}/", body, format="json")
    assert response.status_code == 400 and field in response.data, response.data
    assert not Job.objects.exists() and not DeviceOperation.objects.exists()


@pytest.mark.parametrize(
    ("op", "status", "body", "detail"),
    [
        ("start", "running", {}, "device device-001 is already running"),
        ("stop", "stopped", {}, "device device-001 is already stopped"),
        (
            "install",
            "stopped",
            {"packageName": PKG, "apkUrl": APK},
            "device device-001 is stopped; apps can be installed only on a running device",
        ),
        (
            "uninstall",
            "running",
            {"packageName": PKG},
            f"{PKG} is not installed on device device-001",
        ),
    ],
)
def test_a_refused_transition_is_409_with_the_state(
    api, make_device, unchanged, op, status, body, detail
):
    make_device(status)
    with unchanged():
        response = api.post(f"/api/v1/devices/device-001/{op}/", body, format="json")
    assert response.status_code == 409
    assert response.data["detail"] == detail
    assert response.data["state"] == status
    assert not Job.objects.exists() and not DeviceOperation.objects.exists()


def test_a_busy_device_is_409(api, make_device, unchanged):
    device = make_device("running")
    assert api.post(f"/api/v1/devices/{device.pk}/restart/").status_code == 202
    with unchanged():
        response = api.post(f"/api/v1/devices/{device.pk}/stop/")
    assert response.status_code == 409 and "is busy" in response.data["detail"]
    assert Job.objects.count() == 1


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_anonymous_is_401(make_device, unchanged, method, route):
    device = make_device("running", installed_apps=[PKG])
    with unchanged():
        response = getattr(APIClient(), method)(route.format(id=device.pk), {}, format="json")
    assert response.status_code == 401
    assert not Job.objects.exists()


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_without_permission_is_403(make_device, unchanged, method, route):
    device = make_device("running", installed_apps=[PKG])
    staff = token_client(User.objects.create_user("staff", is_staff=True))
    user = User.objects.create_user("viewer", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_device"))
    viewer = token_client(user)
    url = route.format(id=device.pk)
    allowed = 200 if method == "get" else 403  # viewing is not operating
    with unchanged():
        assert getattr(staff, method)(url, {}, format="json").status_code == 403
        assert getattr(viewer, method)(url, {}, format="json").status_code == allowed
    assert not Job.objects.exists()


@pytest.mark.parametrize(("method", "route"), ROUTES[1:])
def test_an_unknown_device_is_404(api, make_device, unchanged, method, route):
    make_device("running", installed_apps=[PKG])
    with unchanged():
        response = getattr(api, method)(route.format(id="nope"), {}, format="json")
    assert response.status_code == 404
    assert Device.objects.count() == 1 and not Job.objects.exists()
