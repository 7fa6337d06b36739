"""Queues, jobs, workers and stats over HTTP: thin views over the same services as the admin."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.viewsets import ViewSet

from queues import services
from queues.api import serializers as s
from queues.api.permissions import requires
from queues.models import Job, Queue, Worker
from queues.search import filter_jobs
from queues.selectors import get_job, is_live, stats


class JobCursor(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500


QueueSummary = inline_serializer(
    "QueueStatus",
    {
        "queues": s.QueueOut(many=True),
        "summary": inline_serializer(
            "QueueSummary",
            {
                k: serializers.IntegerField()
                for k in ("total_queues", "waiting", "active", "completed", "failed")
            },
        ),
    },
)


JobPage = inline_serializer(
    "JobPage",
    {
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": s.JobOut(many=True),
    },
)


class QueueViewSet(ViewSet):
    lookup_field = "name"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    PERMS = {
        "overview": ["queues.view_queue"],
        "retrieve": ["queues.view_queue"],
        "partial_update": ["queues.change_queue"],
        "pause": ["queues.pause_queue"],
        "resume": ["queues.pause_queue"],
        "empty": ["queues.delete_job"],
        "clean": ["queues.delete_job"],
    }

    def get_permissions(self):
        return [requires(*self.PERMS.get(self.action, ["queues.change_queue"]))()]

    def _context(self):
        return {"now": timezone.now()}

    def _queue(self, name: str) -> Queue:
        return get_object_or_404(Queue.objects.select_related("snapshot"), name=name)

    # Not named "list": the answer is one object (queues + summary), not an array.
    @extend_schema(
        responses=QueueSummary,
        summary=gettext_lazy("Every queue with its job counts by status"),
        operation_id="queues_list",
    )
    def overview(self, request):
        queues = list(Queue.objects.select_related("snapshot").order_by("name"))
        data = s.QueueOut(queues, many=True, context=self._context()).data
        summary = {"total_queues": len(data)}
        for key in ("waiting", "active", "completed", "failed"):
            summary[key] = sum(q["counts"][key] for q in data)
        return Response({"queues": data, "summary": summary})

    @extend_schema(responses=s.QueueOut)
    def retrieve(self, request, name=None):
        return Response(s.QueueOut(self._queue(name), context=self._context()).data)

    @extend_schema(request=s.QueuePatchIn, responses=s.QueueOut)
    def partial_update(self, request, name=None):
        queue = self._queue(name)
        form = s.QueuePatchIn(queue, data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        services.update_queue(queue.name, changes=form.validated_data, by=request.user)
        return Response(s.QueueOut(self._queue(name), context=self._context()).data)

    def _toggle(self, request, name, service):
        service(name, by=request.user)
        return Response(s.QueueOut(self._queue(name), context=self._context()).data)

    @extend_schema(request=None, responses=s.QueueOut)
    def pause(self, request, name=None):
        return self._toggle(request, name, services.pause_queue)

    @extend_schema(request=None, responses=s.QueueOut)
    def resume(self, request, name=None):
        return self._toggle(request, name, services.resume_queue)

    @extend_schema(request=s.EmptyIn, responses=s.CountOut)
    def empty(self, request, name=None):
        form = s.EmptyIn(data=request.data)
        form.is_valid(raise_exception=True)
        count = services.empty_queue(self._queue(name).name, by=request.user, **form.validated_data)
        return Response({"count": count})

    @extend_schema(request=s.CleanIn, responses=s.CountOut)
    def clean(self, request, name=None):
        form = s.CleanIn(data=request.data)
        form.is_valid(raise_exception=True)
        count = services.clean_queue(self._queue(name).name, by=request.user, **form.validated_data)
        return Response({"count": count})


class JobViewSet(ViewSet):
    lookup_value_regex = r"[0-9a-fA-F-]{32,36}"
    PERMS = {
        "listing": (["queues.view_job"], True),
        "retrieve": (["queues.view_job"], False),
        "create": (["queues.add_job"], False),
        "bulk": (["queues.add_job"], False),
        "destroy": (["queues.delete_job"], True),
        "retry": (["queues.retry_job"], True),
        "cancel": (["queues.cancel_job"], True),
        "promote": (["queues.promote_job"], True),
        "retry_matching": (["queues.retry_job"], True),
        "cancel_matching": (["queues.cancel_job"], True),
    }

    def get_permissions(self):
        perms, staff = self.PERMS.get(self.action, (["queues.change_job"], True))
        return [requires(*perms, staff=staff)()]

    # Not named "list": the answer is a cursor page object, not an array.
    @extend_schema(parameters=[s.JobFilterIn], responses=JobPage, operation_id="jobs_list")
    def listing(self, request):
        form = s.JobFilterIn(data=request.query_params)
        form.is_valid(raise_exception=True)
        jobs = filter_jobs(Job.objects.select_related("queue"), **form.validated_data)
        paginator = JobCursor()
        page = paginator.paginate_queryset(jobs, request, view=self)
        return paginator.get_paginated_response(s.JobOut(page, many=True).data)

    @extend_schema(request=s.JobCreateIn, responses={201: s.JobOut, 200: s.JobOut})
    def create(self, request):
        form = s.JobCreateIn(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        job = services.enqueue(
            data["name"], data.get("payload"), by=request.user, **form.enqueue_options(data)
        )
        # 200 when unique_key matched an unfinished job instead of creating one.
        code = status.HTTP_201_CREATED if job.was_created else status.HTTP_200_OK
        return Response(s.JobOut(job).data, status=code)

    @extend_schema(request=s.BulkCreateIn, responses={201: s.JobOut(many=True)})
    def bulk(self, request):
        form = s.BulkCreateIn(data=request.data)
        form.is_valid(raise_exception=True)
        specs = [
            {
                "name": item["name"],
                "payload": item.get("payload"),
                **s.JobCreateIn.enqueue_options(item),
            }
            for item in form.validated_data["jobs"]
        ]
        jobs = services.enqueue_many(specs, by=request.user)
        return Response(s.JobOut(jobs, many=True).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=s.JobDetailOut)
    def retrieve(self, request, pk=None):
        job = get_job(pk)
        return Response(s.JobDetailOut(job).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        services.delete_job(pk, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _change(self, request, pk, service):
        job = service(pk, by=request.user)
        return Response(s.JobOut(job).data)

    @extend_schema(request=None, responses=s.JobOut)
    def retry(self, request, pk=None):
        return self._change(request, pk, services.retry_job)

    @extend_schema(request=None, responses=s.JobOut)
    def cancel(self, request, pk=None):
        return self._change(request, pk, services.cancel_job)

    @extend_schema(request=None, responses=s.JobOut)
    def promote(self, request, pk=None):
        return self._change(request, pk, services.promote_job)

    def _matching(self, request, service):
        form = s.JobFilterIn(data=request.data)
        form.is_valid(raise_exception=True)
        count = service(
            filter_jobs(Job.objects.all(), **form.validated_data),
            by=request.user,
            filter={k: str(v) for k, v in form.validated_data.items()},
        )
        return Response({"count": count})

    @extend_schema(request=s.JobFilterIn, responses=s.CountOut, operation_id="jobs_retry_matching")
    def retry_matching(self, request):
        return self._matching(request, services.retry_jobs)

    @extend_schema(request=s.JobFilterIn, responses=s.CountOut, operation_id="jobs_cancel_matching")
    def cancel_matching(self, request):
        return self._matching(request, services.cancel_jobs)


class WorkerList(APIView):
    permission_classes = [requires("queues.view_worker")]

    @extend_schema(responses=s.WorkerOut(many=True))
    def get(self, request):
        now = timezone.now()
        workers = Worker.objects.order_by("id")
        for worker in workers:
            worker.stale = not is_live(worker, now)
        return Response(s.WorkerOut(workers, many=True).data)


class Stats(APIView):
    permission_classes = [requires("queues.view_job")]

    @extend_schema(
        parameters=[
            OpenApiParameter("window", int, description=gettext_lazy("Seconds (default 3600)"))
        ],
        responses=inline_serializer("Stats", {"window_seconds": serializers.IntegerField()}),
    )
    def get(self, request):
        try:
            window = int(request.query_params.get("window", 3600))
        except ValueError:
            window = -1
        if not 60 <= window <= 7 * 24 * 3600:
            raise serializers.ValidationError(
                {"window": [_("seconds from %(low)s to %(high)s") % {"low": 60, "high": 604800}]}
            )
        return Response(stats(window_seconds=window))
