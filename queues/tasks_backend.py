"""A backend for Django's Tasks API (the ``django-tasks`` package): ``@task`` functions of
any app are enqueued into the ledger and run by the platform's workers.

    TASKS = {
        "default": {
            "BACKEND": "queues.tasks_backend.PlatformTaskBackend",
            "QUEUES": ["default", "email"],  # [] allows every queue of the platform
        }
    }

Every enqueued task is one ``Job`` of the handler ``django_tasks.run`` whose payload is
JSON: ``{"task": <dotted path>, "args": [...], "kwargs": {...}, "backend": <alias>,
"queue_name": ..., "priority": <-100..100>, "run_after": <ISO 8601 or null>}``. The
result id is the job id.

- ``queue_name`` is the platform queue (it must be in ``QUEUES`` and exist as a Queue).
- ``run_after`` is the job's ``run_at``: the job waits ``delayed`` until then.
- ``priority`` (-100..100, higher runs earlier) maps onto the platform's 1..10 (lower runs
  earlier) through the named levels: 100 → CRITICAL 1, 50 → HIGH 3, 0 → NORMAL 5,
  -50 → LOW 7, -100 → BACKGROUND 10, linear in between and rounded to the nearest level
  (the one tie, -75 → 8.5, rounds towards NORMAL: 8); see ``platform_priority``.
- Statuses: waiting / delayed / blocked → READY, active → RUNNING, completed →
  SUCCESSFUL, failed / cancelled → FAILED. ``errors`` has one entry per failed attempt:
  the exception's class path and the attempt's traceback.
- A task runs at most once (``attempts=1``), as the Tasks API expects; an operator may
  still retry a failed job from the admin.
- Enqueueing writes the job inside the caller's transaction; workers are woken when it
  commits.

The worker side runs only Tasks: it imports the payload's dotted path, requires a ``Task``
registered at exactly that path, for a backend of this class, and rebuilds it with the
enqueued options, so the Tasks framework validates it again before anything runs.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from fractions import Fraction
from itertools import pairwise
from typing import Any, TypeVar
from uuid import UUID

from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends
from django_tasks.backends.base import BaseTaskBackend
from django_tasks.base import (
    TASK_MAX_PRIORITY,
    TASK_MIN_PRIORITY,
    Task,
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultStatus,
)
from django_tasks.exceptions import (
    InvalidTaskBackendError,
    InvalidTaskError,
    TaskResultDoesNotExist,
)
from django_tasks.signals import task_enqueued, task_finished, task_started
from django_tasks.utils import get_exception_traceback, get_module_path, normalize_json
from typing_extensions import ParamSpec

from queues.exceptions import EnqueueError, JobCancelled, JobTimeout, PermanentError
from queues.priority import Priority
from queues.registry import job

T = TypeVar("T")
P = ParamSpec("P")

HANDLER_NAME = "django_tasks.run"

# (Tasks priority, platform priority): every named level is an anchor; linear in between.
PRIORITY_ANCHORS = (
    (TASK_MAX_PRIORITY, Priority.CRITICAL),
    (50, Priority.HIGH),
    (0, Priority.NORMAL),
    (-50, Priority.LOW),
    (TASK_MIN_PRIORITY, Priority.BACKGROUND),
)

# The worker notes the class path of what a task raised on the exception; the note is the
# last line of the attempt's traceback, which is how ``errors`` finds it again.
_CLASS_NOTE = "[django_tasks] exception class: "


class TaskArgumentsNotJSON(InvalidTaskError, TypeError):
    """A task's args or kwargs are not JSON. A ``TypeError`` too, as the Tasks framework
    raises for them."""


class PlatformTaskError(Exception):
    """Reported in ``TaskResult.errors`` for an attempt that ended without an exception
    from the task: its worker was lost or killed, or its outcome could not be recorded.
    The error's traceback holds the platform's reason."""


def platform_priority(task_priority: int) -> int:
    """Map a Tasks priority (-100..100, higher runs earlier) onto the platform's 1..10
    (lower runs earlier), through ``PRIORITY_ANCHORS``; out-of-range values are clamped."""
    priority = min(max(int(task_priority), TASK_MIN_PRIORITY), TASK_MAX_PRIORITY)
    for (high, high_level), (low, low_level) in pairwise(PRIORITY_ANCHORS):
        if low <= priority <= high:
            level = high_level + Fraction((high - priority) * (low_level - high_level), high - low)
            break
    # Round to the nearest level; a tie goes towards NORMAL.
    if level > Priority.NORMAL:
        return math.ceil(level - Fraction(1, 2))
    return math.floor(level + Fraction(1, 2))


_SUCCESSFUL = getattr(TaskResultStatus, "SUCCESSFUL", None) or TaskResultStatus.SUCCEEDED
_FINISHED = ("completed", "failed", "cancelled")
STATUS_MAP = {
    "waiting": TaskResultStatus.READY,
    "delayed": TaskResultStatus.READY,
    "blocked": TaskResultStatus.READY,
    "active": TaskResultStatus.RUNNING,
    "completed": _SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
    "cancelled": TaskResultStatus.FAILED,
}


class PlatformTaskBackend(BaseTaskBackend):
    """Tasks run as jobs of the platform: Postgres ledger, Redis doorbell, django-q2 workers."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def enqueue(
        self,
        task: Task[P, T],
        args: P.args,  # type: ignore[valid-type]
        kwargs: P.kwargs,  # type: ignore[valid-type]
    ) -> TaskResult[T]:
        # Load order: the Tasks framework may load this backend while apps are loading
        # (a tasks module imported at startup); services need the app registry.
        from queues.services import enqueue

        self.validate_task(task)
        _check_importable(task)
        try:
            arguments = _to_json({"args": list(args), "kwargs": dict(kwargs)})
        except (TypeError, ValueError) as exc:
            raise TaskArgumentsNotJSON(f"task arguments must be JSON-serializable: {exc}") from None
        run_after = task.run_after
        if run_after is not None and timezone.is_naive(run_after):
            run_after = timezone.make_aware(run_after)  # only with USE_TZ = False
        payload = {
            "task": task.module_path,
            **arguments,
            "backend": self.alias,
            "queue_name": task.queue_name,
            "priority": task.priority,
            "run_after": run_after.isoformat() if run_after is not None else None,
        }
        try:
            queued = enqueue(
                HANDLER_NAME,
                payload,
                queue=task.queue_name,
                priority=platform_priority(task.priority),
                run_at=run_after,
            )
        except EnqueueError as exc:  # an unknown queue, most likely
            raise InvalidTaskError(f"cannot enqueue task {task.module_path}: {exc}") from exc
        result = _task_result(queued, [], task=task)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        job, attempts = _job_and_attempts(result_id)
        try:
            task = _load_task(job.payload)
        except PermanentError as exc:
            raise InvalidTaskError(
                f"the task of result {result_id} cannot be loaded: {exc}"
            ) from exc
        return _task_result(job, attempts, task=task)


