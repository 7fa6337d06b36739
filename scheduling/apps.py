from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"
    verbose_name = "Schedules"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from queues.hooks import register_tick_hook
        from scheduling.services import scheduler_tick

        # runscheduler's loop fires due schedules on every tick.
        register_tick_hook(scheduler_tick)

        from queues.dashboard import register_panel
        from scheduling.selectors import schedules_due_panel

        register_panel(schedules_due_panel)
