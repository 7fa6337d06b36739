"""Each device handler end to end on the in-process worker path (queues.engine.runner.drain):
each step and its progress (start: 10, 30, 50, 70, 90, 100) exactly, device and operation
state, guarded transitions."""

import re

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from devices import services
from devices.models import Device, DeviceOperation, DeviceStatus, OperationStatus
from queues import Priority, enqueue
from queues.engine.maintenance import promote_delayed
from queues.engine.runner import drain
from queues.models import Job, JobLog, JobStatus

pytestmark = pytest.mark.django_db

QUEUE = "device-operation"
PKG = "com.example.app"
APK = "https://example.com/app.apk"


def progress_logged(job: Job) -> list[int]:
    """The progress of each step, in the order the handler logged them."""
    lines = JobLog.objects.filter(job=job).order_by("id").values_list("message", flat=True)
    return [int(m.group(1)) for line in lines if (m := re.match(r"^\[(\d+)%\] ", line))]


def run(job: Job) -> Job:
    assert drain(QUEUE) == 1
    job.refresh_from_db()
    return job


def test_start_device_runs_every_step_end_to_end(make_device, recording_provider):
    user = User.objects.create_user("alice")
    device = make_device()
    job = services.start_device(
        device=device, by=user, params={"resolution": "720x1280", "dpi": 320}
    )
    op = job.device_operation
    # The job data of a device operation (deviceId, operation, userId, params), on
    # device-operation at HIGH priority.
    assert job.name == "start-device" and job.queue.name == QUEUE
    assert job.priority == Priority.HIGH == 3
    assert job.payload == {
        "deviceId": device.pk,
        "operation": "start",
        "userId": str(user.pk),
        "params": {"resolution": "720x1280", "dpi": 320},
    }
    assert (op.status, op.progress, op.kind, op.job_id) == ("waiting", 0, "start", job.pk)
    assert Device.objects.get(pk=device.pk).current_operation_id == op.pk

    job = run(job)

    assert job.status == JobStatus.COMPLETED and job.progress == 100
    assert job.result == {
        "deviceId": device.pk,
        "operationId": op.pk,
        "operation": "start",
        "deviceStatus": "running",
    }
    assert progress_logged(job) == [10, 30, 50, 70, 90, 100]
    # Each step reported its progress (operation and job) before the provider worked.
    assert recording_provider.calls == [
        ("check", 10, 10),
        ("allocate_resources", 30, 30),
        ("start_container", 50, 50),
        ("configure", 70, 70),
        ("verify_ready", 90, 90),
    ]
    op.refresh_from_db()
    assert (op.status, op.progress, op.attempts, op.error) == ("completed", 100, 1, "")
    assert op.started_at <= op.finished_at and op.requested_by == user
    device.refresh_from_db()
    assert device.status == DeviceStatus.RUNNING
    assert (device.resolution, device.dpi, device.current_operation) == ("720x1280", 320, None)


@pytest.mark.parametrize(
    ("request_op", "status", "apps", "steps", "final", "final_apps"),
    [
        (
            lambda d: services.stop_device(device=d),
            "running",
            [PKG],
            [("check", 10), ("stop_container", 50), ("release_resources", 90)],
            "stopped",
            [PKG],
        ),
        (
            lambda d: services.restart_device(device=d),
            "running",
            [],
            [("check", 10), ("stop_container", 30), ("start_container", 60), ("verify_ready", 90)],
            "running",
            [],
        ),
        (
            lambda d: services.reset_device(device=d),
            "running",
            [PKG, "com.other"],
            [("check", 10), ("stop_container", 30), ("wipe_data", 60), ("release_resources", 90)],
            "stopped",
            [],
        ),
        (
            lambda d: services.install_app(device=d, package_name=PKG, apk_url=APK),
            "running",
            ["com.other"],
            [
                ("download_apk", 20),
                ("verify_apk", 40),
                ("push_apk", 60),
                ("install_apk", 80),
                ("is_installed", 95),
            ],
            "running",
            ["com.other", PKG],
        ),
        (
            lambda d: services.uninstall_app(device=d, package_name=PKG),
            "running",
            [PKG, "com.other"],
            [("check", 10), ("uninstall_package", 50), ("is_installed", 90)],
            "running",
            ["com.other"],
        ),
    ],
    ids=["stop", "restart", "reset", "install", "uninstall"],
)
def test_each_operation_runs_its_steps_end_to_end(
    make_device, recording_provider, request_op, status, apps, steps, final, final_apps
):
    device = make_device(status, installed_apps=apps)
    job = request_op(device)
    job = run(job)
    assert job.status == JobStatus.COMPLETED, job.error
    assert progress_logged(job) == [pct for _, pct in steps] + [100]
    assert recording_provider.calls == [(method, pct, pct) for method, pct in steps]
    op = DeviceOperation.objects.get(job_id=job.pk)
    assert (op.status, op.progress, op.attempts) == ("completed", 100, 1)
    device.refresh_from_db()
    assert (device.status, device.installed_apps) == (final, final_apps)
    assert device.current_operation is None


