"""``runworker``'s main process: runs a django-q2 cluster and keeps it honest.

django-q2 alone loses or hangs in three situations this supervisor handles:

- SIGTERM to the whole process group (systemd's default, supervisor's ``stopasgroup``)
  kills django-q2's sentinel and workers mid-job and hangs the main process (django-q2
  #346). Our sentinel and its children ignore SIGTERM; only this process acts on it: it
  stops new claims (a shared event every drain checks), gives active jobs
  ``SHUTDOWN_GRACE`` seconds, then kills what is left and puts those jobs back.
- An idle worker killed with ``kill -9`` can freeze the whole cluster while it still
  reports "Working" (django-q2 #23). Drains and the lock keeper stamp a shared activity
  time; when the cluster's queues have waiting jobs and nothing stirred for
  ``FREEZE_SECONDS``, the cluster is killed and started again.
- A worker killed mid-job: django-q2 replaces the process; the job's lock expires and the
  scheduler's stall recovery runs it again.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from datetime import UTC, datetime

import django_q.cluster
from django.conf import settings
from django.db import connections
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.cluster import Sentinel
from django_q.conf import Conf

from queues import doorbell
from queues.engine import identity, runtime
from queues.engine.proctree import descendants
from queues.engine.recovery import requeue_from_workers
from queues.metrics import SUPERVISOR_ENV
from queues.models import Worker
from queues.selectors import runnable_queue_names

logger = logging.getLogger("queues.engine.supervisor")

HEARTBEAT_SECONDS = 2.0


def _make_sentinel_class():

    class PlatformSentinel(Sentinel):
        """django-q2's sentinel, deaf to SIGTERM (django-q2 #346): stopping is the
        supervisor's decision, taken in order, never a signal racing through the group."""

        def __init__(self, *args, **kwargs):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            kwargs["start"] = False
            super().__init__(*args, **kwargs)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self.start()

    return PlatformSentinel


