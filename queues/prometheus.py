"""``/metrics`` for Prometheus. Every value is read from the ledger at scrape time (the
per-handler counters, queue snapshots, worker and scheduler heartbeats), so it is the
same whichever web process answers and however many workers and hosts there are.

Names follow the Bull exporter's (``bull_jobs_total``, ``bull_job_duration_seconds``,
``bull_queue_depth``) with the ``jobplatform_`` prefix, so existing dashboards map over.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from queues.metrics import DURATION_BINS_MS
from queues.models import HandlerStats, Queue, SchedulerHeartbeat
from queues.selectors import live_workers

PREFIX = "jobplatform"


class LedgerCollector:
    def collect(self):
        now = timezone.now()
        jobs = CounterMetricFamily(
            f"{PREFIX}_jobs",
            "Job attempts finished, by queue, handler and outcome.",
            labels=["queue", "handler", "status"],
        )
        durations = HistogramMetricFamily(
            f"{PREFIX}_job_duration_seconds",
            "Job attempt duration by queue and handler.",
            labels=["queue", "handler"],
        )
        for row in HandlerStats.objects.select_related("queue").order_by("queue__name", "name"):
            labels = [row.queue.name, row.name]
            for status in ("completed", "failed", "retried"):
                jobs.add_metric([*labels, status], getattr(row, status))
            hist = list(row.histogram or [])
            cumulative, buckets = 0, []
            for bound, count in zip(DURATION_BINS_MS, hist, strict=False):
                cumulative += count
                buckets.append((str(bound / 1000), cumulative))
            buckets.append(("+Inf", sum(hist)))
            durations.add_metric(labels, buckets, sum_value=row.duration_ms_sum / 1000)
        yield jobs
        yield durations

        depth = GaugeMetricFamily(
            f"{PREFIX}_queue_depth", "Jobs by queue and status.", labels=["queue", "status"]
        )
        latency = GaugeMetricFamily(
            f"{PREFIX}_queue_latency_seconds", "Age of the oldest waiting job.", labels=["queue"]
        )
        paused = GaugeMetricFamily(
            f"{PREFIX}_queue_paused", "1 if the queue is paused.", labels=["queue"]
        )
        for queue in Queue.objects.select_related("snapshot").order_by("name"):
            for status, count in queue.snapshot_counts().items():
                depth.add_metric([queue.name, status], count)
            latency.add_metric([queue.name], queue.latency_seconds(now))
            paused.add_metric([queue.name], 1 if queue.paused else 0)
        yield depth
        yield latency
        yield paused

        up = GaugeMetricFamily(f"{PREFIX}_workers_up", "Live runworker processes.")
        up.add_metric([], live_workers(now).count())
        yield up
        last = (
            SchedulerHeartbeat.objects.order_by("-last_tick")
            .values_list("last_tick", flat=True)
            .first()
        )
        tick = GaugeMetricFamily(
            f"{PREFIX}_scheduler_last_tick_timestamp_seconds",
            "When a runscheduler copy last ticked (Unix time).",
        )
        tick.add_metric([], last.timestamp() if last else 0.0)
        yield tick


def metrics_view(request):
    """Answers with a valid ``Authorization: Bearer <METRICS_TOKEN>`` or a staff login."""
    token = settings.METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    by_token = bool(token) and hmac.compare_digest(header, f"Bearer {token}")
    if not by_token:
        user = request.user
        if not user.is_authenticated:
            response = HttpResponse(gettext("authentication required") + "\n", status=401)
            response["WWW-Authenticate"] = "Bearer"
            return response
        if not user.is_staff:
            return HttpResponse(gettext("staff only") + "\n", status=403)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
