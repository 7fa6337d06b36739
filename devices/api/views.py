"""Devices over HTTP: list, detail (polled for an operation's progress) and the six operations,
each answered 202 with the job to poll. Thin views over ``devices.services``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from devices import selectors, services
from devices.api import serializers as s
from devices.models import Device, DeviceStatus
from queues.api.permissions import requires

VIEW = "devices.view_device"
CHANGE = "devices.change_device"


class Pages(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def _device(pk: str) -> Device:
    return get_object_or_404(selectors.devices_with_operation(), pk=pk)


class DeviceList(generics.ListAPIView):
    permission_classes = [requires(VIEW)]
    serializer_class = s.DeviceOut
    pagination_class = Pages

    def get_queryset(self):
        return selectors.devices_with_operation(status=self.request.query_params.get("status"))

    @extend_schema(
        summary=_("Devices with their current operation"),
        parameters=[OpenApiParameter("status", enum=DeviceStatus.values, required=False)],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class DeviceDetail(APIView):
    permission_classes = [requires(VIEW)]

    @extend_schema(
        responses=s.DeviceDetailOut,
        summary=_("A device, its current operation's progress and its latest operations"),
    )
    def get(self, request, pk: str):
        device = _device(pk)
        device.recent_operations = selectors.recent_operations(device)
        return Response(s.DeviceDetailOut(device).data)


class _Operation(APIView):
    """POST → 202 ``{"message", "jobId", "operationId"}``; 400 bad input, 404 unknown
    device, 409 when the device's state does not allow it (with ``state``)."""

    permission_classes = [requires(CHANGE)]
    input_class: type[serializers.Serializer] | None = None
    service: Callable[..., Any]
    message = ""

    def arguments(self, data: dict) -> dict:
        return {}

    def post(self, request, pk: str):
        device = get_object_or_404(Device, pk=pk)
        data: dict = {}
        if self.input_class is not None:
            body = self.input_class(data=request.data)
            body.is_valid(raise_exception=True)
            data = body.validated_data
        job = self.service(device=device, by=request.user, **self.arguments(data))
        out = {
            "message": str(self.message),
            "jobId": job.pk,
            "operationId": job.device_operation.pk,
        }
        return Response(s.AcceptedOut(out).data, status=status.HTTP_202_ACCEPTED)


RESPONSES = {
    202: s.AcceptedOut,
    400: OpenApiResponse(description=_("Bad input, with field messages")),
    404: OpenApiResponse(description=_("No device has this id")),
    409: OpenApiResponse(description=_("Busy, or not in a state to do it (`detail`, `state`)")),
}


def _accepted(summary: str):
    return extend_schema(request=None, responses=RESPONSES, summary=summary)


class StartDevice(_Operation):
    service = staticmethod(services.start_device)
    input_class = s.StartInput
    message = _("Device start operation queued")

    def arguments(self, data: dict) -> dict:
        return {"params": dict(data)}

    @extend_schema(
        request=s.StartInput,
        responses=RESPONSES,
        summary=_("Start a stopped device (check, allocate, container, configure, verify)"),
    )
    def post(self, request, pk: str):
        return super().post(request, pk)


class StopDevice(_Operation):
    service = staticmethod(services.stop_device)
    message = _("Device stop operation queued")

    @_accepted(_("Stop a running device"))
    def post(self, request, pk: str):
        return super().post(request, pk)


class RestartDevice(_Operation):
    service = staticmethod(services.restart_device)
    message = _("Device restart operation queued")

    @_accepted(_("Restart a running device"))
    def post(self, request, pk: str):
        return super().post(request, pk)


class ResetDevice(_Operation):
    service = staticmethod(services.reset_device)
    message = _("Device reset operation queued")

    @_accepted(_("Reset a device to its factory state (data and apps wiped; ends stopped)"))
    def post(self, request, pk: str):
        return super().post(request, pk)


class InstallApp(_Operation):
    service = staticmethod(services.install_app)
    input_class = s.InstallInput
    message = _("App install operation queued")

    def arguments(self, data: dict) -> dict:
        return {"package_name": data["packageName"], "apk_url": data["apkUrl"]}

    @extend_schema(
        request=s.InstallInput,
        responses=RESPONSES,
        summary=_("Install an APK on a running device (download, verify, push, install, verify)"),
    )
    def post(self, request, pk: str):
        return super().post(request, pk)


class UninstallApp(_Operation):
    service = staticmethod(services.uninstall_app)
    input_class = s.UninstallInput
    message = _("App uninstall operation queued")

    def arguments(self, data: dict) -> dict:
        return {"package_name": data["packageName"]}

    @extend_schema(
        request=s.UninstallInput,
        responses=RESPONSES,
        summary=_("Uninstall an installed app from a running device"),
    )
    def post(self, request, pk: str):
        return super().post(request, pk)