def _check_importable(task: Task) -> None:
    # Workers find the task again by its dotted path: refuse now what they could not run.
    try:
        found = import_string(task.module_path)
    except ImportError:
        found = None
    if not isinstance(found, Task) or found.func is not task.func:
        raise InvalidTaskError(
            f"task {task.module_path} cannot be found at its dotted path: define it at module "
            "level with @task, under the function's own name"
        )


def _to_json(value: Any) -> Any:
    """``value`` as the ledger holds it: the framework's normalization (tuples become lists,
    bytes strings), then a JSON round trip that must not change it. Raises ``TypeError`` or
    ``ValueError`` for what JSON cannot hold (objects, NaN, non-string keys)."""
    normalized = normalize_json(value)
    loaded = json.loads(json.dumps(normalized, allow_nan=False))
    if loaded != normalized:
        raise TypeError("mapping keys must be strings")
    return loaded


def _job_and_attempts(result_id: Any) -> tuple:
    # Load order: as in enqueue above, models need the app registry.
    from queues.models import Job

    try:
        pk = UUID(str(result_id))
    except ValueError:
        raise TaskResultDoesNotExist(result_id) from None
    job = Job.objects.filter(pk=pk, name=HANDLER_NAME).first()
    if job is None:
        raise TaskResultDoesNotExist(result_id)
    return job, job.attempt_history()


def _load_task(payload: Any) -> Task:
    """The Task a job's payload names, with its enqueued options, validated again by its
    backend. Anything else (an unknown path, a plain callable, a foreign backend, malformed
    arguments) raises ``PermanentError``: the worker never runs it."""
    if not isinstance(payload, dict) or not isinstance(payload.get("task"), str):
        raise PermanentError("the payload names no task: it was not enqueued by the Tasks API")
    if not isinstance(payload.get("args"), list) or not isinstance(payload.get("kwargs"), dict):
        raise PermanentError("the payload's args must be a list and its kwargs an object")
    path = payload["task"]
    alias = payload.get("backend", DEFAULT_TASK_BACKEND_ALIAS)
    try:
        backend = task_backends[alias]
    except InvalidTaskBackendError as exc:
        raise PermanentError(f"task backend {alias!r} is not configured: {exc}") from exc
    if not isinstance(backend, PlatformTaskBackend):
        raise PermanentError(f"task backend {alias!r} is not a {PlatformTaskBackend.__name__}")
    try:
        found = import_string(path)
    except ImportError as exc:
        raise PermanentError(f"cannot import task {path!r}: {exc}") from exc
    if not isinstance(found, Task):
        raise PermanentError(f"{path!r} is a {type(found).__name__}, not a task: only @task runs")
    if found.module_path != path:
        raise PermanentError(f"{path!r} is an alias of task {found.module_path}, not a task")
    try:
        run_after = payload.get("run_after")
        # using() builds a new Task, which its backend validates (queue, priority, ...).
        return found.using(
            priority=payload.get("priority"),
            queue_name=payload.get("queue_name"),
            run_after=datetime.fromisoformat(run_after) if run_after else None,
            backend=alias,
        )
    except (InvalidTaskError, TypeError, ValueError) as exc:
        raise PermanentError(f"task {path} is not valid for its backend: {exc}") from exc


