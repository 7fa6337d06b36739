"""Operations whose job is cancelled, stalls or ends behind the handler's back."""

import pytest
from django.utils import timezone

from devices import services
from devices.models import Device, DeviceOperation, DeviceStatus
from queues import cancel_job
from queues.engine.recovery import recover_stalled
from queues.engine.runner import drain
from queues.models import Job, JobLog, JobStatus

pytestmark = pytest.mark.django_db


def test_cancelling_a_waiting_job_releases_the_device(
    make_device, django_capture_on_commit_callbacks
):
    device = make_device()
    job = services.start_device(device=device)
    with django_capture_on_commit_callbacks(execute=True):
        cancel_job(job.pk)
    op = DeviceOperation.objects.get(job_id=job.pk)
    assert (op.status, op.error) == ("cancelled", "its job was cancelled")
    device.refresh_from_db()
    assert device.status == DeviceStatus.STOPPED and device.current_operation is None
    assert drain("device-operation") == 0
    services.start_device(device=device)  # accepted again


def test_cancelling_a_running_job_stops_before_the_next_step(make_device, recording_provider):
    device = make_device()
    job = services.start_device(device=device)
    recording_provider.hooks.append(
        lambda method: cancel_job(job.pk) if method == "allocate_resources" else None
    )
    assert drain("device-operation") == 1
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert [c[0] for c in recording_provider.calls] == ["check", "allocate_resources"]
    op = DeviceOperation.objects.get(job_id=job.pk)
    assert (op.status, op.progress) == ("cancelled", 30)
    assert op.error == "cancelled before start Android container"
    assert JobLog.objects.filter(job=job).last().message == op.error
    device.refresh_from_db()
    # Half started: nobody knows what state it is in.
    assert device.status == DeviceStatus.ERROR and device.current_operation is None


def test_a_job_that_ended_unseen_is_released_on_the_next_request(make_device):
    device = make_device()
    first = services.start_device(device=device)
    Job.objects.filter(pk=first.pk).update(status=JobStatus.FAILED)  # no signal, no handler
    second = services.start_device(device=device)
    old = DeviceOperation.objects.get(job_id=first.pk)
    assert (old.status, old.error) == ("failed", f"its job {first.pk} ended (failed)")
    device.refresh_from_db()
    assert device.current_operation_id == second.device_operation.pk


def test_a_stalled_operation_waits_for_its_retry_with_the_device_in_error(
    make_device, django_capture_on_commit_callbacks
):
    device = make_device()
    job = services.start_device(device=device)
    # A worker claimed the job, got through the check step and died.
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.ACTIVE,
        attempts_made=1,
        started_at=timezone.now(),
        locked_until=timezone.now() - timezone.timedelta(seconds=1),
        worker="gone:1",
    )
    op = services.begin_operation(
        job_id=job.pk, attempt=1, kind="start", device_id=device.pk, params={}
    )
    services.enter_operation(operation=op)
    assert Device.objects.get(pk=device.pk).status == DeviceStatus.STARTING
    with django_capture_on_commit_callbacks(execute=True):
        recover_stalled()
    job.refresh_from_db()
    assert job.status == JobStatus.WAITING
    op.refresh_from_db()
    assert op.status == "retrying" and "lock expired" in op.error
    assert Device.objects.get(pk=device.pk).status == DeviceStatus.ERROR
    # The retry runs from error and completes.
    assert drain("device-operation") == 1
    op.refresh_from_db()
    assert (op.status, op.attempts) == ("completed", 2)
    assert Device.objects.get(pk=device.pk).status == DeviceStatus.RUNNING
