"""Time buckets and snapshots behind the dashboard.

``record_outcomes`` counts a finalized batch in memory and ``flush`` adds it to the
queue's minute buckets about once a second (one upsert per queue and minute);
``refresh_snapshots`` (maintenance loop, every few
seconds) stores each queue's counts by status. Page views read only these.
"""

from __future__ import annotations

import bisect
import json
import os
import time
from collections import defaultdict
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, F, Min, Sum
from django.utils import timezone

from queues.models import Job, JobStatus, Queue, QueueMinute, QueueSnapshot, Worker

# Upper bounds (ms) of the duration histogram bins; the last bin is open-ended.
DURATION_BINS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000)
SUPERVISOR_ENV = "JOBPLATFORM_SUPERVISOR"

_UPSERT_SQL = """
INSERT INTO queues_queueminute
    (queue_id, minute, completed, failed, retried, duration_ms_sum, histogram)
VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (queue_id, minute) DO UPDATE SET
    completed = queues_queueminute.completed + EXCLUDED.completed,
    failed = queues_queueminute.failed + EXCLUDED.failed,
    retried = queues_queueminute.retried + EXCLUDED.retried,
    duration_ms_sum = queues_queueminute.duration_ms_sum + EXCLUDED.duration_ms_sum,
    histogram = (
        SELECT jsonb_agg(COALESCE(a.n::bigint, 0) + COALESCE(b.n::bigint, 0)
                         ORDER BY COALESCE(a.i, b.i))
        FROM jsonb_array_elements_text(queues_queueminute.histogram) WITH ORDINALITY a(n, i)
        FULL JOIN jsonb_array_elements_text(EXCLUDED.histogram) WITH ORDINALITY b(n, i)
            ON a.i = b.i
    )
"""


def duration_bin(ms: int) -> int:
    return bisect.bisect_left(DURATION_BINS_MS, ms)


# Bucket deltas and jobs done, gathered in this process and written by ``flush`` outside
# the finalize transaction: two workers of a queue never wait on each other's bucket row.
_pending: dict[tuple[int, datetime], list] = {}
_pending_done = 0
_last_flush = 0.0
FLUSH_SECONDS = 1.0


def record_outcomes(outcomes) -> None:
    """Count finished attempts into this process's pending buckets."""
    global _pending_done
    for o in outcomes:
        if not o.counted:
            continue
        key = (o.job.queue_id, o.finished_at.replace(second=0, microsecond=0))
        bucket = _pending.setdefault(key, [0, 0, 0, 0, [0] * (len(DURATION_BINS_MS) + 1)])
        ms = max(int((o.finished_at - o.started_at).total_seconds() * 1000), 0)
        if o.status == JobStatus.COMPLETED:
            bucket[0] += 1
        elif o.status == JobStatus.FAILED:
            bucket[1] += 1
        else:
            bucket[2] += 1
        bucket[3] += ms
        bucket[4][duration_bin(ms)] += 1
        _pending_done += 1


def flush(*, force: bool = False) -> None:
    """Write pending bucket deltas (one upsert per queue and minute) and jobs done. Metrics
    only: a process killed before flushing loses at most a second of them, never a job."""
    global _pending_done, _last_flush
    now = time.monotonic()
    if not _pending or (not force and now - _last_flush < FLUSH_SECONDS):
        return
    buckets, done_count = dict(_pending), _pending_done
    _pending.clear()
    _pending_done = 0
    _last_flush = now
    for (queue_id, minute), (done, failed, retried, total_ms, hist) in buckets.items():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    _UPSERT_SQL,
                    [queue_id, minute, done, failed, retried, total_ms, json.dumps(hist)],
                )
        else:
            with transaction.atomic():
                row, _ = QueueMinute.objects.select_for_update().get_or_create(
                    queue_id=queue_id, minute=minute, defaults={"histogram": [0] * len(hist)}
                )
                row.completed += done
                row.failed += failed
                row.retried += retried
                row.duration_ms_sum += total_ms
                old = row.histogram or [0] * len(hist)
                row.histogram = [a + b for a, b in zip(old, hist, strict=False)]
                row.save()
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor and done_count:
        Worker.objects.filter(id=supervisor).update(jobs_done=F("jobs_done") + done_count)


def percentile_from_histogram(histogram: list[int], q: float) -> int | None:
    """The upper bound (ms) of the bin holding the q-th quantile (None: no data)."""
    total = sum(histogram)
    if not total:
        return None
    rank, seen = q * total, 0
    for index, n in enumerate(histogram):
        seen += n
        if seen >= rank:
            return DURATION_BINS_MS[index] if index < len(DURATION_BINS_MS) else None
    return None


def refresh_snapshots(now: datetime | None = None) -> None:
    """Store every queue's counts by status (one grouped query over the status index)."""
    now = now or timezone.now()
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for queue_id, status, n in (
        # COUNT(*), not COUNT(id): Postgres can answer it from job_queue_status_idx alone.
        Job.objects.order_by().values_list("queue_id", "status").annotate(n=Count("*"))
    ):
        counts[queue_id][status] = n
    oldest = dict(
        Job.objects.filter(status=JobStatus.WAITING)
        .order_by()
        .values_list("queue_id")
        .annotate(oldest=Min("created_at"))
    )
    for queue_id in Queue.objects.values_list("id", flat=True):
        QueueSnapshot.objects.update_or_create(
            queue_id=queue_id,
            defaults={
                "counts": {s.value: counts[queue_id].get(s.value, 0) for s in JobStatus},
                "oldest_waiting_at": oldest.get(queue_id),
                "refreshed_at": now,
            },
        )


def minute_series(*, since: datetime, queue_id: int | None = None) -> dict:
    """Per-minute completed/failed since ``since`` (all queues, or one)."""
    rows = QueueMinute.objects.filter(minute__gte=since)
    if queue_id is not None:
        rows = rows.filter(queue_id=queue_id)
    return {
        minute: (done, failed)
        for minute, done, failed in rows.values("minute")
        .annotate(done=Sum("completed"), failed=Sum("failed"))
        .values_list("minute", "done", "failed")
    }


def prune_buckets(*, keep: timedelta = timedelta(hours=48)) -> int:
    deleted, _ = QueueMinute.objects.filter(minute__lt=timezone.now() - keep).delete()
    return deleted
