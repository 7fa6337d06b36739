"""Job dependencies (flows): a ``blocked`` job starts when its parents finish.

At enqueue: the edges of a batch (parents named by job id, or by the ``ref`` of another
spec in the same batch), cycle detection, and each child's first status. At finish: a
required parent that fails or is cancelled fails its blocked children at once (and
theirs, in cascade); otherwise a child starts when its last parent finishes.
Resolution runs in the transaction that finishes a parent. It locks each blocked child
*before* reading its parents' statuses, in a new statement, so two parents finishing at
the same time in two transactions cannot both miss the moment the last one finished
(fan-in).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext

from queues.exceptions import EnqueueError
from queues.locks import lock_jobs
from queues.models import FINAL_STATUSES, Job, JobDependency, JobStatus
from queues.services.notify import job_status_changed
from queues.services.planning import Planned

FAILING_PARENT = (JobStatus.FAILED, JobStatus.CANCELLED)


def resolve_dependants(parent_ids: Iterable[UUID]) -> list[str]:
    """Unblock or fail the blocked dependants of finished parents, cascading through
    failures. Must run inside the parents' transaction. Returns queue names to wake.

    Set-based: per level of the cascade, one statement locks the children, one reads
    their parents' statuses, and one each fails, delays or unblocks them, however many
    children a parent has."""
    frontier = list(parent_ids)
    wake: set[str] = set()
    changed: list[UUID] = []
    while frontier:
        children = list(
            lock_jobs(
                Job.objects.filter(
                    status=JobStatus.BLOCKED,
                    id__in=JobDependency.objects.filter(parent_id__in=frontier).values("job_id"),
                )
            ).values_list("id", "run_at", "queue__name")
        )
        frontier = []
        if not children:
            break
        # A new statement, after the locks: it sees every parent finished by a transaction
        # that held one of these children before us.
        parents: dict[UUID, list[tuple[UUID, str, bool]]] = defaultdict(list)
        for child, parent, status, required in JobDependency.objects.filter(
            job_id__in=[child for child, _, _ in children]
        ).values_list("job_id", "parent_id", "parent__status", "required"):
            parents[child].append((parent, status, required))
        now = timezone.now()
        failing: dict[UUID, str] = {}
        delayed: list[UUID] = []
        waiting: list[UUID] = []
        for child, run_at, queue in children:
            links = parents[child]
            # A required parent that failed decides at once: the child can never run, and
            # must not wait (a later clean-up could delete the only record of the failure).
            broken = sorted((p, s) for p, s, required in links if required and s in FAILING_PARENT)
            if broken:
                parent, status = broken[0]
                failing[child] = f"dependency {parent} {status}; this job needed it to complete"
            elif any(status not in FINAL_STATUSES for _, status, _ in links):
                continue
            elif run_at is not None and run_at > now:
                delayed.append(child)
            else:
                waiting.append(child)
                wake.add(queue)
            changed.append(child)
        _fail_blocked(failing, now)
        frontier = list(failing)
        for ids, status in ((delayed, JobStatus.DELAYED), (waiting, JobStatus.WAITING)):
            if ids:
                Job.objects.filter(id__in=ids, status=JobStatus.BLOCKED).update(status=status)
    job_status_changed(changed)
    return sorted(wake)


_FAIL_SQL = f"""
UPDATE {Job._meta.db_table} AS j SET status = %s, error = v.error, finished_at = %s
FROM unnest(%s::uuid[], %s::text[]) AS v(id, error)
WHERE j.id = v.id AND j.status = %s
"""


def _fail_blocked(errors: dict[UUID, str], now: datetime) -> None:
    """Fail the locked blocked children ``errors`` names, each with its own error, in one
    statement (Postgres), or in batches elsewhere (the embedded SQLite)."""
    if not errors:
        return
    if connection.vendor == "postgresql":
        params = [JobStatus.FAILED.value, now, list(errors), list(errors.values())]
        with connection.cursor() as cursor:
            cursor.execute(_FAIL_SQL, [*params, JobStatus.BLOCKED.value])
        return
    jobs = [
        Job(pk=child, status=JobStatus.FAILED, error=error, finished_at=now)
        for child, error in errors.items()
    ]
    Job.objects.bulk_update(jobs, ["status", "error", "finished_at"], batch_size=500)


# --- at enqueue ---------------------------------------------------------------------------


def dependency_edges(planned: list[Planned], refs: Mapping[str, int]) -> list[list]:
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
                    raise EnqueueError(
                        gettext("job #%(index)s: %(error)s") % {"index": index, "error": exc}
                    ) from None
        edges.append(list(dict.fromkeys(deps)))
    return edges


def topological_order(planned: list[Planned], edges: list[list], refs) -> list[int]:
    order, state = [], {}

    def visit(index: int, path: list[int]) -> None:
        if state.get(index) == "done":
            return
        if state.get(index) == "visiting":
            cycle = [*path[path.index(index) :], index]
            names = " -> ".join(planned[i].ref or f"#{i}" for i in cycle)
            raise EnqueueError(gettext("dependency cycle: %(cycle)s") % {"cycle": names})
        state[index] = "visiting"
        for kind, target in edges[index]:
            if kind == "ref":
                visit(target, [*path, index])
        state[index] = "done"
        order.append(index)

    for index in range(len(planned)):
        visit(index, [])
    return order


def lock_parents(ids: list[UUID]) -> dict[UUID, str]:
    if not ids:
        return {}
    # Locking the parents orders us after any finalize in flight: we see its outcome.
    return dict(lock_jobs(ids).values_list("id", "status"))


def initial_status(item: Planned, parent_statuses: list[str]) -> None:
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


def link(planned: list[Planned], edges: list[list], jobs: list[Job]) -> None:
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


def _job_id(value: Any) -> UUID:
    if isinstance(value, Job):
        return value.pk
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise EnqueueError(
            gettext("dependency %(value)s is not a job id") % {"value": repr(value)}
        ) from None
