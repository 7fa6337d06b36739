from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django_q.conf import Conf

from queues.engine.supervisor import Supervisor
from queues.models import Queue


class Command(BaseCommand):
    @property
    def help(self) -> str:  # worded when asked, in the active language
        return _(
            "Run a django-q2 cluster that executes the jobs of the given queues (all by default)."
        )

    def add_arguments(self, parser):
        parser.add_argument(
            "--queues", default="", help=_("Comma-separated queue names; default all.")
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help=_("Worker processes (default: the WORKERS setting, 2)."),
        )

    def handle(self, *args, queues: str, workers: int | None, **options):

        names = sorted({q.strip() for q in queues.split(",") if q.strip()})
        if names:
            known = set(Queue.objects.filter(name__in=names).values_list("name", flat=True))
            missing = [n for n in names if n not in known]
            if missing:
                raise CommandError(
                    _("unknown queue(s): %(queues)s") % {"queues": ", ".join(missing)}
                )
        if workers is not None and workers < 1:
            raise CommandError(_("--workers must be at least 1"))
        Supervisor(
            queues=names, workers=workers or int(Conf.WORKERS or 2), stdout=self.stdout
        ).run()
