"""Devices in the admin: status, the current operation with its progress, the operation
history, and start/stop/restart through the same services as the API."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from devices import services
from devices.models import (
    ALLOWED_FROM,
    Device,
    DeviceOperation,
    DeviceStatus,
    OperationKind,
    OperationStatus,
)
from queues.admin.common import ReadOnlyMixin, progress_bar, status_badge


def _job_link(op: DeviceOperation):
    url = reverse("admin:queues_job_change", args=[op.job_id])
    return format_html('<a href="{}">{}</a>', url, str(op.job_id)[:13])


def _queued_message(kind: OperationKind, count: int) -> str:
    """What a start/stop/restart action queued (the service wrote the audit rows)."""
    if kind == OperationKind.START:
        text = ngettext(
            "Device start: %(count)d device(s) queued.",
            "Device start: %(count)d device(s) queued.",
            count,
        )
    elif kind == OperationKind.STOP:
        text = ngettext(
            "Device stop: %(count)d device(s) queued.",
            "Device stop: %(count)d device(s) queued.",
            count,
        )
    else:
        text = ngettext(
            "Device restart: %(count)d device(s) queued.",
            "Device restart: %(count)d device(s) queued.",
            count,
        )
    return text % {"count": count}


def _skipped_message(kind: OperationKind, count: int, detail: str) -> str:
    if kind == OperationKind.START:
        text = ngettext(
            "%(count)d device(s) skipped: busy or not in a state to start%(detail)s.",
            "%(count)d device(s) skipped: busy or not in a state to start%(detail)s.",
            count,
        )
    elif kind == OperationKind.STOP:
        text = ngettext(
            "%(count)d device(s) skipped: busy or not in a state to stop%(detail)s.",
            "%(count)d device(s) skipped: busy or not in a state to stop%(detail)s.",
            count,
        )
    else:
        text = ngettext(
            "%(count)d device(s) skipped: busy or not in a state to restart%(detail)s.",
            "%(count)d device(s) skipped: busy or not in a state to restart%(detail)s.",
            count,
        )
    return text % {"count": count, "detail": detail}


# Every status of a device and of an operation (a test checks none is missing).
DEVICE_COLORS = {
    DeviceStatus.STOPPED: "#777",
    DeviceStatus.STARTING: "#2b7bb9",
    DeviceStatus.RUNNING: "#2e7d32",
    DeviceStatus.STOPPING: "#2b7bb9",
    DeviceStatus.RESTARTING: "#2b7bb9",
    DeviceStatus.RESETTING: "#2b7bb9",
    DeviceStatus.ERROR: "#ba2121",
}
OPERATION_COLORS = {
    OperationStatus.WAITING: "#417690",
    OperationStatus.RUNNING: "#2b7bb9",
    OperationStatus.RETRYING: "#8a6d3b",
    OperationStatus.COMPLETED: "#2e7d32",
    OperationStatus.FAILED: "#ba2121",
    OperationStatus.CANCELLED: "#777",
}


class OperationInline(ReadOnlyMixin, admin.TabularInline):
    """The device's operation history (read-only), newest first."""

    model = DeviceOperation
    fk_name = "device"
    extra = 0
    fields = ["kind", "status_tag", "progress_tag", "job", "attempts", "error", "created_at"]
    readonly_fields = fields
    ordering = ["-id"]
    verbose_name = _("operation")
    verbose_name_plural = _("operations")

    @admin.display(description=_("status"))
    def status_tag(self, op):
        return status_badge(op.status, OPERATION_COLORS)

    @admin.display(description=_("progress"))
    def progress_tag(self, op):
        return progress_bar(op.progress)

    @admin.display(description=_("job"))
    def job(self, op):
        return _job_link(op)


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "status_tag",
        "operation",
        "progress_tag",
        "owner",
        "updated_at",
    ]
    list_filter = ["status"]
    list_select_related = ["current_operation", "owner"]
    list_per_page = 50
    search_fields = ["id", "name"]
    ordering = ["id"]
    actions = ["start_selected", "stop_selected", "restart_selected"]
    readonly_fields = ["status", "current_operation", "installed_apps", "created_at", "updated_at"]
    fields = ["id", "name", "owner", "resolution", "dpi", *readonly_fields]
    raw_id_fields = ["owner"]
    inlines = [OperationInline]

    def get_inlines(self, request, obj):
        return self.inlines if obj else []  # a new device has no history

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "id"] if obj else self.readonly_fields

    @admin.display(description=_("status"), ordering="status")
    def status_tag(self, device):
        return status_badge(device.status, DEVICE_COLORS)

    @admin.display(description=_("operation"))
    def operation(self, device):
        op = device.current_operation
        return f"{op.kind} ({op.status})" if op else "-"

    @admin.display(description=_("progress"))
    def progress_tag(self, device):
        op = device.current_operation
        return progress_bar(op.progress) if op else "-"

    def save_model(self, request, obj, form, change):
        if change:
            # Only name, owner, resolution and dpi are editable; status belongs to operations.
            super().save_model(request, obj, form, change)
            return
        created = services.create_device(
            name=obj.name, id=obj.id, owner=obj.owner, resolution=obj.resolution, dpi=obj.dpi
        )
        obj.created_at, obj.updated_at = created.created_at, created.updated_at
        obj._state.adding = False

    def _operate(self, request, queryset, kind: OperationKind, service: Callable) -> None:
        ready = queryset.filter(status__in=ALLOWED_FROM[kind], current_operation__isnull=True)
        queued, refused = 0, []
        for device in ready:
            try:
                service(device=device, by=request.user)
                queued += 1
            except services.DeviceStateError as exc:  # changed since the filter ran
                refused.append(str(exc))
        skipped = queryset.count() - queued
        self.message_user(request, _queued_message(kind, queued))
        if skipped:
            detail = f" ({'; '.join(refused[:3])})" if refused else ""
            self.message_user(request, _skipped_message(kind, skipped, detail), messages.WARNING)

    @admin.action(description=_("Start selected devices"), permissions=["change"])
    def start_selected(self, request, queryset):
        self._operate(request, queryset, OperationKind.START, services.start_device)

    @admin.action(description=_("Stop selected devices"), permissions=["change"])
    def stop_selected(self, request, queryset):
        self._operate(request, queryset, OperationKind.STOP, services.stop_device)

    @admin.action(description=_("Restart selected devices"), permissions=["change"])
    def restart_selected(self, request, queryset):
        self._operate(request, queryset, OperationKind.RESTART, services.restart_device)


@admin.register(DeviceOperation)
class DeviceOperationAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Every operation on every device: history, read-only."""

    list_display = ["id", "device", "kind", "status_tag", "progress_tag", "job", "created_at"]
    list_filter = ["kind", "status"]
    list_select_related = ["device"]
    search_fields = ["device__id", "device__name"]
    show_full_result_count = False
    ordering = ["-id"]

    @admin.display(description=_("status"), ordering="status")
    def status_tag(self, op):
        return status_badge(op.status, OPERATION_COLORS)

    @admin.display(description=_("progress"))
    def progress_tag(self, op):
        return progress_bar(op.progress)

    @admin.display(description=_("job"))
    def job(self, op):
        return _job_link(op)
