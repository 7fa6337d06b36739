from django.core.management.base import BaseCommand
from django.utils.translation import gettext

from scheduling.system import sync_system_schedules


class Command(BaseCommand):
    @property
    def help(self) -> str:
        # A property, not a lazy string: argparse needs a real str for the description.
        return gettext("Create or update the system schedules declared in code (idempotent).")

    def handle(self, *args, **options):
        result = sync_system_schedules()
        self.stdout.write(
            gettext(
                "system schedules: %(created)d created, %(updated)d updated, %(retired)d retired"
            )
            % result
        )
