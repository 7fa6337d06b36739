"""A simulated provider that records each call with the progress the operation and its
job showed at that moment: proof that each step reports before it works."""

from __future__ import annotations

from collections.abc import Callable

from devices.models import DeviceOperation
from devices.providers import SimulatedProvider
from queues.models import Job

# (method, operation progress, job progress), in call order, across providers.
calls: list[tuple[str, int, int]] = []
# Called with the method name before each step; tests use it to cancel mid-run.
hooks: list[Callable[[str], None]] = []


class RecordingProvider(SimulatedProvider):
    def _step(self, method, device):
        op = DeviceOperation.objects.filter(device_id=device.pk).order_by("-id").first()
        job_progress = Job.objects.filter(pk=op.job_id).values_list("progress", flat=True)[0]
        calls.append((method, op.progress, job_progress))
        for hook in hooks:
            hook(method)
        super()._step(method, device)
