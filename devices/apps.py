from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from queues import signals
from queues.exceptions import PermanentError
from queues.exports import Export, register_export

QUEUE = "device-operation"


class DevicesConfig(AppConfig):
    name = "devices"
    verbose_name = _("Devices")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Jobs that end without their handler finishing the operation (cancelled while
        # waiting, failed after stalls) release their device here.
        for name in ("job_cancelled", "job_failed", "job_stalled"):
            getattr(signals, name).connect(sync_operation, dispatch_uid=f"devices.{name}")
        register_export("devices", devices_export)


def devices_export(filters: dict):
    """Devices to CSV for the ``export-data`` job (``{"kind": "devices"}``)."""
    # apps.py is imported while the app registry is still loading, before models exist.
    from devices.models import Device

    allowed = {"status", "owner"}
    unknown = set(filters) - allowed
    if unknown:
        raise PermanentError(
            f"unknown filters for devices: {sorted(unknown)}; use {sorted(allowed)}"
        )
    devices = Device.objects.filter(
        **{k if k != "owner" else "owner__username": v for k, v in filters.items()}
    )
    fields = [
        "id",
        "name",
        "status",
        "resolution",
        "dpi",
        "owner__username",
        "installed_apps",
        "updated_at",
    ]
    return Export.from_queryset(devices, fields, header_suffix="__username")


def sync_operation(sender, *, job_id, queue, **kwargs) -> None:
    if queue != QUEUE or kwargs.get("final") is False:
        return
    # devices.services imports models, which apps.py cannot do at import time.
    from devices.services import sync_with_job

    sync_with_job(job_id=job_id, error=kwargs.get("error") or "")
