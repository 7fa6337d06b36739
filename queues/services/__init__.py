"""Every state change of queues and jobs. Admin, API, commands and handlers call these."""

from queues.services.editing import can_edit, duplicate_job, edit_job
from queues.services.enqueuing import (
    enqueue,
    enqueue_many,
    validate_job,
)
from queues.services.jobs import (
    cancel_job,
    cancel_jobs,
    delete_job,
    delete_jobs,
    promote_job,
    promote_jobs,
    retry_job,
    retry_jobs,
)
from queues.services.queues import (
    apply_retention,
    clean_queue,
    empty_queue,
    pause_queue,
    resume_queue,
    set_queue_limits,
    update_queue,
)

__all__ = [
    "apply_retention",
    "can_edit",
    "cancel_job",
    "cancel_jobs",
    "clean_queue",
    "delete_job",
    "delete_jobs",
    "duplicate_job",
    "edit_job",
    "promote_job",
    "promote_jobs",
    "empty_queue",
    "enqueue",
    "enqueue_many",
    "pause_queue",
    "resume_queue",
    "retry_job",
    "retry_jobs",
    "set_queue_limits",
    "update_queue",
    "validate_job",
]