def test_install_payload_carries_the_package_and_apk_url(make_device):
    device = make_device("running")
    job = services.install_app(device=device, package_name=PKG, apk_url=APK)
    assert job.name == "install-app" and job.priority == Priority.HIGH
    assert job.payload == {
        "deviceId": device.pk,
        "operation": "install",
        "packageName": PKG,
        "apkUrl": APK,
        "params": {},
    }


# --- guarded transitions: the handler refuses, whatever enqueued the job -----------------


@pytest.mark.parametrize(
    ("name", "status", "extra", "reason", "progress"),
    [
        ("start-device", "running", {}, "device device-001 is already running", 10),
        ("stop-device", "stopped", {}, "device device-001 is already stopped", 10),
        (
            "restart-device",
            "stopped",
            {},
            "device device-001 is stopped; it can be restarted only when error or running",
            10,
        ),
        (
            "install-app",
            "stopped",
            {"packageName": PKG, "apkUrl": APK},
            "device device-001 is stopped; apps can be installed only on a running device",
            0,
        ),
        (
            "uninstall-app",
            "running",
            {"packageName": PKG},
            "com.example.app is not installed on device device-001",
            10,
        ),
    ],
)
def test_refused_transitions_fail_permanently_with_the_reason(
    make_device, recording_provider, name, status, extra, reason, progress
):
    device = make_device(status, installed_apps=["com.other"])
    job = enqueue(name, {"deviceId": device.pk, "userId": "user-123", **extra})
    job = run(job)
    assert job.status == JobStatus.FAILED and job.attempts_made == 1  # no retry
    assert job.error == f"OperationRefused: {reason}"
    op = DeviceOperation.objects.get(job_id=job.pk)
    assert (op.status, op.error, op.progress) == ("failed", reason, progress)
    assert recording_provider.calls == []  # the provider was never asked
    device.refresh_from_db()
    assert device.status == status and device.current_operation is None
    assert device.installed_apps == ["com.other"]


@pytest.mark.parametrize(
    ("name", "payload", "error"),
    [
        ("start-device", {"deviceId": "nope"}, "OperationRefused: no device has id 'nope'"),
        ("stop-device", {}, "PermanentError: deviceId must be a non-empty string, got None"),
        (
            "install-app",
            {"deviceId": "device-001", "packageName": "not a package", "apkUrl": APK},
            "PermanentError: invalid payload: not an Android package name: 'not a package'",
        ),
    ],
)
def test_unknown_device_or_bad_payload_fails_permanently(make_device, name, payload, error):
    make_device("running")
    job = run(enqueue(name, payload))
    assert (job.status, job.error, job.attempts_made) == ("failed", error, 1)
    assert not DeviceOperation.objects.exists()


