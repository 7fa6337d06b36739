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
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

DEFAULT_RESOLUTION = "1080x1920"
DEFAULT_DPI = 480
MIN_DPI = 72
MAX_DPI = 1200


def new_device_id() -> str:
    return f"device-{uuid.uuid4().hex[:12]}"


class DeviceStatus(models.TextChoices):
    STOPPED = "stopped", _("Stopped")
    STARTING = "starting", _("Starting")
    RUNNING = "running", _("Running")
    STOPPING = "stopping", _("Stopping")
    RESTARTING = "restarting", _("Restarting")
    RESETTING = "resetting", _("Resetting")
    ERROR = "error", _("Error")


class OperationKind(models.TextChoices):
    START = "start", _("Start")
    STOP = "stop", _("Stop")
    RESTART = "restart", _("Restart")
    RESET = "reset", _("Reset")
    INSTALL = "install", _("Install app")
    UNINSTALL = "uninstall", _("Uninstall app")


class OperationStatus(models.TextChoices):
    WAITING = "waiting", _("Waiting")
    RUNNING = "running", _("Running")
    # A step failed and the job will try again after its backoff.
    RETRYING = "retrying", _("Retrying")
    COMPLETED = "completed", _("Completed")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


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
# The refusal of an operation from a state it cannot start from (see ``refusal``).
REFUSALS = {
    OperationKind.START: _("device %(id)s is %(status)s; it can be started only when %(allowed)s"),
    OperationKind.STOP: _("device %(id)s is %(status)s; it can be stopped only when %(allowed)s"),
    OperationKind.RESTART: _(
        "device %(id)s is %(status)s; it can be restarted only when %(allowed)s"
    ),
    OperationKind.RESET: _("device %(id)s is %(status)s; it can be reset only when %(allowed)s"),
}
PACKAGE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$")
RESOLUTION = re.compile(r"^[1-9][0-9]{2,4}x[1-9][0-9]{2,4}$")
_apk_url = URLValidator(schemes=["http", "https"])


def refusal(device: Device, kind: str, *, package_name: str = "") -> str | None:
    """Why ``kind`` cannot run on ``device`` now, or None if it can (in the active
    language: the API and the admin show it; a worker writes it in the default one)."""
    kind = OperationKind(kind)
    values = {"id": device.pk, "status": device.status}
    if device.status in ALLOWED_FROM[kind]:
        if kind == OperationKind.UNINSTALL and package_name not in device.installed_apps:
            return gettext("%(package)s is not installed on device %(id)s") % {
                "package": package_name,
                "id": device.pk,
            }
        return None
    if kind == OperationKind.INSTALL:
        return (
            gettext("device %(id)s is %(status)s; apps can be installed only on a running device")
            % values
        )
    if kind == OperationKind.UNINSTALL:
        return (
            gettext("device %(id)s is %(status)s; apps can be uninstalled only on a running device")
            % values
        )
    if device.status == FINAL_STATE[kind] and kind in (OperationKind.START, OperationKind.STOP):
        return gettext("device %(id)s is already %(status)s") % values
    allowed = gettext(" or ").join(sorted(ALLOWED_FROM[kind]))
    return str(REFUSALS[kind]) % {**values, "allowed": allowed}


def clean_params(params: Any) -> dict:
    """Start params: ``resolution`` ("1080x1920") and ``dpi``; other keys pass
    through to the provider."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ValidationError({"params": [gettext("params must be a JSON object")]})
    resolution = params.get("resolution")
    if resolution is not None and not (
        isinstance(resolution, str) and RESOLUTION.match(resolution)
    ):
        message = gettext("expected WIDTHxHEIGHT, got %(value)r") % {"value": resolution}
        raise ValidationError({"resolution": [message]})
    dpi = params.get("dpi")
    if dpi is not None and (
        isinstance(dpi, bool) or not isinstance(dpi, int) or not MIN_DPI <= dpi <= MAX_DPI
    ):
        message = gettext("dpi must be an integer from %(min)s to %(max)s") % {
            "min": MIN_DPI,
            "max": MAX_DPI,
        }
        raise ValidationError({"dpi": [message]})
    return dict(params)


def clean_package_name(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 255 or not PACKAGE_NAME.match(value):
        message = gettext("not an Android package name: %(value)r") % {"value": value}
        raise ValidationError({"packageName": [message]})
    return value


def clean_apk_url(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError({"apkUrl": [gettext("apkUrl must be an http(s) URL")]})
    try:
        _apk_url(value)
    except ValidationError:
        message = gettext("not an http(s) URL: %(value)r") % {"value": value}
        raise ValidationError({"apkUrl": [message]}) from None
    return value


class Device(models.Model):
    """A cloud Android device. ``status`` is written only by operations."""

    id = models.CharField(
        primary_key=True,
        max_length=64,
        default=new_device_id,
        validators=[validate_slug],
        verbose_name=_("ID"),
        help_text=_("The deviceId of the job payloads, e.g. device-001."),
    )
    name = models.CharField(_("name"), max_length=200)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=DeviceStatus.choices,
        default=DeviceStatus.STOPPED,
        db_default=DeviceStatus.STOPPED,
    )
    resolution = models.CharField(_("resolution"), max_length=20, default=DEFAULT_RESOLUTION)
    dpi = models.PositiveSmallIntegerField(
        _("DPI"),
        default=DEFAULT_DPI,
        validators=[MinValueValidator(MIN_DPI), MaxValueValidator(MAX_DPI)],
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="devices",
        verbose_name=_("owner"),
    )
    installed_apps = models.JSONField(
        _("installed apps"), default=list, blank=True, help_text=_("Package names.")
    )
    current_operation = models.ForeignKey(
        "DeviceOperation",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("current operation"),
        help_text=_("The unfinished operation, if any; at most one at a time."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("device")
        verbose_name_plural = _("devices")
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

    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="operations", verbose_name=_("device")
    )
    kind = models.CharField(_("operation"), max_length=16, choices=OperationKind.choices)
    job_id = models.UUIDField(_("job ID"), help_text=_("The queues Job that runs this operation."))
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=OperationStatus.choices,
        default=OperationStatus.WAITING,
        db_default=OperationStatus.WAITING,
    )
    progress = models.PositiveSmallIntegerField(_("progress"), default=0, db_default=0)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True, default="")
    attempts = models.PositiveIntegerField(
        _("attempts"),
        default=0,
        db_default=0,
        help_text=_("Attempts of the job that ran this operation."),
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("requested by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("device operation")
        verbose_name_plural = _("device operations")
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
