"""Every state change of devices and their operations.

Request side (API, admin): ``start_device`` … ``uninstall_app`` validate, then write the
``DeviceOperation`` and enqueue its job in one transaction. Worker side (the handlers in
``devices.jobs``): ``begin_operation``, ``enter_operation``, ``report_progress``,
``complete_operation``, ``fail_operation``, ``cancel_operation``.

A device runs one operation at a time: ``Device.current_operation`` points at it until it
completes, fails for good or is cancelled.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from devices.models import (
    ALLOWED_FROM,
    FINAL_STATE,
    TRANSITIONAL,
    UNFINISHED_OPERATION_STATUSES,
    Device,
    DeviceOperation,
    DeviceStatus,
    OperationKind,
    OperationStatus,
    clean_apk_url,
    clean_package_name,
    clean_params,
    refusal,
)
from queues import Priority, audit, enqueue
from queues.exceptions import InvalidJobState, PermanentError
from queues.models import FINAL_STATUSES, Job, JobStatus

QUEUE = "device-operation"
HANDLERS = {
    OperationKind.START: "start-device",
    OperationKind.STOP: "stop-device",
    OperationKind.RESTART: "restart-device",
    OperationKind.RESET: "reset-device",
    OperationKind.INSTALL: "install-app",
    OperationKind.UNINSTALL: "uninstall-app",
}


class DeviceStateError(InvalidJobState):
    """The device's state does not allow the operation (the API answers 409 with it)."""


class OperationRefused(PermanentError):
    """A handler found the operation impossible: the job fails without retry."""


# --- request side ----------------------------------------------------------------------


def create_device(
    *,
    name: str,
    id: str | None = None,  # noqa: A002  (the model's field name)
    owner: AbstractBaseUser | None = None,
    status: str = DeviceStatus.STOPPED,
    resolution: str | None = None,
    dpi: int | None = None,
    installed_apps: list[str] | None = None,
) -> Device:
    """A new device (stopped unless told otherwise), validated."""
    clean_params({"resolution": resolution, "dpi": dpi})
    device = Device(name=name, owner=owner, status=status, installed_apps=installed_apps or [])
    if id is not None:
        device.id = id
    if resolution is not None:
        device.resolution = resolution
    if dpi is not None:
        device.dpi = dpi
    device.full_clean()
    device.save(force_insert=True)
    return device


def _release_stale(device: Device) -> None:
    """Clear a current operation whose job ended without finishing it (cancelled while
    waiting, failed after stalls, deleted). A device caught mid-transition goes to error."""
    op = device.current_operation
    if op is None:
        return
    job_status = Job.objects.filter(pk=op.job_id).values_list("status", flat=True).first()
    if op.status in UNFINISHED_OPERATION_STATUSES and job_status not in FINAL_STATUSES | {None}:
        return
    if op.status in UNFINISHED_OPERATION_STATUSES:
        cancelled = job_status == JobStatus.CANCELLED
        op.status = OperationStatus.CANCELLED if cancelled else OperationStatus.FAILED
        op.error = op.error or f"its job {op.job_id} ended ({job_status or 'deleted'})"
        op.finished_at = timezone.now()
        op.save(update_fields=["status", "error", "finished_at"])
    if device.status in TRANSITIONAL.values():
        device.status = DeviceStatus.ERROR
    device.current_operation = None
    device.save(update_fields=["status", "current_operation", "updated_at"])


def _request(
    *, device: Device, kind: str, by: AbstractBaseUser | None, params: dict, **extra: str
) -> Job:
    def lock() -> Device:
        return (
            Device.objects.select_for_update(of=("self",))
            .select_related("current_operation")
            .get(pk=device.pk)
        )

    with transaction.atomic():
        # Committed on its own: a stale operation stays released even if this request
        # is then refused.
        _release_stale(lock())
    with transaction.atomic():
        locked = lock()
        if locked.current_operation_id is not None:
            op = locked.current_operation
            message = gettext(
                "device %(id)s is busy: operation %(operation)s (%(kind)s) is %(status)s"
            ) % {"id": locked.pk, "operation": op.pk, "kind": op.kind, "status": op.status}
            raise DeviceStateError(message, state=locked.status)
        reason = refusal(locked, kind, package_name=extra.get("packageName", ""))
        if reason:
            raise DeviceStateError(reason, state=locked.status)
        payload: dict[str, Any] = {"deviceId": locked.pk, "operation": kind}
        if by is not None and by.is_authenticated:
            payload["userId"] = str(by.pk)
        payload.update(extra)
        payload["params"] = params
        job = enqueue(HANDLERS[kind], payload, queue=QUEUE, priority=Priority.HIGH)
        op = DeviceOperation.objects.create(
            device=locked,
            kind=kind,
            job_id=job.pk,
            params=params,
            requested_by=by if by is not None and by.is_authenticated else None,
        )
        locked.current_operation = op
        locked.save(update_fields=["current_operation", "updated_at"])
        audit.record(by=by, action=f"device_{kind}", target=locked.pk, count=1, job=str(job.pk))
    device.current_operation = op
    job.device_operation = op
    return job


