"""jobplatform's public Python API.

    from queues import job, enqueue, enqueue_many, pause_queue, resume_queue, \
        retry_job, cancel_job, Priority, PermanentError
"""

from typing import Any

from queues.exceptions import PermanentError, RateLimited
from queues.priority import Priority
from queues.registry import job

_SERVICES = {
    "enqueue",
    "enqueue_many",
    "pause_queue",
    "resume_queue",
    "empty_queue",
    "clean_queue",
    "retry_job",
    "retry_jobs",
    "cancel_job",
    "cancel_jobs",
}

__all__ = ["job", "Priority", "PermanentError", "RateLimited", *sorted(_SERVICES)]


def __getattr__(name: str) -> Any:
    # Load order: services import models, which need the app registry; the public API
    # must be importable before it (a settings or apps module): load them on first use.
    if name in _SERVICES:
        from queues import services

        return getattr(services, name)
    raise AttributeError(f"module 'queues' has no attribute {name!r}")
