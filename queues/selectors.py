"""Reads of queues and jobs."""

from __future__ import annotations

from django.db.models import Count

from queues.models import Job, JobStatus, Queue


def queue_counts() -> list[dict]:
    """Every queue with its paused flag and job counts by status (one grouped query)."""
    counts: dict[int, dict[str, int]] = {}
    rows = Job.objects.order_by().values_list("queue_id", "status").annotate(n=Count("id"))
    for queue_id, status, n in rows:
        counts.setdefault(queue_id, {})[status] = n
    result = []
    for queue in Queue.objects.order_by("name"):
        by_status = {
            status.value: counts.get(queue.pk, {}).get(status.value, 0) for status in JobStatus
        }
        result.append(
            {
                "name": queue.name,
                "paused": queue.paused,
                "counts": by_status,
                "total": sum(by_status.values()),
            }
        )
    return result
