"""The maintenance loop run by ``runscheduler`` (safe to run in several copies).

Each tick promotes due ``delayed`` jobs to ``waiting`` and wakes their queues. Every
second it also recovers stalled jobs (expired locks); every few seconds it re-wakes each
unpaused queue that has waiting jobs, which is what makes a lost doorbell (Redis restarted
or flushed, a worker killed holding the message) harmless; every minute it applies
retention itself (one copy at a time, at most half a second per tick, every tick while
it is behind), so no paused queue or busy worker can hold it up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from queues import doorbell
from queues.engine import identity
from queues.engine.recovery import recover_stalled
from queues.extensions import tick_hooks
from queues.locks import held_alone
from queues.metrics import prune_buckets, refresh_snapshots
from queues.models import Job, JobStatus, SchedulerHeartbeat
from queues.selectors import runnable_queue_names
from queues.services.notify import job_status_changed
from queues.services.queues import retention_pass

logger = logging.getLogger("queues.engine.maintenance")

PROMOTE_BATCH = 5000
HEARTBEAT_SECONDS = 2.0
# The advisory lock one scheduler copy holds while it applies retention.
RETENTION_LOCK = 0x6A6F6272
# Seconds of deleting per tick: the tick's other steps (schedules, promotion) wait that long;
# in chunks small enough (jobs per transaction) that the last one ends soon after.
RETENTION_TICK_SECONDS = 0.5
RETENTION_TICK_CHUNK = 1000
# A pass that removed RETENTION_BUSY_MIN jobs or more (or that ends a run of passes that
# were behind) means jobs are finishing fast: the next pass comes this soon instead of
# after RETENTION_INTERVAL, so the table stays near its bound (about two seconds of
# finished jobs over it) rather than a minute's worth.
RETENTION_BUSY_INTERVAL = 2.0
RETENTION_BUSY_MIN = 100


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
        ids = [job_id for job_id, _ in due]
        Job.objects.filter(id__in=ids, status=JobStatus.DELAYED).update(status=JobStatus.WAITING)
        job_status_changed(ids)
    return sorted({name for _, name in due})


def retention_step() -> tuple[int, bool]:
    """One bounded retention pass. Returns how many jobs it removed, and whether every
    queue is within its bounds."""
    with held_alone(RETENTION_LOCK) as mine:
        if not mine:
            return 0, True  # another scheduler copy is at it
        removed, caught_up = retention_pass(
            deadline=time.monotonic() + RETENTION_TICK_SECONDS, chunk=RETENTION_TICK_CHUNK
        )
        return sum(removed.values()), caught_up


class Maintenance:
    """One copy of the loop; ``tick`` does whatever is due."""

    def __init__(self) -> None:
        self.next_rewake = 0.0
        self.next_stall_check = 0.0
        # The first pass right away: a scheduler (re)started onto a busy ledger must not
        # leave a minute of finished jobs piling up before it.
        self.next_retention = 0.0
        self.next_snapshot = 0.0
        self.next_prune = time.monotonic() + settings.JOBPLATFORM["RETENTION_INTERVAL"]
        self.retention_behind = False
        self.next_heartbeat = 0.0
        self.id = identity.worker_id()

    def heartbeat(self) -> None:
        SchedulerHeartbeat.objects.update_or_create(
            id=self.id, defaults={"last_tick": timezone.now()}
        )

    @staticmethod
    def _step(name: str, step: Callable[[], object]) -> object:
        """Run one step of a tick; a failure is logged and the tick goes on. Each step
        is its own unit of work: Redis away must not stop the ledger's work, nor a
        broken hook the heartbeat."""
        try:
            return step()
        except Exception:
            logger.exception("maintenance step %s failed", name)
            close_old_connections()
            return None

    def tick(self) -> float | None:
        cfg = settings.JOBPLATFORM
        now = time.monotonic()
        names: set[str] = set()
        names.update(self._step("promote_delayed", promote_delayed) or ())
        if now >= self.next_stall_check:
            self.next_stall_check = now + cfg["STALL_CHECK_INTERVAL"]
            names.update(self._step("recover_stalled", recover_stalled) or ())
        if now >= self.next_rewake:
            # Also what wakes workers for the work that piled up while Redis was away:
            # a ring lost then is repeated here once it answers again.
            self.next_rewake = now + cfg["REWAKE_INTERVAL"]
            names.update(self._step("runnable_queue_names", runnable_queue_names) or ())
        if names:
            doorbell.ring_quietly(names)
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + HEARTBEAT_SECONDS
            self._step("heartbeat", self.heartbeat)
        if now >= self.next_prune:
            # Its own interval: metric buckets are pruned even while retention is behind.
            self.next_prune = now + cfg["RETENTION_INTERVAL"]
            self._step("prune_buckets", prune_buckets)
        if now >= self.next_retention:
            removed, caught_up = self._step("retention", retention_step) or (0, None)
            busy = removed >= RETENTION_BUSY_MIN or self.retention_behind
            self.retention_behind = caught_up is False
            # Behind (the pass ran out of time): the next pass is due on the next tick.
            if caught_up is False:
                wait = 0.0
            elif busy:
                wait = RETENTION_BUSY_INTERVAL
            else:
                wait = cfg["RETENTION_INTERVAL"]
            self.next_retention = now + wait
        if now >= self.next_snapshot:
            self.next_snapshot = now + cfg["SNAPSHOT_INTERVAL"]
            self._step("refresh_snapshots", refresh_snapshots)
        hints = []
        for hook in tick_hooks:
            hint = self._step(getattr(hook, "__name__", repr(hook)), hook)
            if hint is not None:
                hints.append(hint)
        return min(hints, default=None)


def run_forever(stop: threading.Event) -> None:
    loop = Maintenance()
    try:
        _run(loop, stop)
    finally:
        try:
            SchedulerHeartbeat.objects.filter(id=loop.id).delete()
        except Exception:
            logger.warning("could not remove the scheduler heartbeat", exc_info=True)


def _run(loop: Maintenance, stop: threading.Event) -> None:
    while not stop.is_set():
        started = time.monotonic()
        wake_in = None
        try:
            wake_in = loop.tick()
        except Exception:
            # Database or Redis away: log, drop the broken connection, try again next tick.
            logger.exception("maintenance tick failed; retrying")
            close_old_connections()
            stop.wait(1.0)
        pause = settings.JOBPLATFORM["SCHEDULER_TICK"] - (time.monotonic() - started)
        if wake_in is not None:
            pause = min(pause, wake_in)
        stop.wait(max(pause, 0.001))
