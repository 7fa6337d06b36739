import json

from django.core.management.base import BaseCommand, CommandError

from queues.exceptions import EnqueueError
from queues.services import enqueue


class Command(BaseCommand):
    help = "Enqueue one job: enqueue NAME --payload JSON [--queue Q --priority P --delay S]"

    def add_arguments(self, parser):
        parser.add_argument("name", help="Handler name, e.g. platform.echo")
        parser.add_argument("--payload", default="{}", help="JSON payload")
        parser.add_argument("--queue", default=None)
        parser.add_argument("--priority", type=int, default=None)
        parser.add_argument("--delay", type=float, default=None, help="Seconds")

    def handle(self, *args, name, payload, queue, priority, delay, **options):
        try:
            data = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--payload is not valid JSON: {exc}") from None
        try:
            job = enqueue(name, data, queue=queue, priority=priority, delay=delay, by="manage.py")
        except EnqueueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{job.id} {job.status} queue={job.queue.name} priority={job.priority}")