def start_device(
    *, device: Device, by: AbstractBaseUser | None = None, params: dict | None = None
) -> Job:
    """Queue start-device. Returns the job; ``job.device_operation`` is the
    DeviceOperation written with it. Raises ``ValidationError`` (bad params) or
    ``DeviceStateError`` (running, busy, ...) and writes nothing then."""
    return _request(device=device, kind=OperationKind.START, by=by, params=clean_params(params))


def stop_device(
    *, device: Device, by: AbstractBaseUser | None = None, params: dict | None = None
) -> Job:
    """Queue stop-device (see ``start_device``)."""
    return _request(device=device, kind=OperationKind.STOP, by=by, params=clean_params(params))


def restart_device(
    *, device: Device, by: AbstractBaseUser | None = None, params: dict | None = None
) -> Job:
    """Queue restart-device (see ``start_device``)."""
    return _request(device=device, kind=OperationKind.RESTART, by=by, params=clean_params(params))


def reset_device(
    *, device: Device, by: AbstractBaseUser | None = None, params: dict | None = None
) -> Job:
    """Queue reset-device: back to factory state (data and apps wiped), ending stopped."""
    return _request(device=device, kind=OperationKind.RESET, by=by, params=clean_params(params))


def install_app(
    *,
    device: Device,
    package_name: str,
    apk_url: str,
    by: AbstractBaseUser | None = None,
    params: dict | None = None,
) -> Job:
    """Queue install-app (``packageName``, ``apkUrl``) on a running device."""
    package_name, apk_url = clean_package_name(package_name), clean_apk_url(apk_url)
    return _request(
        device=device,
        kind=OperationKind.INSTALL,
        by=by,
        params=clean_params(params),
        packageName=package_name,
        apkUrl=apk_url,
    )


def uninstall_app(
    *,
    device: Device,
    package_name: str,
    by: AbstractBaseUser | None = None,
    params: dict | None = None,
) -> Job:
    """Queue uninstall-app for a package installed on a running device."""
    return _request(
        device=device,
        kind=OperationKind.UNINSTALL,
        by=by,
        params=clean_params(params),
        packageName=clean_package_name(package_name),
    )


# --- worker side -----------------------------------------------------------------------


def begin_operation(
    *, job_id: UUID, attempt: int, kind: str, device_id: str, params: dict
) -> DeviceOperation:
    """The operation of job ``job_id``, marked running for this attempt. A job enqueued
    directly (not through the services above) gets its row here."""
    now = timezone.now()
    with transaction.atomic():
        device = (
            Device.objects.select_for_update(of=("self",))
            .select_related("current_operation")
            .filter(pk=device_id)
            .first()
        )
        if device is None:
            raise OperationRefused(f"no device has id {device_id!r}")
        op, _ = DeviceOperation.objects.get_or_create(
            job_id=job_id, defaults={"device": device, "kind": kind, "params": params}
        )
        if op.device_id != device.pk or op.kind != kind:
            raise OperationRefused(f"job {job_id} belongs to operation {op.pk} ({op})")
        if device.current_operation_id not in (None, op.pk):
            _release_stale(device)
            if device.current_operation_id is not None:
                other = device.current_operation
                raise OperationRefused(
                    f"device {device.pk} is busy: operation {other.pk} ({other.kind}) "
                    f"is {other.status}"
                )
        op.device = device
        op.status = OperationStatus.RUNNING
        op.attempts = attempt
        op.error = ""
        op.finished_at = None
        op.started_at = op.started_at or now
        op.save(update_fields=["status", "attempts", "error", "finished_at", "started_at"])
        if device.current_operation_id != op.pk:
            device.current_operation = op
            device.save(update_fields=["current_operation", "updated_at"])
    return op


def enter_operation(*, operation: DeviceOperation, package_name: str = "") -> Device:
    """Check the device may undergo ``operation`` and move it to its transitional state
    (start → starting, ...) in one compare-and-swap. Raises ``OperationRefused``."""
    kind = OperationKind(operation.kind)
    devices = Device.objects.filter(pk=operation.device_id)
    if kind in TRANSITIONAL:
        mine = devices.filter(current_operation=operation)
        moved = mine.filter(status__in=ALLOWED_FROM[kind]).update(
            status=TRANSITIONAL[kind], updated_at=timezone.now()
        )
        device = devices.get()
        if not moved:
            raise OperationRefused(refusal(device, kind) or _not_current(device, operation))
        return device
    device = devices.get()
    reason = refusal(device, kind, package_name=package_name)
    if device.current_operation_id != operation.pk:
        reason = _not_current(device, operation)
    if reason:
        raise OperationRefused(reason)
    return device


