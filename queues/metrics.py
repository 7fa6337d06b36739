"""Time buckets and snapshots behind the dashboard.

``record_outcomes`` counts a finalized batch in memory and ``flush`` adds it to the
queue's minute buckets, the handlers' all-time counters and their hour buckets about once
a second (one upsert per bucket); ``refresh_snapshots`` (maintenance loop, every few
seconds) stores each queue's counts by status. Page views read only these.
"""

from __future__ import annotations

import bisect
import json
import os
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, F, Min
from django.utils import timezone

from queues.durations import duration_ms
from queues.models import (
    HandlerHour,
    HandlerStats,
    Job,
    JobStatus,
    Queue,
    QueueMinute,
    QueueSnapshot,
    Worker,
)
from queues.priority import MAX_PRIORITY, MIN_PRIORITY

# Upper bounds (ms) of the duration histogram bins; the last bin is open-ended.
DURATION_BINS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000)
SUPERVISOR_ENV = "JOBPLATFORM_SUPERVISOR"

# One upsert per bucket: counters add up, the histograms add up element by element.
_UPSERT_SQL = """
INSERT INTO {table} ({keys}, completed, failed, retried, duration_ms_sum, histogram)
VALUES ({key_params}, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT ({keys}) DO UPDATE SET
    completed = {table}.completed + EXCLUDED.completed,
    failed = {table}.failed + EXCLUDED.failed,
    retried = {table}.retried + EXCLUDED.retried,
    duration_ms_sum = {table}.duration_ms_sum + EXCLUDED.duration_ms_sum,
    histogram = (
        SELECT jsonb_agg(COALESCE(a.n::bigint, 0) + COALESCE(b.n::bigint, 0)
                         ORDER BY COALESCE(a.i, b.i))
        FROM jsonb_array_elements_text({table}.histogram) WITH ORDINALITY a(n, i)
        FULL JOIN jsonb_array_elements_text(EXCLUDED.histogram) WITH ORDINALITY b(n, i)
            ON a.i = b.i
    )
"""


def duration_bin(ms: int) -> int:
    return bisect.bisect_left(DURATION_BINS_MS, ms)


# Bucket deltas and jobs done, gathered in this process and written by ``flush`` outside
# the finalize transaction: two workers of a queue never wait on each other's bucket row.
_pending_lock = threading.Lock()
_pending: dict[tuple[int, datetime], list] = {}
# Per queue, handler and hour: flush writes the hour buckets and sums them per queue and
# handler into HandlerStats (one dict update per attempt on the hot path, not two).
_pending_handlers: dict[tuple[int, str, datetime], list] = {}
_pending_done = 0
_last_flush = 0.0
FLUSH_SECONDS = 1.0


def record_outcomes(outcomes) -> None:
    """Count finished attempts into this process's pending buckets. Called after commit,
    from the drain or from the keeper thread (outcomes written behind a long job)."""
    with _pending_lock:
        _record(outcomes)


def _record(outcomes) -> None:
    global _pending_done
    for o in outcomes:
        if not o.counted:
            continue
        ms = duration_ms(o.started_at, o.finished_at)
        slot = 0 if o.status == JobStatus.COMPLETED else 1 if o.status == JobStatus.FAILED else 2
        minute = o.finished_at.replace(second=0, microsecond=0)
        for store, key in (
            (_pending, (o.job.queue_id, minute)),
            (_pending_handlers, (o.job.queue_id, o.job.name, minute.replace(minute=0))),
        ):
            bucket = store.setdefault(key, [0, 0, 0, 0, [0] * (len(DURATION_BINS_MS) + 1)])
            bucket[slot] += 1
            bucket[3] += ms
            bucket[4][duration_bin(ms)] += 1
        _pending_done += 1


def pending() -> bool:
    return bool(_pending)


def flush(*, force: bool = False) -> None:
    """Write pending bucket deltas (one upsert per queue and minute, per queue and handler,
    and per queue, handler and hour) and jobs done. Metrics only: a process killed before
    flushing loses at most a second of them, never a job."""
    global _pending_done, _last_flush
    now = time.monotonic()
    if not _pending or (not force and now - _last_flush < FLUSH_SECONDS):
        return
    with _pending_lock:  # the keeper thread may be adding to them right now
        minutes, handlers, done_count = dict(_pending), dict(_pending_handlers), _pending_done
        _pending.clear()
        _pending_handlers.clear()
        _pending_done = 0
    _last_flush = now
    # One transaction, one commit: a trickle of jobs flushes after almost every job.
    # Every bucket in key order: two workers flushing the same queues and handlers lock
    # their rows in one order, never in each other's way round (a deadlock).
    with transaction.atomic():
        for (queue_id, minute), counts in sorted(minutes.items()):
            _add(QueueMinute, {"queue_id": queue_id, "minute": minute}, counts)
        for (queue_id, name, hour), counts in sorted(handlers.items()):
            _add(HandlerHour, {"queue_id": queue_id, "name": name, "hour": hour}, counts)
        for (queue_id, name), counts in sorted(_sum_hours(handlers).items()):
            _add(HandlerStats, {"queue_id": queue_id, "name": name}, counts)
        supervisor = os.environ.get(SUPERVISOR_ENV)
        if supervisor and done_count:
            Worker.objects.filter(id=supervisor).update(jobs_done=F("jobs_done") + done_count)


