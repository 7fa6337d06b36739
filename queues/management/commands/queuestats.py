import json

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from queues.models import JobStatus, status_word
from queues.selectors import queue_counts


class Command(BaseCommand):
    @property
    def help(self) -> str:  # worded when asked, in the active language
        return _("Print every queue's job counts by status.")

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help=_("Print JSON."))

    def handle(self, *args, **options):
        rows = queue_counts()
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        statuses = [s.value for s in JobStatus]
        queue, paused = pgettext("column", "queue"), pgettext("column", "paused")
        yes, no = _("yes"), _("no")
        width = max([len(queue), *(len(r["name"]) for r in rows)])
        header = f"{queue:<{width}}  {paused:>6}  " + "  ".join(
            f"{status_word(s):>9}" for s in statuses
        )
        self.stdout.write(header)
        for r in rows:
            cells = "  ".join(f"{r['counts'][s]:>9}" for s in statuses)
            self.stdout.write(f"{r['name']:<{width}}  {yes if r['paused'] else no:>6}  {cells}")
