"""The dashboard: per-queue counts, latency, utilisation, throughput charts, failure rate,
durations, alerts, workers and (from other apps' panels) schedules due next. A user who
may steer queues pauses, resumes and limits them from its rows.

Everything comes from ``QueueSnapshot`` (counts refreshed by the maintenance loop) and
``QueueMinute`` buckets; a page view never counts the jobs table.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Sum
from django.db.models.functions import TruncHour
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from queues.extensions import panels
from queues.humanize import human_time
from queues.metrics import DURATION_BINS_MS, percentile_from_histogram
from queues.models import JobStatus, Queue, QueueMinute, Worker
from queues.selectors import bucket_rates, is_live, live_workers, queues_without_worker

# A panel cell that is a time as JSON writes one: 2026-12-05T02:00:00+00:00.
ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def dashboard_data(now: datetime | None = None) -> dict:
    now = now or timezone.now()
    cfg = settings.JOBPLATFORM
    per_queue, per_minute = _last_hour(now)
    return {
        "now": now.isoformat(),
        **_queue_rows(now, per_queue),
        "per_minute": per_minute,
        "per_hour": _last_day(now),
        "workers": _workers(now),
        "thresholds": {
            "waiting": cfg["ALERT_WAITING"],
            "failure_rate": cfg["ALERT_FAILURE_RATE"],
            "avg_seconds": cfg["ALERT_AVG_SECONDS"],
            "latency_seconds": cfg["ALERT_LATENCY_SECONDS"],
        },
        "panels": [panel(now) for panel in panels],
    }


def _last_hour(now: datetime) -> tuple[dict[int, dict], list[list]]:
    """The last hour's minute buckets: summed per queue (histograms included), and the
    per-minute chart (completed, failed) of the last 60 minutes."""
    bins = len(DURATION_BINS_MS) + 1
    per_queue: dict[int, dict] = defaultdict(
        lambda: {"completed": 0, "failed": 0, "retried": 0, "ms": 0, "hist": [0] * bins}
    )
    minutes: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
    rows = QueueMinute.objects.filter(minute__gte=now - timedelta(hours=1)).values_list(
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
    minute0 = now.replace(second=0, microsecond=0)
    chart = [
        [(minute0 - timedelta(minutes=i)).isoformat(), *minutes[minute0 - timedelta(minutes=i)]]
        for i in range(59, -1, -1)
    ]
    return per_queue, chart


def _last_day(now: datetime) -> list[list]:
    """The per-hour chart of the last 24 hours, summed by the database."""
    hours: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
    for hour, completed, failed in (
        QueueMinute.objects.filter(minute__gte=now - timedelta(hours=24))
        .annotate(hour=TruncHour("minute"))
        .values("hour")
        .annotate(done=Sum("completed"), bad=Sum("failed"))
        .values_list("hour", "done", "bad")
    ):
        hours[hour] = [completed, failed]
    hour0 = now.replace(minute=0, second=0, microsecond=0)
    return [
        [(hour0 - timedelta(hours=i)).isoformat(), *hours[hour0 - timedelta(hours=i)]]
        for i in range(23, -1, -1)
    ]


def _queue_rows(now: datetime, per_queue: dict[int, dict]) -> dict:
    """One row per queue (snapshot counts, latency, last hour's rates, alerts), and the
    age of the oldest snapshot."""
    queues = list(Queue.objects.select_related("snapshot").order_by("name"))
    live = list(live_workers(now).values_list("queues", flat=True))
    waiting = [q.name for q in queues if q.snapshot_counts().get("waiting") and not q.paused]
    orphaned = set(queues_without_worker(waiting, live))
    rows, refreshed = [], []
    for queue in queues:
        snapshot = getattr(queue, "snapshot", None)
        if snapshot:
            refreshed.append(snapshot.refreshed_at)
        counts = queue.snapshot_counts()
        latency = queue.latency_seconds(now)
        agg = per_queue[queue.pk]
        rates = bucket_rates(
            completed=agg["completed"], failed=agg["failed"], retried=agg["retried"], ms=agg["ms"]
        )
        avg_ms = rates["average_ms"]
        rows.append(
            {
                **queue_steering(queue),
                "counts": counts,
                "latency_s": round(latency, 1),
                "completed_1h": agg["completed"],
                "failed_1h": agg["failed"],
                "failure_rate": round(rates["failure_rate"], 4),
                "avg_ms": round(avg_ms, 1) if avg_ms is not None else None,
                "p95_ms": percentile_from_histogram(agg["hist"], 0.95),
                "alerts": _alerts(
                    waiting=counts.get("waiting", 0),
                    failure_rate=rates["failure_rate"],
                    avg_ms=avg_ms,
                    latency=latency,
                    no_worker=queue.name in orphaned,
                ),
            }
        )
    age = round((now - min(refreshed)).total_seconds(), 1) if refreshed else None
    return {"queues": rows, "snapshot_age_s": age}


def queue_steering(queue: Queue) -> dict:
    """What the steering controls show of a queue (its rows on the dashboard, the JSON
    answer of a change): whether it is paused, its limits, and its utilisation, the active
    jobs (from the snapshot) over its concurrency; None without a concurrency cap."""
    active = queue.snapshot_counts().get("active", 0)
    ratio = active / queue.concurrency if queue.concurrency else None
    return {
        "id": queue.pk,
        "name": queue.name,
        "paused": queue.paused,
        "concurrency": queue.concurrency,
        "rate_limit_max": queue.rate_limit_max,
        "rate_limit_duration_ms": queue.rate_limit_duration_ms,
        "active": active,
        "utilisation": round(ratio, 4) if ratio is not None else None,
        "utilisation_pct": round(ratio * 100) if ratio is not None else None,
    }


def steering_permissions(user) -> dict[str, bool]:
    """Which steering controls ``user`` gets: pause/resume, and limits."""
    return {
        "pause": user.has_perm("queues.pause_queue"),
        "change": user.has_perm("queues.change_queue"),
    }


def _alerts(
    *, waiting: int, failure_rate: float, avg_ms: float | None, latency: float, no_worker: bool
) -> list[str]:
    cfg = settings.JOBPLATFORM
    alerts = []
    if waiting > cfg["ALERT_WAITING"]:
        alerts.append(_("waiting > %(n)s") % {"n": cfg["ALERT_WAITING"]})
    if failure_rate > cfg["ALERT_FAILURE_RATE"]:
        alerts.append(
            _("failure rate > %(pct)s")
            % {"pct": f"{cfg['ALERT_FAILURE_RATE']:.0%}"}  # a number and a sign
        )
    if avg_ms is not None and avg_ms / 1000 > cfg["ALERT_AVG_SECONDS"]:
        alerts.append(_("average > %(s)s s") % {"s": f"{cfg['ALERT_AVG_SECONDS']:g}"})
    if latency > cfg["ALERT_LATENCY_SECONDS"]:
        alerts.append(_("latency > %(s)s s") % {"s": f"{cfg['ALERT_LATENCY_SECONDS']:g}"})
    if no_worker:
        alerts.append(_("no live worker"))
    return alerts


def _workers(now: datetime) -> list[dict]:
    return [
        {
            "id": w.id,
            "queues": w.queues,
            "concurrency": w.concurrency,
            "jobs_done": w.jobs_done,
            "last_heartbeat": w.last_heartbeat.isoformat(),
            "stale": not is_live(w, now),
        }
        for w in Worker.objects.order_by("id")[:200]
    ]


def _page_data(request) -> dict:
    # The controls follow the user's permissions, read again at every refresh.
    return {**dashboard_data(), "can": steering_permissions(request.user)}


@staff_member_required
def dashboard_data_view(request):
    return JsonResponse(_page_data(request))


def shown_panels(panels: list[dict], now: datetime) -> list[dict]:
    """The panels as the page shows them: a cell holding a time (a datetime, or the ISO
    text a panel's JSON carries) reads "in 3 hours", the exact time in its tooltip; any
    other cell is shown as it is."""
    return [
        {**panel, "rows": [[_shown_cell(cell, now) for cell in row] for row in panel["rows"]]}
        for panel in panels
    ]


def _shown_cell(cell, now: datetime):
    if isinstance(cell, str) and ISO_DATETIME.match(cell):
        try:
            cell = parse_datetime(cell) or cell
        except ValueError:  # shaped like a time, but not one
            return cell
    if isinstance(cell, datetime):
        return human_time(cell, now)
    return cell


@staff_member_required
def dashboard_view(request):
    data = _page_data(request)
    context = {
        **admin.site.each_context(request),
        "title": _("Job platform dashboard"),
        "data": data,
        "panels": shown_panels(data["panels"], parse_datetime(data["now"])),
        "queues_url": reverse("admin:queues_queue_changelist"),
    }
    return render(request, "admin/queues/dashboard.html", context)


def index_summary(now: datetime | None = None) -> dict:
    """What the admin index opens with: jobs by status over every queue, the queues with
    alerts, and the workers (from the snapshots and minute buckets, never a count of the
    job table)."""
    now = now or timezone.now()
    per_queue, _minutes = _last_hour(now)
    rows = _queue_rows(now, per_queue)["queues"]
    totals: dict[str, int] = defaultdict(int)
    for row in rows:
        for status, n in row["counts"].items():
            totals[status] += n
    workers = _workers(now)
    return {
        "counts": [(status, label, totals.get(status, 0)) for status, label in JobStatus.choices],
        "alerts": [(row["name"], row["alerts"]) for row in rows if row["alerts"]],
        "workers_online": sum(1 for w in workers if not w["stale"]),
        "workers_stale": sum(1 for w in workers if w["stale"]),
        "done_1h": sum(row["completed_1h"] for row in rows),
        "failed_1h": sum(row["failed_1h"] for row in rows),
    }
