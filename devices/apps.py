from django.apps import AppConfig

QUEUE = "device-operation"


class DevicesConfig(AppConfig):
    name = "devices"
    verbose_name = "Devices"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from queues import signals

        # Jobs that end without their handler finishing the operation (cancelled while
        # waiting, failed after stalls) release their device here.
        for name in ("job_cancelled", "job_failed", "job_stalled"):
            getattr(signals, name).connect(sync_operation, dispatch_uid=f"devices.{name}")


def sync_operation(sender, *, job_id, queue, **kwargs) -> None:
    if queue != QUEUE or kwargs.get("final") is False:
        return
    from devices.services import sync_with_job

    sync_with_job(job_id=job_id, error=kwargs.get("error") or "")
