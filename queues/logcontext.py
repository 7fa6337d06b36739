"""The running job, for log records (no model imports: logging is set up before apps)."""

from contextvars import ContextVar

# Set by the runner around each handler call: job_id, queue, handler, attempt.
current_job: ContextVar[dict | None] = ContextVar("current_job", default=None)