def _not_current(device: Device, operation: DeviceOperation) -> str:
    return f"operation {operation.pk} is no longer device {device.pk}'s current operation"


def report_progress(*, operation: DeviceOperation, progress: int) -> None:
    DeviceOperation.objects.filter(pk=operation.pk).update(progress=progress)
    operation.progress = progress


def complete_operation(
    *, operation: DeviceOperation, package_name: str = "", params: dict | None = None
) -> Device:
    """The operation succeeded: the device takes its final state (and configuration or
    app list), the operation is completed at 100 %."""
    kind = OperationKind(operation.kind)
    params = params or {}
    with transaction.atomic():
        device = Device.objects.select_for_update().get(pk=operation.device_id)
        if device.current_operation_id != operation.pk:
            # Released meanwhile (its job was cancelled): the device is someone else's now.
            raise OperationRefused(_not_current(device, operation))
        fields = ["current_operation", "updated_at"]
        if kind in FINAL_STATE:
            device.status = FINAL_STATE[kind]
            fields.append("status")
        if kind == OperationKind.START:
            device.resolution = params.get("resolution", device.resolution)
            device.dpi = params.get("dpi", device.dpi)
            fields += ["resolution", "dpi"]
        apps = list(device.installed_apps)
        if kind == OperationKind.INSTALL and package_name not in apps:
            apps.append(package_name)
        elif kind == OperationKind.UNINSTALL:
            apps = [a for a in apps if a != package_name]
        elif kind == OperationKind.RESET:
            apps = []
        if apps != device.installed_apps:
            device.installed_apps = apps
            fields.append("installed_apps")
        device.current_operation = None
        device.save(update_fields=fields)
        _finish(operation, OperationStatus.COMPLETED, progress=100)
    return device


def fail_operation(*, operation: DeviceOperation, error: str, retrying: bool = False) -> None:
    """A step failed. A device caught mid-transition goes to ``error``; the operation is
    ``retrying`` (the job will try again) or ``failed`` (it will not)."""
    with transaction.atomic():
        if retrying:
            DeviceOperation.objects.filter(pk=operation.pk).update(
                status=OperationStatus.RETRYING, error=error
            )
            operation.status, operation.error = OperationStatus.RETRYING, error
        else:
            _finish(operation, OperationStatus.FAILED, error=error)
        _leave_transition(operation, release=not retrying)


def cancel_operation(*, operation: DeviceOperation, reason: str) -> None:
    """The job was cancelled between steps: whatever the device reached is unknown."""
    with transaction.atomic():
        _finish(operation, OperationStatus.CANCELLED, error=reason)
        _leave_transition(operation, release=True)


def _finish(operation: DeviceOperation, status: str, *, error: str = "", **extra: Any) -> None:
    values = {"status": status, "error": error, "finished_at": timezone.now(), **extra}
    DeviceOperation.objects.filter(pk=operation.pk).update(**values)
    for field, value in values.items():
        setattr(operation, field, value)


def _leave_transition(operation: DeviceOperation, *, release: bool) -> None:
    kind = OperationKind(operation.kind)
    devices = Device.objects.filter(pk=operation.device_id, current_operation=operation)
    if kind in TRANSITIONAL:
        devices.filter(status=TRANSITIONAL[kind]).update(
            status=DeviceStatus.ERROR, updated_at=timezone.now()
        )
    if release:
        devices.update(current_operation=None, updated_at=timezone.now())


def sync_with_job(*, job_id: UUID, error: str = "") -> DeviceOperation | None:
    """Bring an operation in line with a job that ended or stalled without its handler
    saying so (cancelled while waiting, worker died): called from the queues signals. A
    running handler is left to notice its own cancellation."""
    job = Job.objects.filter(pk=job_id).values("status", "error").first()
    with transaction.atomic():
        op = (
            DeviceOperation.objects.select_for_update()
            .filter(job_id=job_id, status__in=UNFINISHED_OPERATION_STATUSES)
            .first()
        )
        if op is None or job is None:
            return None
        status = job["status"]
        error = error or job["error"] or f"its job ended ({status})"
        if status == JobStatus.CANCELLED and op.status != OperationStatus.RUNNING:
            cancel_operation(operation=op, reason="its job was cancelled")
        elif status == JobStatus.FAILED:
            fail_operation(operation=op, error=error)
        elif (
            status in (JobStatus.WAITING, JobStatus.DELAYED)
            and op.status == OperationStatus.RUNNING
        ):
            # The worker died mid-step (stalled): the job runs again, from a device in error.
            fail_operation(operation=op, error=error, retrying=True)
        else:
            return None
    return op
