from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from queues.extensions import register_job_detail, register_panel, register_tick_hook


class SchedulingConfig(AppConfig):
    name = "scheduling"
    # With a context: django_q's catalog has its own "Schedules" (计划), merged over ours.
    verbose_name = pgettext_lazy("app name", "Schedules")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # These modules load models, which do not exist before ready().
        from scheduling.selectors import schedule_of_job, schedules_due_panel
        from scheduling.tick import scheduler_tick

        # runscheduler's loop fires due schedules on every tick.
        register_tick_hook(scheduler_tick)
        register_panel(schedules_due_panel)
        register_job_detail(_("created by schedule"), schedule_of_job)
