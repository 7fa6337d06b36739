"""Validating a job before it is written: every option checked, defaults filled in from
the handler's ``@job(...)`` and then from the queue, nothing written."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.utils import timezone

from queues.backoff import normalize_backoff
from queues.exceptions import EnqueueError
from queues.models import Job, JobStatus
from queues.priority import MAX_PRIORITY, MIN_PRIORITY
from queues.registry import get_handler
from queues.selectors import get_queue
from queues.webhooks import check_webhook_url

DEFAULT_QUEUE = "default"
DEPENDENCY_MODES = ("required", "optional")
_ENQUEUE_OPTIONS = frozenset(
    {
        "queue",
        "priority",
        "delay",
        "run_at",
        "attempts",
        "backoff",
        "timeout",
        "depends_on",
        "dependencies_mode",
        "unique_key",
        "webhook_url",
    }
)


@dataclass
class Planned:
    job: Job
    depends_on: list[Any] = field(default_factory=list)
    required: bool = True
    ref: str | None = None


def plan(name: str, payload: Any, options: Mapping[str, Any], now: datetime) -> Planned:
    unknown = set(options) - _ENQUEUE_OPTIONS
    if unknown:
        raise EnqueueError(f"unknown enqueue options: {', '.join(sorted(unknown))}")
    if not isinstance(name, str) or not name:
        raise EnqueueError(f"a job name must be a non-empty string, got {name!r}")
    handler = get_handler(name)
    queue = get_queue(options.get("queue") or handler.queue or DEFAULT_QUEUE)

    if payload is None:
        payload = {}
    try:
        # Round-trip so the row holds exactly what the handler will receive.
        text = json.dumps(payload, allow_nan=False)
        payload = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise EnqueueError(f"payload must be JSON-serializable: {exc}") from None
    if "\\u0000" in text:
        raise EnqueueError("payload must not contain NUL characters (\\u0000)")

    priority = _pick(options.get("priority"), handler.priority, queue.default_priority)
    if not _is_int(priority) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise EnqueueError(
            f"priority must be an integer from {MIN_PRIORITY} (CRITICAL) to {MAX_PRIORITY} "
            f"(BACKGROUND), got {priority!r}"
        )
    attempts = _pick(options.get("attempts"), handler.attempts, queue.default_attempts)
    if not _is_int(attempts) or not 1 <= attempts <= 1000:
        raise EnqueueError(f"attempts must be an integer from 1 to 1000, got {attempts!r}")
    backoff = options.get("backoff")
    if backoff is not None:
        backoff = normalize_backoff(backoff)
    else:
        backoff = handler.backoff or normalize_backoff(queue.default_backoff)
    timeout = _pick(options.get("timeout"), handler.timeout, queue.default_timeout)
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise EnqueueError(f"timeout must be a positive number of seconds, got {timeout!r}")

    unique_key = options.get("unique_key")
    if unique_key is not None and (
        not isinstance(unique_key, str) or not 0 < len(unique_key) <= 200
    ):
        raise EnqueueError(
            f"unique_key must be a string of 1 to 200 characters, got {unique_key!r}"
        )
    webhook_url = options.get("webhook_url") or ""
    if webhook_url:
        check_webhook_url(webhook_url)
    mode = options.get("dependencies_mode", "required")
    if mode not in DEPENDENCY_MODES:
        raise EnqueueError(f"dependencies_mode must be one of {DEPENDENCY_MODES}, got {mode!r}")
    depends_on = options.get("depends_on") or []
    if isinstance(depends_on, str | UUID | Job) or not isinstance(depends_on, Iterable):
        depends_on = [depends_on]
    depends_on = list(depends_on)

    run_at = _run_at(options.get("delay"), options.get("run_at"), now)
    delayed = run_at is not None and run_at > now
    job = Job(
        queue=queue,
        name=name,
        payload=payload,
        status=JobStatus.DELAYED if delayed else JobStatus.WAITING,
        priority=priority,
        max_attempts=attempts,
        backoff=backoff,
        timeout=timeout,
        run_at=run_at if delayed else None,
        unique_key=unique_key,
        webhook_url=webhook_url,
    )
    return Planned(job=job, depends_on=depends_on, required=mode == "required")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _pick(*values):
    return next((v for v in values if v is not None), None)


def _run_at(delay: Any, run_at: Any, now: datetime) -> datetime | None:
    if delay is not None and run_at is not None:
        raise EnqueueError("give either delay or run_at, not both")
    if delay is not None:
        if isinstance(delay, timedelta):
            seconds = delay.total_seconds()
        elif isinstance(delay, int | float) and not isinstance(delay, bool):
            seconds = float(delay)
        else:
            raise EnqueueError(f"delay must be seconds or a timedelta, got {delay!r}")
        if not math.isfinite(seconds) or seconds < 0:
            raise EnqueueError(f"delay must not be negative, got {delay!r}")
        return now + timedelta(seconds=seconds) if seconds > 0 else None
    if run_at is not None:
        if not isinstance(run_at, datetime):
            raise EnqueueError(f"run_at must be a datetime, got {run_at!r}")
        if timezone.is_naive(run_at):
            raise EnqueueError("run_at must be timezone-aware (e.g. timezone.now() + ...)")
        return run_at
    return None


def validate_job(name: str, payload: Any = None, **options: Any) -> None:
    """Check that ``enqueue(name, payload, **options)`` would be accepted, writing nothing
    (schedules use it to refuse a bad definition up front)."""
    plan(name, payload, options, timezone.now())
