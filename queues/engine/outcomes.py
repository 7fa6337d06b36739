"""What happens to a job after a try: the outcome a worker records, and the retry policy.

Pure decisions, no writes: the runner, the keeper thread (a handler killed with its
process) and recovery all build their outcomes here, and ``finalize`` writes them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from queues.backoff import retry_delay_ms
from queues.engine.claim import ClaimedJob
from queues.models import FINAL_STATUSES, AttemptOutcome, Job, JobStatus


@dataclass
class Outcome:
    job: ClaimedJob
    status: JobStatus  # the job's next status: completed, delayed (retry) or failed
    attempt_outcome: AttemptOutcome
    started_at: datetime
    finished_at: datetime
    result_json: str | None = None
    error: str = ""
    traceback: str = ""
    run_at: datetime | None = None
    # False when the try did not really happen (a keyed rate limit sent the job back):
    # no attempt row, and the attempt number is given back.
    counted: bool = True
    # False when the try happened but the infrastructure failed it (the database
    # connection was lost): its attempt row is written, but like a stall it does not use
    # up one of the job's attempts, and it counts against the queue's max_stalled.
    charged: bool = True

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def next_attempts_made(self) -> int:
        return self.job.attempt if self.counted else self.job.attempt - 1


def clean_text(text: str) -> str:
    """Text the ledger can hold: Postgres text has no NUL character, and UTF-8 cannot
    encode a lone surrogate (a non-UTF-8 file name read by os.listdir, say)."""
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def failure_outcome(
    job: ClaimedJob,
    *,
    started_at: datetime,
    finished_at: datetime,
    error: str,
    traceback: str,
    attempt_outcome: AttemptOutcome,
    permanent: bool,
) -> Outcome:
    """A failed try: retried after its backoff, or failed for good when the error is
    permanent or the attempts are used up."""
    if permanent or job.attempts_exhausted:
        if not permanent:
            used = job.attempt - job.attempts_base
            error = f"{error} (attempts exhausted: {used} of {job.max_attempts})"
        return Outcome(
            job=job,
            status=JobStatus.FAILED,
            attempt_outcome=attempt_outcome,
            started_at=started_at,
            finished_at=finished_at,
            error=error,
            traceback=traceback,
        )
    delay = retry_delay_ms(job.backoff, job.attempt - job.attempts_base)
    return Outcome(
        job=job,
        status=JobStatus.DELAYED,
        attempt_outcome=attempt_outcome,
        started_at=started_at,
        finished_at=finished_at,
        error=error,
        traceback=traceback,
        run_at=finished_at + timedelta(milliseconds=delay),
    )


def killed_outcome(*, running, reason: str) -> Outcome | None:
    """The outcome of a job whose handler ignored its interrupt and is about to be killed
    with its process: ``timeout`` (retried per policy) or ``cancelled``. None when the job
    is gone."""
    job = Job.objects.filter(pk=running.job_id).first()
    if job is None:
        return None
    claimed = ClaimedJob.from_job(job, attempt=running.attempt)
    ran_for = max(time.monotonic() - running.started, 0.0)
    return failure_outcome(
        claimed,
        started_at=timezone.now() - timedelta(seconds=ran_for),
        finished_at=timezone.now(),
        error=reason,
        traceback="",
        attempt_outcome=(
            AttemptOutcome.CANCELLED if running.cancel_seen is not None else AttemptOutcome.TIMEOUT
        ),
        permanent=False,
    )
