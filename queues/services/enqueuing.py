"""Enqueue: validate everything first, then write in one transaction, then ring on commit."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from psycopg.types.json import Jsonb

from queues import doorbell, events, signals
from queues.backoff import normalize_backoff
from queues.exceptions import EnqueueError, UnknownDependency, UnknownQueue
from queues.models import (
    FINAL_STATUSES,
    UNFINISHED_STATUSES,
    Job,
    JobDependency,
    JobStatus,
    Queue,
)
from queues.priority import MAX_PRIORITY, MIN_PRIORITY
from queues.registry import get_handler

logger = logging.getLogger("queues")

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

# Queue rows by name, briefly cached: enqueue needs the id and defaults, not a query each time.
_QUEUE_CACHE_SECONDS = 2.0
_queue_cache: dict[str, tuple[Queue, float]] = {}


def _forget_queue(sender, instance: Queue, **kwargs) -> None:
    _queue_cache.pop(instance.name, None)


post_save.connect(_forget_queue, sender=Queue, dispatch_uid="queues.forget_queue.save")
post_delete.connect(_forget_queue, sender=Queue, dispatch_uid="queues.forget_queue.delete")


def get_queue(name: str) -> Queue:
    cached = _queue_cache.get(name)
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]
    queue = Queue.objects.filter(name=name).first() if isinstance(name, str) else None
    if queue is None:
        known = ", ".join(Queue.objects.order_by("name").values_list("name", flat=True))
        raise UnknownQueue(f"no queue is named {name!r} (queues: {known or 'none'})")
    _queue_cache[name] = (queue, time.monotonic() + _QUEUE_CACHE_SECONDS)
    return queue


def ring_on_commit(queue_names: Iterable[str]) -> None:
    names = sorted(set(queue_names))
    if names:
        transaction.on_commit(partial(doorbell.ring_soon, names))


# --- validation ---------------------------------------------------------------------------


@dataclass
class _Planned:
    job: Job
    depends_on: list[Any] = field(default_factory=list)
    required: bool = True
    ref: str | None = None


def _plan(name: str, payload: Any, options: Mapping[str, Any], now: datetime) -> _Planned:
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
        from queues.webhooks import check_webhook_url

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
    return _Planned(job=job, depends_on=depends_on, required=mode == "required")


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


def _job_id(value: Any) -> UUID:
    if isinstance(value, Job):
        return value.pk
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise EnqueueError(f"dependency {value!r} is not a job id") from None


# --- writing ------------------------------------------------------------------------------


def validate_job(name: str, payload: Any = None, **options: Any) -> None:
    """Check that ``enqueue(name, payload, **options)`` would be accepted, writing nothing
    (schedules use it to refuse a bad definition up front)."""
    _plan(name, payload, options, timezone.now())


def enqueue(name: str, payload: Any = None, **options: Any) -> Job:
    """Enqueue one job and return it.

    Options (keyword-only): ``queue``, ``priority`` (1..10), ``delay`` (seconds or
    timedelta), ``run_at`` (aware datetime), ``attempts``, ``backoff``, ``timeout``
    (seconds), ``depends_on`` (job ids; the job stays ``blocked`` until they finish),
    ``dependencies_mode`` (``"required"``: a failed or cancelled parent fails this job;
    ``"optional"``: it runs anyway), ``unique_key`` (returns the queue's unfinished job
    with that key instead of adding a second). Raises ``EnqueueError`` (and subclasses)
    before writing anything. Workers are woken when the caller's transaction commits.
    """
    planned = _plan(name, payload, options, timezone.now())
    return _write([planned])[0]


def enqueue_many(specs: Iterable[Mapping[str, Any]]) -> list[Job]:
    """Enqueue many jobs in one transaction (one INSERT). Each spec is a mapping with
    ``name``, ``payload`` and any ``enqueue`` option, plus an optional ``ref`` that later
    or earlier specs may name in their ``depends_on`` (flows). All are validated first:
    one bad spec writes nothing."""
    now = timezone.now()
    planned: list[_Planned] = []
    refs: dict[str, int] = {}
    for index, spec in enumerate(specs):
        try:
            if not isinstance(spec, Mapping) or "name" not in spec:
                raise EnqueueError("each spec must be a mapping with a 'name'")
            options = {k: v for k, v in spec.items() if k not in ("name", "payload", "ref")}
            item = _plan(spec["name"], spec.get("payload"), options, now)
            ref = spec.get("ref")
            if ref is not None:
                if not isinstance(ref, str) or ref in refs:
                    raise EnqueueError(f"ref must be a unique string, got {ref!r}")
                refs[ref] = index
                item.ref = ref
        except EnqueueError as exc:
            raise type(exc)(f"job #{index}: {exc}") from None
        planned.append(item)
    if not planned:
        return []
    return _write(planned, refs=refs)


def _write(planned: list[_Planned], refs: Mapping[str, int] | None = None) -> list[Job]:
    refs = refs or {}
    edges = _dependency_edges(planned, refs)
    order = _topological_order(planned, edges, refs)
    if len(planned) == 1 and not edges[0] and not planned[0].job.unique_key:
        # One plain job: a single INSERT, no transaction round trips around it.
        job = planned[0].job
        job.was_created = True
        if connection.vendor == "postgresql":
            _copy([job])
        else:
            job.save(force_insert=True)
        if job.webhook_url:
            with transaction.atomic():
                events.status_changed([job.pk], webhook_ids=[job.pk])
        if job.status == JobStatus.WAITING:
            ring_on_commit([job.queue.name])
        _announce([job])
        return [job]
    with transaction.atomic():
        existing = [p for deps in edges for kind, p in deps if kind == "id"]
        statuses = _lock_parents(existing)
        missing = [str(p) for p in existing if p not in statuses]
        if missing:
            raise UnknownDependency(f"no job has id {missing[0]} (depends_on)")
        # Decide each job's first status, parents before children.
        for index in order:
            item = planned[index]
            parent_statuses = [
                statuses[p] if kind == "id" else planned[p].job.status for kind, p in edges[index]
            ]
            _initial_status(item, parent_statuses)
        jobs = _insert([p.job for p in planned])
        _link(planned, edges, jobs)
        hooked = [j.pk for j in jobs if j.webhook_url]
        if hooked:
            events.status_changed(hooked, webhook_ids=hooked)
        ring_on_commit(j.queue.name for j in jobs if j.status == JobStatus.WAITING)
        _announce([j for j in jobs if j.was_created])
    return jobs


def _announce(jobs: list[Job]) -> None:
    if signals.job_enqueued.has_listeners():
        signals.send_on_commit(
            signals.job_enqueued,
            [{"job_id": j.pk, "queue": j.queue.name, "name": j.name} for j in jobs],
        )


def _dependency_edges(planned: list[_Planned], refs: Mapping[str, int]) -> list[list]:
    edges = []
    for index, item in enumerate(planned):
        deps = []
        for value in item.depends_on:
            if isinstance(value, str) and value in refs:
                deps.append(("ref", refs[value]))
            else:
                try:
                    deps.append(("id", _job_id(value)))
                except EnqueueError as exc:
                    raise EnqueueError(f"job #{index}: {exc}") from None
        edges.append(list(dict.fromkeys(deps)))
    return edges


def _topological_order(planned: list[_Planned], edges: list[list], refs) -> list[int]:
    order, state = [], {}

    def visit(index: int, path: list[int]) -> None:
        if state.get(index) == "done":
            return
        if state.get(index) == "visiting":
            cycle = [*path[path.index(index) :], index]
            names = " -> ".join(planned[i].ref or f"#{i}" for i in cycle)
            raise EnqueueError(f"dependency cycle: {names}")
        state[index] = "visiting"
        for kind, target in edges[index]:
            if kind == "ref":
                visit(target, [*path, index])
        state[index] = "done"
        order.append(index)

    for index in range(len(planned)):
        visit(index, [])
    return order


def _lock_parents(ids: list[UUID]) -> dict[UUID, str]:
    if not ids:
        return {}
    # Locking the parents orders us after any finalize in flight: we see its outcome.
    return dict(
        Job.objects.select_for_update()
        .filter(id__in=set(ids))
        .order_by("id")
        .values_list("id", "status")
    )


def _initial_status(item: _Planned, parent_statuses: list[str]) -> None:
    if not parent_statuses:
        return
    job = item.job
    if any(s not in FINAL_STATUSES for s in parent_statuses):
        job.status = JobStatus.BLOCKED
    elif item.required and any(
        s in (JobStatus.FAILED, JobStatus.CANCELLED) for s in parent_statuses
    ):
        job.status = JobStatus.FAILED
        job.error = "a required dependency had already failed or been cancelled"
        job.finished_at = timezone.now()


def _insert(jobs: list[Job]) -> list[Job]:
    """Insert the jobs; a job whose unique_key is taken by an unfinished job of its queue
    is replaced by that job (the database constraint decides, not a Python check)."""
    for job in jobs:
        job.was_created = True  # False on an existing job returned for its unique_key
    if not any(j.unique_key for j in jobs):
        if connection.vendor == "postgresql":
            _copy(jobs)
        else:
            Job.objects.bulk_create(jobs, batch_size=1000)
        return jobs
    result = list(jobs)
    pending = list(range(len(jobs)))
    for _ in range(3):
        Job.objects.bulk_create([jobs[i] for i in pending], batch_size=1000, ignore_conflicts=True)
        inserted = set(
            Job.objects.filter(id__in=[jobs[i].id for i in pending]).values_list("id", flat=True)
        )
        still = []
        for i in pending:
            job = jobs[i]
            if job.id in inserted:
                continue
            # Locked, like a dependency parent: it cannot finish before our links commit.
            other = (
                Job.objects.select_for_update(of=("self",))
                .select_related("queue")
                .filter(queue=job.queue, unique_key=job.unique_key, status__in=UNFINISHED_STATUSES)
                .first()
            )
            if other is None:
                still.append(i)  # it finished meanwhile: insert ours after all
            else:
                other.was_created = False
                result[i] = other
        if not still:
            return result
        pending = still
    raise EnqueueError("unique_key kept conflicting; try again")


# COPY writes many rows far faster than INSERT: no SQL to build, no parameters to adapt
# one by one. The column list is the Job model's; a test compares them.
COPY_COLUMNS = (
    "id",
    "queue_id",
    "name",
    "payload",
    "status",
    "priority",
    "attempts_made",
    "attempts_base",
    "max_attempts",
    "backoff",
    "timeout",
    "run_at",
    "progress",
    "result",
    "error",
    "created_at",
    "started_at",
    "finished_at",
    "locked_until",
    "worker",
    "stalled_count",
    "unique_key",
    "has_dependants",
    "webhook_url",
)


_INSERT_SQL = (
    f"INSERT INTO queues_job ({', '.join(COPY_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(COPY_COLUMNS))})"
)


def _row(job: Job, now) -> tuple:
    job.created_at = now  # what auto_now_add would have set
    # fmt: off
    return (
        job.id, job.queue_id, job.name, Jsonb(job.payload), job.status, job.priority, 0, 0,
        job.max_attempts, Jsonb(job.backoff), job.timeout, job.run_at, 0, None, job.error, now,
        None, job.finished_at, None, "", 0, job.unique_key, job.has_dependants, job.webhook_url,
    )
    # fmt: on


def _copy(jobs: list[Job]) -> None:
    """Insert new jobs (Postgres): one prepared INSERT for one job, COPY for many."""
    now = timezone.now()
    with connection.cursor() as cursor:
        if len(jobs) == 1:
            cursor.execute(_INSERT_SQL, _row(jobs[0], now))
        else:
            sql = f"COPY queues_job ({', '.join(COPY_COLUMNS)}) FROM STDIN"
            with connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:
                for job in jobs:
                    copy.write_row(_row(job, now))
    for job in jobs:
        job._state.adding = False
        job._state.db = "default"


def _link(planned: list[_Planned], edges: list[list], jobs: list[Job]) -> None:
    links, parents = [], set()
    for index, deps in enumerate(edges):
        if not deps or jobs[index] is not planned[index].job:
            continue  # no dependencies, or deduplicated to an existing job
        for kind, target in deps:
            parent = target if kind == "id" else jobs[target].pk
            links.append(
                JobDependency(job=jobs[index], parent_id=parent, required=planned[index].required)
            )
            parents.add(parent)
    if links:
        JobDependency.objects.bulk_create(links, batch_size=1000)
        Job.objects.filter(id__in=parents).update(has_dependants=True)
