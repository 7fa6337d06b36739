import signal
import threading

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from queues.engine.maintenance import run_forever


class Command(BaseCommand):
    @property
    def help(self) -> str:  # worded when asked, in the active language
        return _(
            "Run the maintenance loop: promote due delayed jobs and re-wake queues with "
            "runnable jobs. Safe to run in several copies."
        )

    def handle(self, *args, **options):
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(_("runscheduler: running"))
        run_forever(stop)
        self.stdout.write(_("runscheduler: stopped"))