class Supervisor:
    def __init__(self, *, queues: list[str], workers: int, stdout=None) -> None:
        self.queues = queues
        self.workers = workers
        self.list_key = doorbell.list_key_for(queues)
        identity.new_token()  # this runworker's family: its forked workers inherit it
        self.id = identity.worker_id()
        self.stop_requested = threading.Event()
        self.stdout = stdout
        self.cluster = None
        self.restarts = 0

    def say(self, message: str) -> None:
        logger.info(message)
        if self.stdout is not None:
            self.stdout.write(message)
            self.stdout.flush()

    # --- cluster lifecycle ------------------------------------------------------------

    def _start_cluster(self) -> None:

        Conf.WORKERS = self.workers
        # Doorbell messages are cheap and say only "drain queue X": keep the prefetch small.
        Conf.QUEUE_LIMIT = self.workers
        django_q.cluster.Sentinel = _make_sentinel_class()
        os.environ[doorbell.LIST_KEY_ENV] = self.list_key
        os.environ[SUPERVISOR_ENV] = self.id  # workers count their jobs on our Worker row
        runtime.shared_stopping.clear()
        runtime.shared_activity.value = time.time()
        cluster = django_q.cluster.Cluster(get_broker(self.list_key))
        self._install_signals()  # Cluster() installs its own; ours decide
        # Never let forked children inherit (and later close) this process's connection.
        connections.close_all()
        cluster.start()
        self.cluster = cluster

    def _stop_cluster(self, *, grace: float) -> list[int]:
        """Stop the cluster, waiting up to ``grace`` seconds; kill what is left. Returns
        the pids that had to be killed."""
        cluster, self.cluster = self.cluster, None
        if cluster is None:
            return []
        runtime.shared_stopping.set()
        pids = descendants(os.getpid())
        stopper = threading.Thread(target=cluster.stop, daemon=True)
        stopper.start()
        stopper.join(grace)
        killed = []
        if stopper.is_alive():
            for pid in reversed(descendants(os.getpid()) or pids):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
            stopper.join(5)
        # Reap whatever is left so nothing lingers as a zombie or orphan.
        for child in multiprocessing.active_children():
            child.join(1)
        # Jobs the killed workers were running go back to waiting: those seen before the
        # stop, and any django-q2 started in their place during the grace period.
        if killed:
            names = requeue_from_workers(
                workers=[identity.worker_id(pid) for pid in sorted({*pids, *killed})],
                reason="its worker was stopped before the job finished",
            )
            doorbell.ring_quietly(names)
        return killed

    # --- signals ----------------------------------------------------------------------

    def _install_signals(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.stop_requested.set()

    # --- main loop --------------------------------------------------------------------

    def run(self) -> None:
        runtime.shared_stopping = multiprocessing.Event()
        runtime.shared_activity = multiprocessing.Value("d", time.time(), lock=False)
        self._install_signals()
        self._start_cluster()
        self.say(
            f"runworker {self.id}: queues={self.queues or ['*']} workers={self.workers} "
            f"list={self.list_key}"
        )
        self._register()
        doorbell.ring_quietly(self._backlog())
        try:
            while not self.stop_requested.wait(HEARTBEAT_SECONDS):
                self._heartbeat()
                idle_for = time.time() - runtime.shared_activity.value
                if idle_for < settings.JOBPLATFORM["REWAKE_INTERVAL"]:
                    continue
                backlog = self._backlog()
                if not backlog:
                    continue
                if idle_for >= settings.JOBPLATFORM["FREEZE_SECONDS"]:
                    self._restart()
                else:
                    # Idle with jobs waiting: a ring was lost (Redis flushed, a host killed
                    # holding the message, this host's route aged out under load). Ring
                    # for them; no scheduler needs to be running for this.
                    doorbell.ring_quietly(backlog)
        finally:
            self._shutdown()

    def _register(self) -> None:
        now = timezone.now()
        Worker.objects.update_or_create(
            id=self.id,
            defaults={
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "queues": self.queues or [doorbell.ALL_QUEUES],
                "list_key": self.list_key,
                "concurrency": self.workers,
                "started_at": now,
                "last_heartbeat": now,
            },
        )
        doorbell.advertise(self.list_key, self.queues)

    def _heartbeat(self) -> None:
        try:
            activity = datetime.fromtimestamp(runtime.shared_activity.value, tz=UTC)
            updated = Worker.objects.filter(id=self.id).update(
                last_heartbeat=timezone.now(), last_activity=activity
            )
            if not updated:
                self._register()
            doorbell.advertise(self.list_key, self.queues)
        except Exception as exc:  # database or Redis away for a moment
            logger.warning("heartbeat failed: %s", exc)
            connections.close_all()

    def _backlog(self) -> list[str]:
        try:
            names = runnable_queue_names()
        except Exception:
            connections.close_all()
            return []
        return [n for n in names if not self.queues or n in self.queues]

    def _restart(self) -> None:
        self.restarts += 1
        self.say(
            f"runworker {self.id}: cluster made no progress for "
            f"{settings.JOBPLATFORM['FREEZE_SECONDS']:g}s with jobs waiting; restarting it "
            f"(restart #{self.restarts})"
        )
        self._stop_cluster(grace=5)
        self._start_cluster()
        doorbell.ring_quietly(self._backlog())

    def _shutdown(self) -> None:
        grace = settings.JOBPLATFORM["SHUTDOWN_GRACE"]
        self.say(f"runworker {self.id}: stopping (grace {grace:g}s)")
        try:
            doorbell.withdraw(self.list_key, self.queues)
        except Exception:
            logger.warning("could not withdraw routes", exc_info=True)
        killed = self._stop_cluster(grace=grace)
        try:
            Worker.objects.filter(id=self.id).delete()
        except Exception:
            logger.warning("could not unregister worker", exc_info=True)
        self.say(
            f"runworker {self.id}: stopped"
            + (f" ({len(killed)} processes killed after the grace period)" if killed else "")
        )
