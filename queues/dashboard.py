"""The dashboard: per-queue counts, latency, throughput charts, failure rate, durations,
alerts, workers and (from other apps' panels) schedules due next.

Everything comes from ``QueueSnapshot`` (counts refreshed by the maintenance loop) and
``QueueMinute`` buckets; a page view never counts the jobs table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Sum
from django.db.models.functions import TruncHour
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone

from queues.metrics import DURATION_BINS_MS, percentile_from_histogram
from queues.models import Queue, QueueMinute, Worker

# Other apps add sections (e.g. schedules due next) without queues importing them.
_panels: list[Callable[[datetime], dict]] = []


def register_panel(panel: Callable[[datetime], dict]) -> None:
    if panel not in _panels:
        _panels.append(panel)


def dashboard_data(now: datetime | None = None) -> dict:
    now = now or timezone.now()
    cfg = settings.JOBPLATFORM
    hour_ago = now - timedelta(hours=1)
    day_ago = now - timedelta(hours=24)
    bins = len(DURATION_BINS_MS) + 1

    per_queue: dict[int, dict] = defaultdict(
        lambda: {"completed": 0, "failed": 0, "retried": 0, "ms": 0, "hist": [0] * bins}
    )
    minutes: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
    # The last hour, bucket by bucket (histograms included)...
    rows = QueueMinute.objects.filter(minute__gte=hour_ago).values_list(
        "queue_id", "minute", "completed", "failed", "retried", "duration_ms_sum", "histogram"
    )
    for queue_id, minute, completed, failed, retried, ms, hist in rows:
        minutes[minute][0] += completed
        minutes[minute][1] += failed
        agg = per_queue[queue_id]
        agg["completed"] += completed
        agg["failed"] += failed
        agg["retried"] += retried
        agg["ms"] += ms
        extra = hist or []
        agg["hist"] = [n + (extra[i] if i < len(extra) else 0) for i, n in enumerate(agg["hist"])]
    # ...and the last day summed per hour by the database.
    hours: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
    for hour, completed, failed in (
        QueueMinute.objects.filter(minute__gte=day_ago)
        .annotate(hour=TruncHour("minute"))
        .values("hour")
        .annotate(done=Sum("completed"), bad=Sum("failed"))
        .values_list("hour", "done", "bad")
    ):
        hours[hour] = [completed, failed]

    ttl = timedelta(seconds=cfg["WORKER_TTL"])
    live = list(
        Worker.objects.filter(last_heartbeat__gte=now - ttl).values_list("queues", flat=True)
    )
    served = {name for queues_ in live for name in queues_}
    queues, refreshed = [], []
    for queue in Queue.objects.select_related("snapshot").order_by("name"):
        snapshot = getattr(queue, "snapshot", None)
        if snapshot:
            refreshed.append(snapshot.refreshed_at)
        counts = queue.snapshot_counts()
        latency = queue.latency_seconds(now)
        agg = per_queue[queue.pk]
        finished = agg["completed"] + agg["failed"]
        tries = finished + agg["retried"]
        failure_rate = (agg["failed"] + agg["retried"]) / tries if tries else 0.0
        avg_ms = agg["ms"] / tries if tries else None
        waiting = counts.get("waiting", 0)
        alerts = []
        if waiting > cfg["ALERT_WAITING"]:
            alerts.append(f"waiting > {cfg['ALERT_WAITING']}")
        if failure_rate > cfg["ALERT_FAILURE_RATE"]:
            alerts.append(f"failure rate > {cfg['ALERT_FAILURE_RATE']:.0%}")
        if avg_ms is not None and avg_ms / 1000 > cfg["ALERT_AVG_SECONDS"]:
            alerts.append(f"average > {cfg['ALERT_AVG_SECONDS']:g} s")
        if latency > cfg["ALERT_LATENCY_SECONDS"]:
            alerts.append(f"latency > {cfg['ALERT_LATENCY_SECONDS']:g} s")
        if waiting and not queue.paused and "*" not in served and queue.name not in served:
            alerts.append("no live worker")
        queues.append(
            {
                "name": queue.name,
                "paused": queue.paused,
                "counts": counts,
                "latency_s": round(latency, 1),
                "completed_1h": agg["completed"],
                "failed_1h": agg["failed"],
                "failure_rate": round(failure_rate, 4),
                "avg_ms": round(avg_ms, 1) if avg_ms is not None else None,
                "p95_ms": percentile_from_histogram(agg["hist"], 0.95),
                "alerts": alerts,
            }
        )

    minute0 = now.replace(second=0, microsecond=0)
    hour0 = now.replace(minute=0, second=0, microsecond=0)
    per_minute = [
        [(minute0 - timedelta(minutes=i)).isoformat(), *minutes[minute0 - timedelta(minutes=i)]]
        for i in range(59, -1, -1)
    ]
    per_hour = [
        [(hour0 - timedelta(hours=i)).isoformat(), *hours[hour0 - timedelta(hours=i)]]
        for i in range(23, -1, -1)
    ]
    workers = [
        {
            "id": w.id,
            "queues": w.queues,
            "concurrency": w.concurrency,
            "jobs_done": w.jobs_done,
            "last_heartbeat": w.last_heartbeat.isoformat(),
            "stale": w.last_heartbeat < now - ttl,
        }
        for w in Worker.objects.order_by("id")[:200]
    ]
    snapshot_age = round((now - min(refreshed)).total_seconds(), 1) if refreshed else None
    return {
        "now": now.isoformat(),
        "queues": queues,
        "per_minute": per_minute,
        "per_hour": per_hour,
        "workers": workers,
        "thresholds": {
            "waiting": cfg["ALERT_WAITING"],
            "failure_rate": cfg["ALERT_FAILURE_RATE"],
            "avg_seconds": cfg["ALERT_AVG_SECONDS"],
            "latency_seconds": cfg["ALERT_LATENCY_SECONDS"],
        },
        "snapshot_age_s": snapshot_age,
        "panels": [panel(now) for panel in _panels],
    }


@staff_member_required
def dashboard_data_view(request):
    return JsonResponse(dashboard_data())


@staff_member_required
def dashboard_view(request):
    from django.contrib import admin

    context = {
        **admin.site.each_context(request),
        "title": "Job platform dashboard",
        "data": dashboard_data(),
    }
    return render(request, "admin/queues/dashboard.html", context)
