"""Log formatting: plain text, or JSON lines (LOG_FORMAT=json) that carry the running job's
id, queue, handler and attempt on every line emitted while a job runs."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from queues.logcontext import current_job


class JobContextFilter(logging.Filter):
    """Adds ``job_id``, ``queue``, ``handler`` and ``attempt`` to records emitted in a job."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = current_job.get()
        for key in ("job_id", "queue", "handler", "attempt"):
            setattr(record, key, job.get(key) if job else None)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("job_id", "queue", "handler", "attempt"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = str(value) if key == "job_id" else value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
