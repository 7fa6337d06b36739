from importlib import import_module

from django.apps import AppConfig
from django.conf import settings
from django.utils.module_loading import autodiscover_modules


class QueuesConfig(AppConfig):
    name = "queues"
    verbose_name = "Queues and jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Handlers register themselves from every installed app's jobs.py.
        autodiscover_modules("jobs")
        # Extra handler modules outside installed apps (the test suite's, for one).
        for module in getattr(settings, "JOBPLATFORM", {}).get("EXTRA_JOB_MODULES", ()):
            import_module(module)
