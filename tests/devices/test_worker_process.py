"""start-device through a real ``runworker`` process (django-q2 cluster, Redis doorbell)."""

import re

import pytest

from devices import services
from devices.models import Device, DeviceOperation
from queues.models import Job, JobLog, JobStatus, Worker
from tests.helpers import wait_for

pytestmark = pytest.mark.subprocess

START_PROGRESS = [10, 30, 50, 70, 90, 100]


@pytest.mark.django_db(transaction=True)
def test_start_device_completes_on_a_real_worker(processes, make_device):
    worker = processes.start(
        "runworker", "--queues", "device-operation", "--workers", "1", DEVICE_STEP_SECONDS="0.2"
    )
    wait_for(Worker.objects.exists, timeout=30, message="the worker to register")
    device = make_device()
    job = services.start_device(device=device, params={"resolution": "720x1280", "dpi": 320})

    # Poll as a client does: progress only moves forward through the steps.
    seen: list[int] = []

    def finished() -> bool:
        current = Job.objects.values_list("progress", "status").get(pk=job.pk)
        if not seen or seen[-1] != current[0]:
            seen.append(current[0])
        return current[1] in (JobStatus.COMPLETED, JobStatus.FAILED)

    wait_for(finished, timeout=30, interval=0.02, message="start-device to finish")
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, processes.output(worker)
    assert seen == sorted(seen) and set(seen) <= {0, *START_PROGRESS}
    assert len(seen) >= 4  # intermediate steps were visible while the worker ran
    lines = JobLog.objects.filter(job=job).order_by("id").values_list("message", flat=True)
    assert [int(m[1]) for line in lines if (m := re.match(r"^\[(\d+)%\] ", line))] == (
        START_PROGRESS
    )
    op = DeviceOperation.objects.get(job_id=job.pk)
    assert (op.status, op.progress, op.attempts) == ("completed", 100, 1)
    device = Device.objects.get(pk=device.pk)
    assert (device.status, device.resolution, device.dpi) == ("running", "720x1280", 320)
    assert device.current_operation is None
    assert processes.stop(worker) == 0, processes.output(worker)
