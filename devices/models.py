"""Devices (cloud Android instances) and the history of operations run on them.

A device changes state only through an operation: a ``DeviceOperation`` row written when
the operation is requested, run by a job on the ``device-operation`` queue (devices/jobs.py)
that reports its step progress here and on the job.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import (
    MaxValueValidator,
    MinValueValidator,
    URLValidator,
    validate_slug,
)
from django.db import models
from django.db.models import Q

DEFAULT_RESOLUTION = "1080x1920"
DEFAULT_DPI = 480
MIN_DPI = 72
MAX_DPI = 1200


def new_device_id() -> str:
    return f"device-{uuid.uuid4().hex[:12]}"


class DeviceStatus(models.TextChoices):
    STOPPED = "stopped", "Stopped"
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    RESTARTING = "restarting", "Restarting"
    RESETTING = "resetting", "Resetting"
    ERROR = "error", "Error"


class OperationKind(models.TextChoices):
    START = "start", "Start"
    STOP = "stop", "Stop"
    RESTART = "restart", "Restart"
    RESET = "reset", "Reset"
    INSTALL = "install", "Install app"
    UNINSTALL = "uninstall", "Uninstall app"


class OperationStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"
    RUNNING = "running", "Running"
    # A step failed and the job will try again after its backoff.
    RETRYING = "retrying", "Retrying"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


UNFINISHED_OPERATION_STATUSES = frozenset(
    {OperationStatus.WAITING, OperationStatus.RUNNING, OperationStatus.RETRYING}
)


# --- transition rules and input checks, shared by the services and the handlers --------

S = DeviceStatus
# The states each operation may start from, the state it holds meanwhile and where it ends.
ALLOWED_FROM = {
    OperationKind.START: {S.STOPPED, S.ERROR},
    OperationKind.STOP: {S.RUNNING, S.ERROR},
    OperationKind.RESTART: {S.RUNNING, S.ERROR},
    OperationKind.RESET: {S.STOPPED, S.RUNNING, S.ERROR},
    OperationKind.INSTALL: {S.RUNNING},
    OperationKind.UNINSTALL: {S.RUNNING},
}
TRANSITIONAL = {
    OperationKind.START: S.STARTING,
    OperationKind.STOP: S.STOPPING,
    OperationKind.RESTART: S.RESTARTING,
    OperationKind.RESET: S.RESETTING,
}
FINAL_STATE = {
    OperationKind.START: S.RUNNING,
    OperationKind.STOP: S.STOPPED,
    OperationKind.RESTART: S.RUNNING,
    OperationKind.RESET: S.STOPPED,
}
VERBS = {
    OperationKind.START: "started",
    OperationKind.STOP: "stopped",
    OperationKind.RESTART: "restarted",
    OperationKind.RESET: "reset",
}
PACKAGE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$")
RESOLUTION = re.compile(r"^[1-9][0-9]{2,4}x[1-9][0-9]{2,4}$")
_apk_url = URLValidator(schemes=["http", "https"])


def refusal(device: Device, kind: str, *, package_name: str = "") -> str | None:
    """Why ``kind`` cannot run on ``device`` now, or None if it can."""
    kind = OperationKind(kind)
    if device.status in ALLOWED_FROM[kind]:
        if kind == OperationKind.UNINSTALL and package_name not in device.installed_apps:
            return f"{package_name} is not installed on device {device.pk}"
        return None
    if kind in (OperationKind.INSTALL, OperationKind.UNINSTALL):
        action = "installed" if kind == OperationKind.INSTALL else "uninstalled"
        return (
            f"device {device.pk} is {device.status}; apps can be {action} only on a running device"
        )
    if device.status == FINAL_STATE[kind] and kind in (OperationKind.START, OperationKind.STOP):
        return f"device {device.pk} is already {device.status}"
    allowed = " or ".join(sorted(ALLOWED_FROM[kind]))
    return f"device {device.pk} is {device.status}; it can be {VERBS[kind]} only when {allowed}"


def clean_params(params: Any) -> dict:
    """Start params: ``resolution`` ("1080x1920") and ``dpi``; other keys pass
    through to the provider."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ValidationError({"params": ["params must be a JSON object"]})
    resolution = params.get("resolution")
    if resolution is not None and not (
        isinstance(resolution, str) and RESOLUTION.match(resolution)
    ):
        raise ValidationError({"resolution": [f"expected WIDTHxHEIGHT, got {resolution!r}"]})
    dpi = params.get("dpi")
    if dpi is not None and (
        isinstance(dpi, bool) or not isinstance(dpi, int) or not MIN_DPI <= dpi <= MAX_DPI
    ):
        raise ValidationError({"dpi": [f"dpi must be an integer from {MIN_DPI} to {MAX_DPI}"]})
    return dict(params)


def clean_package_name(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 255 or not PACKAGE_NAME.match(value):
        raise ValidationError({"packageName": [f"not an Android package name: {value!r}"]})
    return value


def clean_apk_url(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError({"apkUrl": ["apkUrl must be an http(s) URL"]})
    try:
        _apk_url(value)
    except ValidationError:
        raise ValidationError({"apkUrl": [f"not an http(s) URL: {value!r}"]}) from None
    return value


class Device(models.Model):
    """A cloud Android device. ``status`` is written only by operations."""

    id = models.CharField(
        primary_key=True,
        max_length=64,
        default=new_device_id,
        validators=[validate_slug],
        help_text="The deviceId of the job payloads, e.g. device-001.",
    )
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=16,
        choices=DeviceStatus.choices,
        default=DeviceStatus.STOPPED,
        db_default=DeviceStatus.STOPPED,
    )
    resolution = models.CharField(max_length=20, default=DEFAULT_RESOLUTION)
    dpi = models.PositiveSmallIntegerField(
        default=DEFAULT_DPI, validators=[MinValueValidator(MIN_DPI), MaxValueValidator(MAX_DPI)]
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="devices",
    )
    installed_apps = models.JSONField(default=list, blank=True, help_text="Package names.")
    current_operation = models.ForeignKey(
        "DeviceOperation",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The unfinished operation, if any; at most one at a time.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in DeviceStatus]),
                name="device_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(dpi__gte=MIN_DPI) & Q(dpi__lte=MAX_DPI), name="device_dpi_range"
            ),
        ]
        indexes = [
            # The API's and the admin's status filter.
            models.Index(fields=["status", "id"], name="device_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class DeviceOperation(models.Model):
    """One requested operation on a device and its outcome; one row per job."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="operations")
    kind = models.CharField(max_length=16, choices=OperationKind.choices)
    job_id = models.UUIDField(help_text="The queues Job that runs this operation.")
    status = models.CharField(
        max_length=16,
        choices=OperationStatus.choices,
        default=OperationStatus.WAITING,
        db_default=OperationStatus.WAITING,
    )
    progress = models.PositiveSmallIntegerField(default=0, db_default=0)
    params = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Attempts of the job that ran this operation."
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # The handler finds its operation by job id (and a retried job reuses it).
            models.UniqueConstraint(fields=["job_id"], name="device_operation_job_unique"),
            models.CheckConstraint(
                condition=Q(kind__in=[k.value for k in OperationKind]),
                name="device_operation_kind_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in OperationStatus]),
                name="device_operation_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=100),
                name="device_operation_progress_range",
            ),
        ]
        indexes = [
            # A device's history, newest first (admin inline, API detail).
            models.Index(fields=["device", "-id"], name="device_operation_history_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.device_id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED_OPERATION_STATUSES
