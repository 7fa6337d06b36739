"""Reads of devices and their operations."""

from __future__ import annotations

from uuid import UUID

from django.db.models import OuterRef, QuerySet, Subquery

from devices.models import Device, DeviceOperation
from queues.models import Job


def devices_with_operation(*, status: str | None = None) -> QuerySet[Device]:
    """Devices with their current operation and, from its job, the fields a client polls
    (state, attempts made): one query for any number of devices."""
    job = Job.objects.filter(pk=OuterRef("current_operation__job_id"))
    devices = Device.objects.select_related("current_operation", "owner").annotate(
        current_job_state=Subquery(job.values("status")[:1]),
        current_job_attempts=Subquery(job.values("attempts_made")[:1]),
    )
    if status:
        devices = devices.filter(status=status)
    return devices.order_by("id")


def recent_operations(device: Device, *, limit: int = 10) -> list[DeviceOperation]:
    """The device's latest operations, newest first."""
    return list(device.operations.order_by("-id")[:limit])


def attempts_left(job_id: UUID) -> int:
    """Attempts the job still has after the one running now (0: this one is its last)."""
    row = (
        Job.objects.filter(pk=job_id)
        .values_list("max_attempts", "attempts_made", "attempts_base")
        .first()
    )
    if row is None:
        return 0
    max_attempts, made, base = row
    return max(max_attempts - (made - base), 0)
