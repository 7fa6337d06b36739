import json

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from queues.health import run_checks


class Command(BaseCommand):
    @property
    def help(self) -> str:  # worded when asked, in the active language
        return _(
            "Check database, Redis, workers and scheduler; exit 1 when unhealthy "
            "(container probes)."
        )

    def add_arguments(self, parser):
        parser.add_argument(
            "--canary", action="store_true", help=_("Also run a platform.echo job round trip.")
        )
        parser.add_argument(
            "--timeout", type=float, default=10.0, help=_("Seconds the canary job may take")
        )

    def handle(self, *args, canary: bool, timeout: float, **options):
        healthy, checks = run_checks(canary=canary, canary_timeout=timeout)
        self.stdout.write(
            json.dumps({"status": "ok" if healthy else "unhealthy", "checks": checks}, indent=2)
        )
        if not healthy:
            raise SystemExit(1)
