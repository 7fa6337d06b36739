"""Enqueue: validate everything first, then write in one transaction, then ring on commit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext

from queues import audit, doorbell
from queues.audit import Actor
from queues.exceptions import EnqueueError, UnknownDependency
from queues.models import Job, JobStatus
from queues.services.dependencies import (
    dependency_edges,
    initial_status,
    link,
    lock_parents,
    topological_order,
)
from queues.services.notify import job_status_changed
from queues.services.planning import Planned, plan, validate_job
from queues.services.writing import announce, insert_jobs

__all__ = ["enqueue", "enqueue_many", "validate_job"]


def enqueue(
    name: str, payload: Any = None, *, by: Actor = None, durable: bool = True, **options: Any
) -> Job:
    """Enqueue one job and return it.

    Options (keyword-only): ``queue``, ``priority`` (1..10), ``delay`` (seconds or
    timedelta), ``run_at`` (aware datetime), ``attempts``, ``backoff``, ``timeout``
    (seconds), ``depends_on`` (job ids; the job stays ``blocked`` until they finish),
    ``dependencies_mode`` (``"required"``: a failed or cancelled parent fails this job;
    ``"optional"``: it runs anyway), ``unique_key`` (returns the queue's unfinished job
    with that key instead of adding a second). Raises ``EnqueueError`` (and subclasses)
    before writing anything. Workers are woken when the caller's transaction commits.

    ``by`` (a user or a label such as ``"manage.py"``): who asked, for an operator's
    enqueue; it writes an audit row with the job. Application code enqueueing its own
    work leaves it out: the job row is the record, and the hot path stays one INSERT.

    ``durable=False`` (Postgres): enqueue's own commit does not wait for its WAL flush
    (``synchronous_commit = off`` for that one transaction; see the README's Guarantees).
    The call returns sooner; if the Postgres server itself crashes within about 0.6 s
    after it, the job can be lost (never half-written). Inside the caller's transaction
    the commit is the caller's: then it is refused.
    """
    planned = plan(name, payload, options, timezone.now())
    if by is None and (durable or _one_statement(planned)):
        return _write([planned], durable=durable)[0]
    with _own_commit(durable):
        (job,) = _write([planned])
        if by is not None:
            _audit(by, [job])
    return job


def enqueue_many(
    specs: Iterable[Mapping[str, Any]], *, by: Actor = None, durable: bool = True
) -> list[Job]:
    """Enqueue many jobs in one transaction (one INSERT). Each spec is a mapping with
    ``name``, ``payload`` and any ``enqueue`` option, plus an optional ``ref`` that later
    or earlier specs may name in their ``depends_on`` (flows). All are validated first:
    one bad spec writes nothing."""
    now = timezone.now()
    planned: list[Planned] = []
    refs: dict[str, int] = {}
    for index, spec in enumerate(specs):
        try:
            if not isinstance(spec, Mapping) or "name" not in spec:
                raise EnqueueError(gettext("each spec must be a mapping with a 'name'"))
            options = {k: v for k, v in spec.items() if k not in ("name", "payload", "ref")}
            item = plan(spec["name"], spec.get("payload"), options, now)
            ref = spec.get("ref")
            if ref is not None:
                if not isinstance(ref, str) or ref in refs:
                    raise EnqueueError(
                        gettext("ref must be a unique string, got %(ref)s") % {"ref": repr(ref)}
                    )
                refs[ref] = index
                item.ref = ref
        except EnqueueError as exc:
            raise type(exc)(
                gettext("job #%(index)s: %(error)s") % {"index": index, "error": exc}
            ) from None
        planned.append(item)
    if not planned:
        return []
    if by is None and durable:
        return _write(planned, refs=refs)
    with _own_commit(durable):
        jobs = _write(planned, refs=refs)
        if by is not None:
            _audit(by, jobs)
    return jobs


def _one_statement(planned: Planned) -> bool:
    """Whether this job is written by one statement that is its own transaction, so that
    ``durable=False`` can ride on that statement (no BEGIN, SET and COMMIT round trips)."""
    job = planned.job
    return (
        connection.vendor == "postgresql"
        and not transaction.get_connection().in_atomic_block
        and not planned.depends_on
        and not job.unique_key
        and not job.webhook_url
    )


@contextmanager
def _own_commit(durable: bool) -> Iterator[None]:
    """enqueue's own transaction; ``durable=False``: its commit does not wait for the
    WAL flush (group commit: the WAL writer flushes it within 3 x wal_writer_delay)."""
    if not durable and transaction.get_connection().in_atomic_block:
        raise EnqueueError(
            gettext(
                "durable=False is about enqueue's own commit; inside a transaction the commit "
                "is the caller's (leave durable out, or call enqueue outside the transaction)"
            )
        )
    with transaction.atomic():
        if not durable and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        yield


def _audit(by: Actor, jobs: list[Job]) -> None:
    created = [j for j in jobs if j.was_created]
    audit.record(
        by=by,
        action="enqueue",
        target=str(jobs[0].pk) if len(jobs) == 1 else "",
        count=len(created),
        names=sorted({j.name for j in jobs}),
    )


def _write(
    planned: list[Planned], refs: Mapping[str, int] | None = None, *, durable: bool = True
) -> list[Job]:
    refs = refs or {}
    edges = dependency_edges(planned, refs)
    order = topological_order(planned, edges, refs)
    if len(planned) == 1 and not edges[0] and not planned[0].job.unique_key:
        # One plain job: a single INSERT, no transaction round trips around it.
        (job,) = insert_jobs([planned[0].job], durable=durable)
        if job.webhook_url:
            with transaction.atomic():
                job_status_changed([job.pk], webhook_ids=[job.pk])
        if job.status == JobStatus.WAITING:
            doorbell.ring_on_commit([job.queue.name])
        announce([job])
        return [job]
    with transaction.atomic():
        existing = [p for deps in edges for kind, p in deps if kind == "id"]
        statuses = lock_parents(existing)
        missing = [str(p) for p in existing if p not in statuses]
        if missing:
            raise UnknownDependency(
                gettext("no job has id %(id)s (depends_on)") % {"id": missing[0]}
            )
        # Decide each job's first status, parents before children.
        for index in order:
            item = planned[index]
            parent_statuses = [
                statuses[p] if kind == "id" else planned[p].job.status for kind, p in edges[index]
            ]
            initial_status(item, parent_statuses)
        jobs = insert_jobs([p.job for p in planned])
        link(planned, edges, jobs)
        hooked = [j.pk for j in jobs if j.webhook_url]
        if hooked:
            job_status_changed(hooked, webhook_ids=hooked)
        doorbell.ring_on_commit(j.queue.name for j in jobs if j.status == JobStatus.WAITING)
        announce([j for j in jobs if j.was_created])
    return jobs
