"""Health: database, Redis, live workers for every queue that needs one, the scheduler's
heartbeat, frozen clusters (django-q2 #23), and optionally a canary job round trip.

Used by ``/healthz`` (JSON, 200 or 503) and ``manage.py healthcheck`` (exit 0 or 1).
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from queues import doorbell
from queues.models import Job, JobStatus, SchedulerHeartbeat
from queues.selectors import live_workers, queues_without_worker, runnable_queue_names, serves
from queues.services import enqueue

SCHEDULER_STALE_SECONDS = 10


def _check(checks: dict, name: str, fn) -> None:
    try:
        ok, detail = fn()
    except Exception as exc:  # a check that cannot run is a failed check
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    checks[name] = {"ok": ok, "detail": detail}


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return True, connection.vendor


def _redis():
    if not doorbell.redis_enabled():
        return True, gettext("not configured (ORM broker)")
    doorbell.redis_client().ping()
    return True, gettext("ping ok")


def _workers(now):
    cfg = settings.JOBPLATFORM
    live = list(live_workers(now).values_list("id", "queues", "last_activity"))
    needy = runnable_queue_names()
    orphaned = set(queues_without_worker(needy, [w[1] for w in live]))
    problems = []
    for name in needy:
        if name in orphaned:
            problems.append(
                gettext("queue %(queue)s has waiting jobs and no live worker") % {"queue": name}
            )
            continue
        serving = [w for w in live if serves(w[1], name)]
        frozen_after = now - timedelta(seconds=cfg["FREEZE_SECONDS"])
        if all(w[2] is not None and w[2] < frozen_after for w in serving):
            problems.append(
                gettext(
                    "queue %(queue)s has waiting jobs and its workers made no progress for "
                    "%(seconds)ss (frozen cluster)"
                )
                % {"queue": name, "seconds": f"{cfg['FREEZE_SECONDS']:g}"}
            )
    return not problems, problems or ngettext(
        "%(count)d live worker(s)", "%(count)d live worker(s)", len(live)
    ) % {"count": len(live)}


def _scheduler(now):
    last = (
        SchedulerHeartbeat.objects.order_by("-last_tick")
        .values_list("last_tick", flat=True)
        .first()
    )
    if last is None:
        return False, gettext("no runscheduler has ticked")
    age = (now - last).total_seconds()
    return age <= SCHEDULER_STALE_SECONDS, gettext("last tick %(age)ss ago") % {"age": f"{age:.1f}"}


def _canary(timeout: float):

    job = enqueue("platform.echo", {"canary": True}, priority=1, attempts=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Job.objects.filter(pk=job.pk).values_list("status", flat=True).first()
        if status == JobStatus.COMPLETED:
            Job.objects.filter(pk=job.pk).delete()
            return True, gettext("platform.echo round trip ok (%(id)s)") % {"id": job.pk}
        time.sleep(0.05)
    return False, gettext("platform.echo job %(id)s did not complete within %(timeout)ss") % {
        "id": job.pk,
        "timeout": f"{timeout:g}",
    }


def run_checks(*, canary: bool = False, canary_timeout: float = 10.0) -> tuple[bool, dict]:
    now = timezone.now()
    checks: dict = {}
    _check(checks, "database", _database)
    _check(checks, "redis", _redis)
    _check(checks, "workers", lambda: _workers(now))
    _check(checks, "scheduler", lambda: _scheduler(now))
    if canary:
        _check(checks, "canary", lambda: _canary(canary_timeout))
    return all(c["ok"] for c in checks.values()), checks


def healthz_view(request):
    canary = request.GET.get("canary") in ("1", "true", "yes")
    healthy, checks = run_checks(canary=canary)
    return JsonResponse(
        {"status": "ok" if healthy else "unhealthy", "checks": checks},
        status=200 if healthy else 503,
    )