def test_the_services_refuse_and_write_nothing(make_device):
    running = make_device("running")
    stopped = make_device("stopped")
    cases = [
        (lambda: services.start_device(device=running), "already running"),
        (lambda: services.stop_device(device=stopped), "already stopped"),
        (
            lambda: services.install_app(device=stopped, package_name=PKG, apk_url=APK),
            "apps can be installed only on a running device",
        ),
        (lambda: services.uninstall_app(device=running, package_name=PKG), "is not installed"),
    ]
    for call, reason in cases:
        with pytest.raises(services.DeviceStateError, match=reason):
            call()
    services.start_device(device=stopped)
    with pytest.raises(services.DeviceStateError, match=r"is busy: operation \d+ \(start\)"):
        services.reset_device(device=stopped)
    assert Job.objects.count() == DeviceOperation.objects.count() == 1


# --- provider failures --------------------------------------------------------------------


def make_due(job: Job) -> None:
    """Skip the retry's backoff: due now, promoted as the maintenance loop would."""
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now())
    promote_delayed()


def test_transient_failure_retries_then_fails_with_the_device_in_error(make_device):
    device = make_device()
    job = services.start_device(device=device, params={"fail_at": "container"})
    op = job.device_operation
    job = run(job)
    # Retried per the queue's policy (3 attempts): the operation waits for the retry.
    assert job.status == JobStatus.DELAYED and job.progress == 50
    op.refresh_from_db()
    error = f"start Android container: simulated failure at start_container on {device.pk}"
    assert (op.status, op.error, op.progress) == ("retrying", error, 50)
    device.refresh_from_db()
    assert device.status == DeviceStatus.ERROR and device.current_operation_id == op.pk
    for _ in range(2):
        make_due(job)
        job = run(job)
    assert job.status == JobStatus.FAILED and "attempts exhausted: 3 of 3" in job.error
    op.refresh_from_db()
    assert (op.status, op.error, op.attempts) == ("failed", error, 3)
    assert op.finished_at is not None
    device.refresh_from_db()
    assert device.status == DeviceStatus.ERROR and device.current_operation is None
    assert progress_logged(job) == [10, 30, 50] * 3


def test_permanent_failure_fails_at_once(make_device):
    device = make_device()
    job = services.start_device(device=device, params={"fail_at": "verify", "fail_permanent": True})
    job = run(job)
    assert (job.status, job.attempts_made) == ("failed", 1)
    assert job.error == (
        "PermanentError: verify device ready (ADB, boot, network): "
        f"simulated failure at verify_ready on {device.pk}"
    )
    op = DeviceOperation.objects.get(job_id=job.pk)
    assert op.status == OperationStatus.FAILED and op.progress == 90
    device.refresh_from_db()
    assert device.status == DeviceStatus.ERROR and device.current_operation is None


def test_a_failed_install_leaves_the_device_running(make_device):
    device = make_device("running")
    job = services.install_app(
        device=device,
        package_name=PKG,
        apk_url=APK,
        params={"fail_at": "push", "fail_permanent": True},
    )
    job = run(job)
    assert job.status == JobStatus.FAILED and progress_logged(job) == [20, 40, 60]
    assert DeviceOperation.objects.get(job_id=job.pk).status == "failed"
    device.refresh_from_db()
    assert (device.status, device.installed_apps) == ("running", [])


def test_a_retry_recovers_a_device_in_error(make_device, settings):
    device = make_device()
    settings.DEVICE_PROVIDER = {**settings.DEVICE_PROVIDER, "FAIL_AT": "allocate"}
    job = run(services.start_device(device=device))
    assert job.status == JobStatus.DELAYED
    assert Device.objects.get(pk=device.pk).status == DeviceStatus.ERROR
    settings.DEVICE_PROVIDER = {**settings.DEVICE_PROVIDER, "FAIL_AT": ""}
    make_due(job)
    job = run(job)
    assert job.status == JobStatus.COMPLETED and job.attempts_made == 2
    op = DeviceOperation.objects.get(job_id=job.pk)
    assert (op.status, op.attempts, op.error) == ("completed", 2, "")
    assert Device.objects.get(pk=device.pk).status == DeviceStatus.RUNNING
