import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

STOP_GRACE_SECONDS = 30


class Command(BaseCommand):
    @property
    def help(self) -> str:  # worded when asked, in the active language
        return _(
            "Run everything in one terminal: web admin, workers (all queues) and the "
            "scheduler. Ctrl-C stops them all."
        )

    def add_arguments(self, parser):
        parser.add_argument(
            "addrport",
            nargs="?",
            default="127.0.0.1:8000",
            help=_("Address and port of the web admin"),
        )
        parser.add_argument("--workers", type=int, default=None, help=_("Worker processes"))

    def handle(self, *args, addrport: str, workers: int | None, **options):
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        worker_cmd = [*manage, "runworker"] + (["--workers", str(workers)] if workers else [])
        commands = {
            "web": [*manage, "runserver", addrport, "--noreload"],
            "worker": worker_cmd,
            "scheduler": [*manage, "runscheduler"],
        }
        stopping = False

        def request_stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        # Children get their own process group so the terminal's Ctrl-C reaches only us;
        # we then stop them in order.
        procs = {
            name: subprocess.Popen(cmd, start_new_session=True, env=os.environ.copy())
            for name, cmd in commands.items()
        }
        self.stdout.write(
            _("jobplatform running: %(url)s  (Ctrl-C stops)") % {"url": f"http://{addrport}/admin/"}
        )
        exit_code = 0
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    self.stderr.write(
                        _("%(name)s exited with code %(code)s; stopping")
                        % {"name": name, "code": proc.returncode}
                    )
                    exit_code = proc.returncode or 1
                    stopping = True
            time.sleep(0.2)
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in procs.values():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.stdout.write(_("jobplatform stopped"))
        sys.exit(exit_code)
