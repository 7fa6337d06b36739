"""Devices (cloud Android instances) and the history of operations run on them.

A device changes state only through an operation: a ``DeviceOperation`` row written when
the operation is requested, run by a job on the ``device-operation`` queue (seed 001's
DeviceOperationProcessor) that reports its step progress here and on the job.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, validate_slug
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
