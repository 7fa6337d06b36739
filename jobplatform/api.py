"""What every API view shares: one exception handler and the request size limit."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.utils.decorators import sync_and_async_middleware
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from queues.exceptions import (
    EnqueueError,
    InvalidJobState,
    JobNotFound,
    QueueNotFound,
)
from scheduling.cron import ScheduleError


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = _("The operation does not apply in the current state.")
    default_code = "conflict"


def _domain_error(exc: Exception) -> exceptions.APIException | None:
    if isinstance(exc, JobNotFound | QueueNotFound | Http404):
        return exceptions.NotFound(str(exc) or gettext("Not found."))
    if isinstance(exc, InvalidJobState):
        return Conflict(str(exc))
    if isinstance(exc, EnqueueError | ScheduleError):
        return exceptions.ValidationError({"detail": [str(exc)]})
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        )
    return None


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """Domain errors to 4xx: bad input 400 (field messages), unknown job/queue/schedule
    404, an illegal state change 409 (with the current state when known)."""
    mapped = _domain_error(exc)
    response = drf_exception_handler(mapped or exc, context)
    if response is not None and isinstance(exc, InvalidJobState) and getattr(exc, "state", None):
        response.data["state"] = exc.state
    return response


def _too_big(request) -> JsonResponse | None:
    if not request.path.startswith("/api/"):
        return None
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    limit = settings.API_MAX_BODY_BYTES
    if length > limit:
        return JsonResponse(
            {
                "detail": gettext("request body is %(length)s bytes; the limit is %(limit)s")
                % {"length": length, "limit": limit}
            },
            status=413,
        )
    return None


@sync_and_async_middleware
def BodySizeLimitMiddleware(get_response):  # noqa: N802  (a middleware factory)
    """413 for API request bodies over API_MAX_BODY_BYTES, before anything is parsed.
    Async-capable, so it never turns an async view (the long-poll) into a thread."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            return _too_big(request) or await get_response(request)

    else:

        def middleware(request):
            return _too_big(request) or get_response(request)

    return middleware


def document_wait_endpoint(result, generator, request, public):
    """The long-poll is an async Django view (DRF has none), so its operation is added to
    the generated schema here."""
    job = {"$ref": "#/components/schemas/JobEvent"}
    result.setdefault("components", {}).setdefault("schemas", {})["JobEvent"] = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "queue": {"type": "string"},
            "status": {"type": "string"},
            "progress": {"type": "integer"},
            "attempts_made": {"type": "integer"},
            "result": {"nullable": True},
            "error": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time", "nullable": True},
            "started_at": {"type": "string", "format": "date-time", "nullable": True},
            "finished_at": {"type": "string", "format": "date-time", "nullable": True},
        },
        "required": ["id", "status"],
    }
    result.setdefault("paths", {})["/api/v1/jobs/{id}/wait/"] = {
        "get": {
            "operationId": "jobs_wait",
            "summary": "Wait for a job to finish (long-poll)",
            "description": "Answers as soon as the job reaches a final state, or 408 with "
            "the current state when the timeout (seconds, at most 60) passes.",
            "tags": ["jobs"],
            "parameters": [
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"},
                },
                {
                    "name": "timeout",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "number", "minimum": 0, "maximum": 60, "default": 30},
                },
            ],
            "security": [{"tokenAuth": []}, {"cookieAuth": []}],
            "responses": {
                "200": {
                    "description": "The job reached a final state.",
                    "content": {"application/json": {"schema": job}},
                },
                "408": {
                    "description": "Still running at the timeout.",
                    "content": {"application/json": {"schema": job}},
                },
            },
        }
    }
    return result
