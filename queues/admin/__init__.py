"""The admin console: dashboard, jobs, queues, workers and the audit log."""

from queues.admin import jobs, queues  # noqa: F401  (registers the ModelAdmins)
