"""Validating a job before it is written: every option checked, defaults filled in from
the handler's ``@job(...)`` and then from the queue, nothing written."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from uuid import UUID

from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone
from django.utils.translation import gettext

from queues.backoff import normalize_backoff
from queues.exceptions import EnqueueError
from queues.ids import uuid7
from queues.models import Job, JobStatus, Queue
from queues.priority import MAX_PRIORITY, MIN_PRIORITY
from queues.registry import Handler, get_handler, payload_error
from queues.selectors import get_queue
from queues.webhooks import check_webhook_url

DEFAULT_QUEUE = "default"
_QUEUE_FIELD = Job._meta.get_field("queue")
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
        raise EnqueueError(
            gettext("unknown enqueue options: %(options)s")
            % {"options": ", ".join(sorted(unknown))}
        )
    if not isinstance(name, str) or not name:
        raise EnqueueError(
            gettext("a job name must be a non-empty string, got %(name)s") % {"name": repr(name)}
        )
    handler = get_handler(name)
    queue = get_queue(options.get("queue") or handler.queue or DEFAULT_QUEUE)

    if payload is None:
        payload = {}
    try:
        # Round-trip so the row holds exactly what the handler will receive.
        text = json.dumps(payload, allow_nan=False)
        payload = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise EnqueueError(
            gettext("payload must be JSON-serializable: %(error)s") % {"error": exc}
        ) from None
    if "\\u0000" in text:
        raise EnqueueError(gettext("payload must not contain NUL characters (\\u0000)"))
    if handler.validator is not None:
        problem = payload_error(handler, payload)
        if problem:
            raise EnqueueError(
                gettext("the payload does not match the schema of handler %(name)s: %(problem)s")
                % {"name": name, "problem": problem}
            )

    if options:
        values = _settings(options, handler, queue)
    else:
        # No options: the handler's and the queue's defaults, checked once per cached
        # queue row (get_queue), not once per job of a bulk enqueue.
        cached = queue.__dict__.setdefault("_plan_defaults", {})
        entry = cached.get(name)
        if entry is None or entry[0] is not handler:  # a handler registered anew
            entry = cached[name] = (handler, _settings({}, handler, queue))
        values = entry[1]
    mode = options.get("dependencies_mode", "required")
    if mode not in DEPENDENCY_MODES:
        raise EnqueueError(
            gettext("dependencies_mode must be one of %(modes)s, got %(mode)s")
            % {"modes": DEPENDENCY_MODES, "mode": repr(mode)}
        )
    depends_on = options.get("depends_on") or []
    if isinstance(depends_on, str | UUID | Job) or not isinstance(depends_on, Iterable):
        depends_on = [depends_on]
    depends_on = list(depends_on)

    run_at = _run_at(options.get("delay"), options.get("run_at"), now) if options else None
    delayed = run_at is not None and run_at > now
    job = new_job(
        queue,
        name=name,
        payload=payload,
        status=JobStatus.DELAYED if delayed else JobStatus.WAITING,
        run_at=run_at if delayed else None,
        **values,
    )
    job.payload_text = text  # what the row stores: no second encoding on the way in
    return Planned(job=job, depends_on=depends_on, required=mode == "required")


def _settings(options: Mapping[str, Any], handler: Handler, queue: Queue) -> dict[str, Any]:
    """The job's columns that come from its options, else its handler, else its queue."""
    priority = _pick(options.get("priority"), handler.priority, queue.default_priority)
    if not _is_int(priority) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise EnqueueError(
            gettext(
                "priority must be an integer from %(low)s (CRITICAL) to %(high)s "
                "(BACKGROUND), got %(priority)s"
            )
            % {"low": MIN_PRIORITY, "high": MAX_PRIORITY, "priority": repr(priority)}
        )
    attempts = _pick(options.get("attempts"), handler.attempts, queue.default_attempts)
    if not _is_int(attempts) or not 1 <= attempts <= 1000:
        raise EnqueueError(
            gettext("attempts must be an integer from 1 to 1000, got %(attempts)s")
            % {"attempts": repr(attempts)}
        )
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
        raise EnqueueError(
            gettext("timeout must be a positive number of seconds, got %(timeout)s")
            % {"timeout": repr(timeout)}
        )

    unique_key = options.get("unique_key")
    if unique_key is not None and (
        not isinstance(unique_key, str) or not 0 < len(unique_key) <= 200
    ):
        raise EnqueueError(
            gettext("unique_key must be a string of 1 to 200 characters, got %(key)s")
            % {"key": repr(unique_key)}
        )
    webhook_url = options.get("webhook_url") or ""
    if webhook_url:
        check_webhook_url(webhook_url)
    return {
        "priority": priority,
        "max_attempts": attempts,
        "backoff": backoff,
        "timeout": timeout,
        "unique_key": unique_key,
        "webhook_url": webhook_url,
    }


@cache
def _job_template() -> tuple[tuple[str, ...], dict[str, Any]]:
    fields = Job._meta.concrete_fields
    # Callable defaults (the id, mutable JSON) are given by new_job for each job.
    return tuple(f.attname for f in fields), {
        f.attname: f.get_default() for f in fields if not (f.has_default() and callable(f.default))
    }


def new_job(queue: Queue, **values: Any) -> Job:
    """An unsaved Job of ``queue``, built without ``Model.__init__``'s per-field work
    (half of a bulk enqueue's time went there): the fields' defaults, then ``values``.
    With a pre_init/post_init receiver for Job, the ordinary constructor instead."""
    names, defaults = _job_template()
    row = {**defaults, "id": uuid7(), "queue_id": queue.pk, **values}
    if pre_init.has_listeners(Job) or post_init.has_listeners(Job):
        job = Job(*[row[n] for n in names])
    else:
        job = Job.__new__(Job)
        job._state = ModelState()
        job.__dict__.update(row)
    _QUEUE_FIELD.set_cached_value(job, queue)
    return job


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _pick(*values):
    return next((v for v in values if v is not None), None)


def _run_at(delay: Any, run_at: Any, now: datetime) -> datetime | None:
    if delay is not None and run_at is not None:
        raise EnqueueError(gettext("give either delay or run_at, not both"))
    if delay is not None:
        if isinstance(delay, timedelta):
            seconds = delay.total_seconds()
        elif isinstance(delay, int | float) and not isinstance(delay, bool):
            seconds = float(delay)
        else:
            raise EnqueueError(
                gettext("delay must be seconds or a timedelta, got %(delay)s")
                % {"delay": repr(delay)}
            )
        if not math.isfinite(seconds) or seconds < 0:
            raise EnqueueError(
                gettext("delay must not be negative, got %(delay)s") % {"delay": repr(delay)}
            )
        return now + timedelta(seconds=seconds) if seconds > 0 else None
    if run_at is not None:
        if not isinstance(run_at, datetime):
            raise EnqueueError(
                gettext("run_at must be a datetime, got %(run_at)s") % {"run_at": repr(run_at)}
            )
        if timezone.is_naive(run_at):
            raise EnqueueError(gettext("run_at must be timezone-aware (e.g. timezone.now() + ...)"))
        return run_at
    return None


def validate_job(name: str, payload: Any = None, **options: Any) -> None:
    """Check that ``enqueue(name, payload, **options)`` would be accepted, writing nothing
    (schedules use it to refuse a bad definition up front)."""
    plan(name, payload, options, timezone.now())
