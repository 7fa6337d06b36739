"""Schedules over HTTP (list, create, read, change, delete): thin views over the same services
as the admin."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from queues.api.permissions import requires
from scheduling import selectors, services
from scheduling.api import serializers as s
from scheduling.changes import delete_schedule, update_schedule
from scheduling.models import ScheduledJob, ScheduleRun

VIEW = "scheduling.view_scheduledjob"


class Pages(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class ByMethod:
    """One permission per HTTP method; anything unlisted (HEAD, OPTIONS) needs view."""

    perms: dict[str, str] = {}

    def get_permissions(self):
        return [requires(self.perms.get(self.request.method, VIEW))()]


def _schedule(pk: int) -> ScheduledJob:
    return get_object_or_404(selectors.schedules_with_last_run(), pk=pk)


class ScheduleList(ByMethod, generics.ListAPIView):
    perms = {"GET": VIEW, "POST": "scheduling.add_scheduledjob"}
    serializer_class = s.ScheduleOut
    pagination_class = Pages

    def get_queryset(self):
        return selectors.schedules_with_last_run()

    @extend_schema(summary=_("Schedules, by name"))
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=s.ScheduleCreateInput,
        responses={201: s.ScheduleDetailOut},
        summary=_("Create a cron, interval or one-off schedule"),
    )
    def post(self, request):
        data = s.ScheduleCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        schedule = services.create_schedule(**data.validated_data)
        return Response(s.ScheduleDetailOut(_schedule(schedule.pk)).data, status.HTTP_201_CREATED)


class ScheduleDetail(ByMethod, APIView):
    perms = {
        "GET": VIEW,
        "PATCH": "scheduling.change_scheduledjob",
        "DELETE": "scheduling.delete_scheduledjob",
    }

    @extend_schema(responses=s.ScheduleDetailOut, summary=_("A schedule and its next 5 runs"))
    def get(self, request, pk: int):
        return Response(s.ScheduleDetailOut(_schedule(pk)).data)

    @extend_schema(
        request=s.ScheduleUpdateInput,
        responses=s.ScheduleDetailOut,
        summary=_("Change status, job options or the schedule itself"),
    )
    def patch(self, request, pk: int):
        schedule = _schedule(pk)
        data = s.ScheduleUpdateInput(schedule, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        update_schedule(schedule=schedule, changes=data.validated_data, by=request.user)
        return Response(s.ScheduleDetailOut(_schedule(pk)).data)

    @extend_schema(responses={204: OpenApiResponse(description=_("Deleted"))})
    def delete(self, request, pk: int):
        delete_schedule(schedule=_schedule(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScheduleRunNow(ByMethod, APIView):
    perms = {"POST": "scheduling.run_schedule"}

    @extend_schema(
        request=None,
        responses={201: s.ScheduleRunOut},
        summary=_("Enqueue the job now; the next regular run does not move"),
    )
    def post(self, request, pk: int):
        run = services.run_now(_schedule(pk), by=request.user)
        return Response(s.ScheduleRunOut(run).data, status.HTTP_201_CREATED)


class ScheduleRuns(ByMethod, generics.ListAPIView):
    perms = {"GET": VIEW}
    serializer_class = s.ScheduleRunOut
    pagination_class = Pages

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ScheduleRun.objects.none()
        schedule = get_object_or_404(ScheduledJob, pk=self.kwargs["pk"])
        return selectors.run_history(schedule)

    @extend_schema(summary=_("Runs, newest first, with their job's status and duration"))
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