def _task_result(job, attempts: list, *, task: Task) -> TaskResult:
    last = attempts[-1].number if attempts else 0
    worker_ids = [a.worker for a in attempts]
    if job.status == "active" and job.worker and job.attempts_made > last:
        worker_ids.append(job.worker)  # the running attempt's row is written when it ends
    result = TaskResult(
        task=task,
        id=str(job.pk),
        status=STATUS_MAP[job.status],
        enqueued_at=job.created_at,
        started_at=attempts[0].started_at if attempts else job.started_at,
        finished_at=job.finished_at if job.status in _FINISHED else None,
        last_attempted_at=job.started_at or (attempts[-1].started_at if attempts else None),
        args=job.payload["args"],
        kwargs=job.payload["kwargs"],
        backend=task.backend,
        errors=_errors(job, attempts),
        worker_ids=worker_ids,
    )
    if job.status == "completed":
        object.__setattr__(result, "_return_value", job.result)
    return result


def _errors(job, attempts: list) -> list[TaskError]:
    errors = [
        TaskError(
            exception_class_path=_exception_class_path(a.traceback, a.outcome),
            traceback=_without_note(a.traceback) or a.error,
        )
        for a in attempts
        if a.outcome != "completed"
    ]
    if not errors and job.status in ("failed", "cancelled"):
        # Failed without a failed attempt: cancelled (or failed) before it ran.
        errors.append(
            TaskError(
                exception_class_path=_exception_class_path("", job.status),
                traceback=job.error or f"the job was {job.status} before it ran",
            )
        )
    return errors


def _without_note(traceback: str) -> str:
    head, sep, tail = traceback.rpartition("\n" + _CLASS_NOTE)
    return head + "\n" if sep and "\n" not in tail.strip() else traceback


def _exception_class_path(traceback: str, outcome: str) -> str:
    for line in reversed(traceback.splitlines()):
        if line.startswith(_CLASS_NOTE):
            return line[len(_CLASS_NOTE) :].strip()
    if outcome == "timeout":
        return get_module_path(JobTimeout)
    if outcome == "cancelled":
        return get_module_path(JobCancelled)
    return get_module_path(PlatformTaskError)


# --- the worker side ----------------------------------------------------------------------


# No schema: the backend writes this payload itself, and whatever else names this handler
# is refused by _load_task when it runs (a PermanentError saying why), not at enqueue.
@job(
    HANDLER_NAME,
    attempts=1,
    example={
        "task": "myapp.tasks.send_welcome",
        "args": [42],
        "kwargs": {"locale": "en"},
        "backend": "default",
        "queue_name": "default",
        "priority": 0,
        "run_after": None,
    },
)
def run_task(ctx, payload):
    """Run the Task that a ``PlatformTaskBackend`` enqueued; its return value is the job's
    result. Whatever it raises fails the job, noted with the exception's class path."""
    try:
        return _run(ctx, payload)
    except BaseException as exc:
        note = _CLASS_NOTE + get_module_path(type(exc))
        if note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)
        raise


def _run(ctx, payload):
    task = _load_task(payload)
    sender = type(task.get_backend())
    job, attempts = _job_and_attempts(ctx.job_id)
    result = _task_result(job, attempts, task=task)  # RUNNING: the job is active
    task_started.send_robust(sender, task_result=result)
    args, kwargs = payload["args"], payload["kwargs"]
    try:
        if task.takes_context:
            value = task.call(TaskContext(task_result=result), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
        value = _to_json(value)
    except BaseException as exc:
        error = TaskError(
            exception_class_path=get_module_path(type(exc)),
            traceback=get_exception_traceback(exc),
        )
        result.errors.append(error)
        _finished(result, sender, TaskResultStatus.FAILED)
        raise
    object.__setattr__(result, "_return_value", value)
    _finished(result, sender, _SUCCESSFUL)
    return value


def _finished(result: TaskResult, sender: type, status: TaskResultStatus) -> None:
    # Sent as the task returns; the ledger records the outcome right after.
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", timezone.now())
    task_finished.send_robust(sender, task_result=result)
