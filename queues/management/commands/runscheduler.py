import signal
import threading

from django.core.management.base import BaseCommand

from queues.engine.maintenance import run_forever


class Command(BaseCommand):
    help = (
        "Run the maintenance loop: promote due delayed jobs and re-wake queues with "
        "runnable jobs. Safe to run in several copies."
    )

    def handle(self, *args, **options):
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write("runscheduler: running")
        run_forever(stop)
        self.stdout.write("runscheduler: stopped")
