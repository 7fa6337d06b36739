"""Job dependencies (seed 003's flows): a ``blocked`` job starts when its parents finish.

A required parent that fails or is cancelled fails its blocked children at once (and
theirs, in cascade); otherwise a child starts when its last parent finishes.
Resolution runs in the transaction that finishes a parent. It locks each blocked child
*before* reading its parents' statuses, in a new statement, so two parents finishing at
the same time in two transactions cannot both miss the moment the last one finished
(fan-in).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from uuid import UUID

from django.utils import timezone

from queues.models import FINAL_STATUSES, Job, JobDependency, JobStatus

FAILING_PARENT = (JobStatus.FAILED, JobStatus.CANCELLED)


def resolve_dependants(parent_ids: Iterable[UUID]) -> list[str]:
    """Unblock or fail the blocked dependants of finished parents, cascading through
    failures. Must run inside the parents' transaction. Returns queue names to wake."""
    frontier = list(parent_ids)
    wake: set[str] = set()
    changed: list[UUID] = []
    while frontier:
        children = list(
            Job.objects.select_for_update(of=("self",))
            .filter(
                status=JobStatus.BLOCKED,
                id__in=JobDependency.objects.filter(parent_id__in=frontier).values("job_id"),
            )
            .order_by("id")
            .values_list("id", flat=True)
        )
        frontier = []
        if not children:
            break
        parents: dict[UUID, list[tuple[UUID, str, bool]]] = defaultdict(list)
        for child, parent, status, required in JobDependency.objects.filter(
            job_id__in=children
        ).values_list("job_id", "parent_id", "parent__status", "required"):
            parents[child].append((parent, status, required))
        now = timezone.now()
        for child in children:
            links = parents[child]
            # A required parent that failed decides at once: the child can never run, and
            # must not wait (a later clean-up could delete the only record of the failure).
            broken = [(p, s) for p, s, required in links if required and s in FAILING_PARENT]
            if not broken and any(status not in FINAL_STATUSES for _, status, _ in links):
                continue
            if broken:
                parent, status = broken[0]
                Job.objects.filter(pk=child, status=JobStatus.BLOCKED).update(
                    status=JobStatus.FAILED,
                    error=f"dependency {parent} {status}; this job needed it to complete",
                    finished_at=now,
                )
                frontier.append(child)
                changed.append(child)
            else:
                job = Job.objects.select_related("queue").get(pk=child)
                delayed = job.run_at is not None and job.run_at > now
                Job.objects.filter(pk=child, status=JobStatus.BLOCKED).update(
                    status=JobStatus.DELAYED if delayed else JobStatus.WAITING
                )
                changed.append(child)
                if not delayed:
                    wake.add(job.queue.name)
    if changed:
        from queues import events

        events.status_changed(changed)
    return sorted(wake)
