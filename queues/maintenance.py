"""The maintenance loop run by ``runscheduler`` (safe to run in several copies).

Each tick promotes due ``delayed`` jobs to ``waiting`` and wakes their queues; every few
seconds it also re-wakes every unpaused queue that has waiting jobs, which is what makes a
lost doorbell (Redis restarted or flushed, a worker killed holding the message) harmless.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from queues import doorbell
from queues.models import Job, JobStatus, Queue

logger = logging.getLogger("queues.maintenance")

PROMOTE_BATCH = 5000


def promote_delayed() -> list[str]:
    """Move due delayed jobs to waiting; returns the names of the queues that got jobs."""
    now = timezone.now()
    with transaction.atomic():
        due = list(
            Job.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=JobStatus.DELAYED, run_at__lte=now)
            .order_by("run_at")
            .values_list("id", "queue__name")[:PROMOTE_BATCH]
        )
        if not due:
            return []
        Job.objects.filter(id__in=[job_id for job_id, _ in due], status=JobStatus.DELAYED).update(
            status=JobStatus.WAITING
        )
    return sorted({name for _, name in due})


def queues_with_waiting_jobs() -> list[str]:
    waiting = Job.objects.filter(queue=OuterRef("pk"), status=JobStatus.WAITING)
    return list(
        Queue.objects.filter(paused=False).filter(Exists(waiting)).values_list("name", flat=True)
    )


def tick(*, rewake: bool) -> None:
    promoted = promote_delayed()
    names = set(promoted)
    if rewake:
        names.update(queues_with_waiting_jobs())
    if names:
        doorbell.ring(names)


def run_forever(stop: threading.Event) -> None:
    cfg = settings.JOBPLATFORM
    next_rewake = 0.0
    while not stop.is_set():
        started = time.monotonic()
        rewake = started >= next_rewake
        try:
            tick(rewake=rewake)
            if rewake:
                next_rewake = started + cfg["REWAKE_INTERVAL"]
        except Exception:
            # Database or Redis away: log, drop the broken connection, try again next tick.
            logger.exception("maintenance tick failed; retrying")
            close_old_connections()
            stop.wait(1.0)
        stop.wait(max(cfg["SCHEDULER_TICK"] - (time.monotonic() - started), 0.01))
