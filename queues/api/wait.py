"""The task gateway's long-poll: ``GET /api/v1/jobs/{id}/wait/?timeout=30``.

An async view: a waiting client holds no thread and no database connection, only a Redis
pub/sub subscription. It answers as soon as the job reaches a final state (200), or with
408 and the current state after the timeout (at most 60 s). Run under ASGI (uvicorn) to
serve many waiters; under WSGI it still works, one thread per waiter.

Without Redis (the embedded default), or while Redis cannot be reached, a waiter polls the
ledger instead: every 50 ms at first, backing off to once a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils.translation import gettext
from redis.exceptions import RedisError
from rest_framework.authtoken.models import Token

from queues import doorbell
from queues.events import channel, job_event
from queues.exceptions import JobNotFound
from queues.models import FINAL_STATUSES
from queues.redis_conn import async_client_for
from queues.selectors import get_job

MAX_TIMEOUT = 60.0
# A waiter re-reads the job this often even without a message (a lost publish only delays).
RECHECK_SECONDS = 15.0
# Without pub/sub, the ledger is read after these pauses (seconds): short at first, since
# most waits are short, then at most once a second per waiter.
POLL_FIRST_SECONDS = 0.05
POLL_MAX_SECONDS = 1.0

logger = logging.getLogger("queues.api.wait")


def poll_delays() -> Iterator[float]:
    """The pauses between ledger reads of a polling waiter: 50 ms doubling up to 1 s."""
    delay = POLL_FIRST_SECONDS
    while True:
        yield delay
        delay = min(delay * 2, POLL_MAX_SECONDS)


def _user_for(request):
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header.startswith("Token "):
        token = Token.objects.select_related("user").filter(key=header[6:].strip()).first()
        return token.user if token and token.user.is_active else None
    user = request.user  # session
    return user if user.is_authenticated else None


def _release_connection() -> None:
    # Hand the connection back before waiting: a waiter holds none. (Not inside a
    # transaction someone else owns, e.g. a test's.)
    if not connection.in_atomic_block:
        connection.close()


def _authorize(request) -> int | None:
    """None if the caller may wait on jobs, else the HTTP status to answer."""
    try:
        user = _user_for(request)
        if user is None:
            return 401
        return None if user.has_perm("queues.view_job") else 403
    finally:
        _release_connection()


def _state(job_id):
    """The job's JSON and whether it is final; returns the database connection at once."""
    try:
        job = get_job(job_id)
        return job_event(job), job.status in FINAL_STATUSES
    finally:
        _release_connection()


async def job_wait(request, pk):
    refused = await sync_to_async(_authorize)(request)
    if refused == 401:
        return JsonResponse(
            {"detail": gettext("Authentication credentials were not provided.")},
            status=401,
            headers={"WWW-Authenticate": "Token"},
        )
    if refused == 403:
        return JsonResponse(
            {"detail": gettext("requires the permission %(perm)s") % {"perm": "queues.view_job"}},
            status=403,
        )
    try:
        timeout = float(request.GET.get("timeout", 30))
    except ValueError:
        timeout = -1
    if not 0 <= timeout <= MAX_TIMEOUT:
        return JsonResponse(
            {
                "timeout": [
                    gettext("seconds from %(low)s to %(high)s")
                    % {"low": 0, "high": f"{MAX_TIMEOUT:g}"}
                ]
            },
            status=400,
        )
    try:
        state, final = await sync_to_async(_state)(pk)
    except JobNotFound as exc:
        return JsonResponse({"detail": str(exc)}, status=404)
    if final or timeout == 0:
        return JsonResponse(state, status=200 if final else 408)
    deadline = time.monotonic() + timeout
    if doorbell.redis_enabled():
        try:
            state, final = await _wait_with_pubsub(pk, deadline)
        except (RedisError, OSError):
            # Redis only rings a bell: without it the ledger still answers, more slowly.
            logger.warning("long-poll of job %s falls back to polling", pk, exc_info=True)
            state, final = await _wait_by_polling(pk, deadline, state)
    else:
        state, final = await _wait_by_polling(pk, deadline, state)
    return JsonResponse(state, status=200 if final else 408)


async def _wait_with_pubsub(pk, deadline: float) -> tuple[dict, bool]:
    client = async_client_for(settings.REDIS_URL)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(channel(pk))
        # Re-read after subscribing: a change between the first read and the subscription
        # would otherwise be missed.
        state, final = await sync_to_async(_state)(pk)
        while not final:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=min(left, RECHECK_SECONDS)
            )
            state, final = await sync_to_async(_state)(pk)
        return state, final
    finally:
        try:
            await pubsub.aclose()
            await client.aclose()
        except (RedisError, OSError):
            logger.debug("closing the pub/sub of job %s failed", pk, exc_info=True)


async def _wait_by_polling(pk, deadline: float, state: dict) -> tuple[dict, bool]:
    """Re-read the job after each pause of ``poll_delays`` until it is final or time is up."""
    for delay in poll_delays():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        await asyncio.sleep(min(delay, left))
        state, final = await sync_to_async(_state)(pk)
        if final:
            return state, True
    return state, False
