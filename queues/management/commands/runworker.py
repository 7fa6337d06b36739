import os
import signal
import socket
import threading

from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.utils import timezone

from queues import doorbell
from queues.maintenance import queues_with_waiting_jobs
from queues.models import Queue, Worker

HEARTBEAT_SECONDS = 2.0


class Command(BaseCommand):
    help = "Run a django-q2 cluster that executes the jobs of the given queues (all by default)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--queues", default="", help="Comma-separated queue names; default all."
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="Worker processes (default: settings Q_CLUSTER['workers']).",
        )

    def handle(self, *args, queues: str, workers: int | None, **options):
        from django_q.brokers import get_broker
        from django_q.cluster import Cluster
        from django_q.conf import Conf

        names = sorted({q.strip() for q in queues.split(",") if q.strip()})
        if names:
            known = set(Queue.objects.filter(name__in=names).values_list("name", flat=True))
            missing = [n for n in names if n not in known]
            if missing:
                raise CommandError(f"unknown queue(s): {', '.join(missing)}")
        if workers is not None:
            if workers < 1:
                raise CommandError("--workers must be at least 1")
            Conf.WORKERS = workers
        Conf.WORKERS = int(Conf.WORKERS or 2)
        # Doorbell messages are cheap and say only "drain queue X": keep the prefetch small.
        Conf.QUEUE_LIMIT = Conf.WORKERS

        list_key = doorbell.list_key_for(names)
        os.environ[doorbell.LIST_KEY_ENV] = list_key
        worker_id = f"{socket.gethostname()}:{os.getpid()}"

        stop = threading.Event()
        cluster = Cluster(get_broker(list_key))
        # Cluster installs handlers that stop it from inside the signal; we stop it from
        # the main loop instead, after withdrawing this worker's routes.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())

        # Never let forked children inherit (and later close) this process's connection.
        connections.close_all()
        cluster.start()
        self.stdout.write(
            f"runworker {worker_id}: queues={names or ['*']} workers={Conf.WORKERS} list={list_key}"
        )
        now = timezone.now()
        Worker.objects.update_or_create(
            id=worker_id,
            defaults={
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "queues": names or [doorbell.ALL_QUEUES],
                "list_key": list_key,
                "concurrency": Conf.WORKERS,
                "started_at": now,
                "last_heartbeat": now,
            },
        )
        doorbell.advertise(list_key, names)
        # Start on the backlog right away instead of waiting for the scheduler's re-wake.
        backlog = [n for n in queues_with_waiting_jobs() if not names or n in names]
        doorbell.ring(backlog)
        try:
            while not stop.wait(HEARTBEAT_SECONDS):
                try:
                    Worker.objects.filter(id=worker_id).update(last_heartbeat=timezone.now())
                    doorbell.advertise(list_key, names)
                except Exception as exc:  # database or Redis away for a moment
                    self.stderr.write(f"heartbeat failed: {exc}")
                    connections.close_all()
        finally:
            try:
                doorbell.withdraw(list_key, names)
                Worker.objects.filter(id=worker_id).delete()
            except Exception as exc:
                self.stderr.write(f"could not withdraw worker {worker_id}: {exc}")
            cluster.stop()
