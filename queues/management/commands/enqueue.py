import json

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from queues.exceptions import EnqueueError
from queues.services import enqueue


class Command(BaseCommand):
    @property
    def help(self) -> str:  # worded when asked, in the active language
        return _("Enqueue one job: enqueue NAME --payload JSON [--queue Q --priority P --delay S]")

    def add_arguments(self, parser):
        parser.add_argument("name", help=_("Handler name, e.g. platform.echo"))
        parser.add_argument("--payload", default="{}", help=_("JSON payload"))
        parser.add_argument("--queue", default=None, help=_("Queue name"))
        parser.add_argument("--priority", type=int, default=None, help=_("Priority"))
        parser.add_argument("--delay", type=float, default=None, help=_("Seconds"))

    def handle(self, *args, name, payload, queue, priority, delay, **options):
        try:
            data = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise CommandError(
                _("--payload is not valid JSON: %(error)s") % {"error": exc}
            ) from None
        try:
            job = enqueue(name, data, queue=queue, priority=priority, delay=delay, by="manage.py")
        except EnqueueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            _("%(id)s %(status)s queue=%(queue)s priority=%(priority)s")
            % {
                "id": job.id,
                "status": job.status,
                "queue": job.queue.name,
                "priority": job.priority,
            }
        )
