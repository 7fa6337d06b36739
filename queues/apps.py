from importlib import import_module

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate
from django.utils.module_loading import autodiscover_modules
from django.utils.translation import gettext_lazy as _


class QueuesConfig(AppConfig):
    name = "queues"
    verbose_name = _("Queues and jobs")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Handlers register themselves from every installed app's jobs.py.
        autodiscover_modules("jobs")
        # Extra handler modules outside installed apps (the test suite's, for one).
        for module in getattr(settings, "JOBPLATFORM", {}).get("EXTRA_JOB_MODULES", ()):
            import_module(module)
        post_migrate.connect(grant_operator_views, dispatch_uid="queues.operator_group")


def grant_operator_views(sender, using="default", **kwargs) -> None:
    """The read-only "operator" group may view every model, and do nothing else."""
    # Load order: apps.py is imported before any model exists.
    from django.contrib.auth.models import Group, Permission

    group = Group.objects.using(using).filter(name="operator").first()
    if group is not None:
        group.permissions.set(Permission.objects.using(using).filter(codename__startswith="view_"))
