"""Input and output shapes of the devices API (camelCase, like the job payloads)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from devices.models import MAX_DPI, MIN_DPI, Device, DeviceOperation


class OperationOut(serializers.ModelSerializer):
    jobId = serializers.UUIDField(source="job_id")  # noqa: N815
    createdAt = serializers.DateTimeField(source="created_at")  # noqa: N815
    startedAt = serializers.DateTimeField(source="started_at")  # noqa: N815
    finishedAt = serializers.DateTimeField(source="finished_at")  # noqa: N815

    class Meta:
        model = DeviceOperation
        fields = [
            "id",
            "kind",
            "status",
            "progress",
            "jobId",
            "params",
            "error",
            "attempts",
            "createdAt",
            "startedAt",
            "finishedAt",
        ]


class CurrentOperationOut(OperationOut):
    """The operation plus, from its job, what a client polls for: ``state`` and
    ``attemptsMade``."""

    state = serializers.CharField(allow_null=True, help_text=_("The job's status."))
    attemptsMade = serializers.IntegerField(allow_null=True)  # noqa: N815

    class Meta(OperationOut.Meta):
        fields = [*OperationOut.Meta.fields, "state", "attemptsMade"]


class DeviceOut(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", allow_null=True, default=None)
    installedApps = serializers.ListField(  # noqa: N815
        source="installed_apps", child=serializers.CharField()
    )
    currentOperation = serializers.SerializerMethodField()  # noqa: N815
    updatedAt = serializers.DateTimeField(source="updated_at")  # noqa: N815

    class Meta:
        model = Device
        fields = [
            "id",
            "name",
            "status",
            "resolution",
            "dpi",
            "owner",
            "installedApps",
            "currentOperation",
            "updatedAt",
        ]

    @extend_schema_field(CurrentOperationOut(allow_null=True))
    def get_currentOperation(self, device: Device) -> dict | None:  # noqa: N802
        # Annotated by selectors.devices_with_operation: no query per device.
        op = device.current_operation
        if op is None:
            return None
        op.state = getattr(device, "current_job_state", None)
        op.attemptsMade = getattr(device, "current_job_attempts", None)
        return CurrentOperationOut(op).data


class DeviceDetailOut(DeviceOut):
    recentOperations = OperationOut(  # noqa: N815
        source="recent_operations", many=True, help_text=_("Newest first.")
    )

    class Meta(DeviceOut.Meta):
        fields = [*DeviceOut.Meta.fields, "recentOperations"]


class AcceptedOut(serializers.Serializer):
    message = serializers.CharField()
    jobId = serializers.UUIDField()  # noqa: N815
    operationId = serializers.IntegerField()  # noqa: N815


class StartInput(serializers.Serializer):
    """Start params: ``resolution`` and ``dpi`` (both optional: the device keeps its own)."""

    resolution = serializers.CharField(required=False, max_length=20, help_text=_("e.g. 1080x1920"))
    dpi = serializers.IntegerField(required=False, min_value=MIN_DPI, max_value=MAX_DPI)


class InstallInput(serializers.Serializer):
    packageName = serializers.CharField(max_length=255, help_text=_("e.g. com.example.app"))  # noqa: N815
    apkUrl = serializers.URLField(max_length=2000)  # noqa: N815


class UninstallInput(serializers.Serializer):
    packageName = serializers.CharField(max_length=255)  # noqa: N815