def _sum_hours(handlers: dict[tuple[int, str, datetime], list]) -> dict[tuple[int, str], list]:
    """The hour buckets' deltas summed per queue and handler (a flush rarely spans two
    hours, so usually one bucket each)."""
    totals: dict[tuple[int, str], list] = {}
    for (queue_id, name, _hour), (done, failed, retried, total_ms, hist) in handlers.items():
        key = (queue_id, name)
        if key not in totals:
            totals[key] = [done, failed, retried, total_ms, list(hist)]
            continue
        into = totals[key]
        into[0] += done
        into[1] += failed
        into[2] += retried
        into[3] += total_ms
        into[4] = [a + b for a, b in zip(into[4], hist, strict=True)]
    return totals


def _add(model, keys: dict, counts: list) -> None:
    done, failed, retried, total_ms, hist = counts
    if connection.vendor == "postgresql":
        sql = _UPSERT_SQL.format(
            table=model._meta.db_table,
            keys=", ".join(keys),
            key_params=", ".join(["%s"] * len(keys)),
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*keys.values(), done, failed, retried, total_ms, json.dumps(hist)])
        return
    with transaction.atomic():
        row, _ = model.objects.select_for_update().get_or_create(
            **keys, defaults={"histogram": [0] * len(hist)}
        )
        row.completed += done
        row.failed += failed
        row.retried += retried
        row.duration_ms_sum += total_ms
        old = row.histogram or [0] * len(hist)
        row.histogram = [a + b for a, b in zip(old, hist, strict=False)]
        row.save()


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
    oldest = _oldest_waiting()
    for queue_id in Queue.objects.values_list("id", flat=True):
        QueueSnapshot.objects.update_or_create(
            queue_id=queue_id,
            defaults={
                "counts": {s.value: counts[queue_id].get(s.value, 0) for s in JobStatus},
                "oldest_waiting_at": oldest.get(queue_id),
                "refreshed_at": now,
            },
        )


# Each queue's oldest waiting job from the claim index (queue, priority, created_at): the
# first entry of each priority, ten probes a queue, however many jobs wait. (A GROUP BY
# over the waiting jobs reads every one of them, and an index of its own on
# (queue, created_at) would be one more entry to write for every enqueued job.)
_OLDEST_WAITING_SQL = """
SELECT q.id, (
    SELECT min(first.created_at)
    FROM generate_series(%(min_priority)s::int, %(max_priority)s::int) AS p(priority)
    CROSS JOIN LATERAL (
        SELECT j.created_at FROM queues_job AS j
        WHERE j.queue_id = q.id AND j.status = 'waiting' AND j.priority = p.priority
        ORDER BY j.created_at
        LIMIT 1
    ) AS first
)
FROM queues_queue AS q
"""


def _oldest_waiting() -> dict[int, datetime | None]:
    if connection.vendor != "postgresql":
        return dict(
            Job.objects.filter(status=JobStatus.WAITING)
            .order_by()
            .values_list("queue_id")
            .annotate(oldest=Min("created_at"))
        )
    with connection.cursor() as cursor:
        cursor.execute(
            _OLDEST_WAITING_SQL, {"min_priority": MIN_PRIORITY, "max_priority": MAX_PRIORITY}
        )
        return {queue_id: oldest for queue_id, oldest in cursor.fetchall() if oldest}


HANDLER_HOURS_KEEP = timedelta(hours=72)


def prune_buckets(
    *,
    keep: timedelta = timedelta(hours=48),
    keep_handler_hours: timedelta = HANDLER_HOURS_KEEP,
    now: datetime | None = None,
) -> int:
    """Delete minute buckets older than ``keep`` and handler hours that ended more than
    ``keep_handler_hours`` ago; the number of rows deleted."""
    now = now or timezone.now()
    minutes, _ = QueueMinute.objects.filter(minute__lt=now - keep).delete()
    # The hour holding now - 72 h still overlaps the metrics page's 72 h window: kept.
    oldest_kept = (now - keep_handler_hours).replace(minute=0, second=0, microsecond=0)
    hours, _ = HandlerHour.objects.filter(hour__lt=oldest_kept).delete()
    return minutes + hours
