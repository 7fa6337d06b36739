from django.core.management.base import BaseCommand

from scheduling.system import sync_system_schedules


class Command(BaseCommand):
    help = "Create or update the system schedules declared in code (idempotent)."

    def handle(self, *args, **options):
        result = sync_system_schedules()
        self.stdout.write(
            f"system schedules: {result['created']} created, {result['updated']} updated, "
            f"{result['retired']} retired"
        )
