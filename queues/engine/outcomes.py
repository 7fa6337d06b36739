"""What happens to a job after a try: the outcome a worker records, and the retry policy.

Pure decisions, no writes: the runner, the keeper thread (a handler killed with its
process) and recovery all build their outcomes here, and ``finalize`` writes them.
"""

from __future__ import annotations

import json
import time
import traceback as tb
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import InterfaceError, OperationalError
from django.utils import timezone

from queues.backoff import retry_delay_ms
from queues.engine.claim import ClaimedJob
from queues.exceptions import (
    JobCancelled,
    JobInterrupt,
    PermanentError,
    RateLimited,
    UnknownHandler,
)
from queues.models import FINAL_STATUSES, AttemptOutcome, Job, JobStatus, Queue


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


def completed_outcome(
    job: ClaimedJob, *, started_at: datetime, finished_at: datetime, result: str | None
) -> Outcome:
    return Outcome(
        job=job,
        status=JobStatus.COMPLETED,
        attempt_outcome=AttemptOutcome.COMPLETED,
        started_at=started_at,
        finished_at=finished_at,
        result_json=result,
    )


def error_outcome(
    job: ClaimedJob,
    exc: BaseException,
    *,
    started_at: datetime,
    finished_at: datetime,
    queue: Queue | None,
) -> Outcome:
    """What a try that raised ``exc`` means for its job (sync and async handlers alike)."""

    def fail(permanent: bool = False, outcome=AttemptOutcome.FAILED) -> Outcome:
        return failure_outcome(
            job,
            started_at=started_at,
            finished_at=finished_at,
            error=clean_text(describe(exc)),
            traceback=clean_text(_traceback(exc)),
            attempt_outcome=outcome,
            permanent=permanent,
        )

    if isinstance(exc, JobCancelled):
        return fail(permanent=True, outcome=AttemptOutcome.CANCELLED)
    if isinstance(exc, JobInterrupt):
        return fail(outcome=AttemptOutcome.TIMEOUT)
    if isinstance(exc, RateLimited):
        now = timezone.now()
        return Outcome(
            job=job,
            status=JobStatus.DELAYED,
            attempt_outcome=AttemptOutcome.FAILED,
            started_at=started_at,
            finished_at=now,
            error=str(exc),
            run_at=now + timedelta(seconds=exc.retry_in),
            counted=False,
        )
    if isinstance(exc, UnknownHandler | PermanentError):
        return fail(permanent=True)
    if isinstance(exc, OperationalError | InterfaceError):
        max_stalled = queue.max_stalled if queue is not None else 0
        if job.stalled_count >= max_stalled:
            return fail()
        return _database_lost(job, exc, started_at, finished_at, max_stalled)
    return fail()


def _database_lost(
    job: ClaimedJob, exc: Exception, started_at: datetime, finished_at: datetime, bound: int
) -> Outcome:
    """The connection was killed or reset under the handler: the infrastructure failed,
    not the handler. The try is recorded but not counted (like a stall, up to the queue's
    ``max_stalled``), and the job runs again shortly, so ``attempts=1`` jobs survive a
    failover."""
    retry = job.stalled_count + 1
    return Outcome(
        job=job,
        status=JobStatus.DELAYED,
        attempt_outcome=AttemptOutcome.FAILED,
        started_at=started_at,
        finished_at=finished_at,
        error=clean_text(
            f"{describe(exc)} (the database connection was lost: this try is not counted; "
            f"retry {retry} of {bound})"
        ),
        traceback=clean_text(_traceback(exc)),
        run_at=finished_at + timedelta(seconds=min(2 ** (retry - 1), 30)),
        charged=False,
    )


def describe(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"
    except Exception:  # an exception whose str() itself fails
        return f"{type(exc).__name__}: (its message could not be formatted)"


def _traceback(exc: BaseException) -> str:
    try:
        return "".join(tb.format_exception(exc))
    except Exception:
        return ""


def undecidable_outcome(job: ClaimedJob, exc: Exception) -> Outcome:
    """The last resort when deciding an outcome itself failed: the job fails, with why."""
    now = timezone.now()
    return Outcome(
        job=job,
        status=JobStatus.FAILED,
        attempt_outcome=AttemptOutcome.FAILED,
        started_at=now,
        finished_at=now,
        error=clean_text(f"the job's outcome could not be decided: {describe(exc)}"),
    )


class _ResultNotJSON(PermanentError):
    pass


def result_json(result: object) -> str | None:
    if result is None:
        return None
    try:
        text = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _ResultNotJSON(
            f"the handler returned {type(result).__name__}, which is not JSON-serializable: {exc}"
        ) from exc
    if "\\u0000" in text:
        raise _ResultNotJSON("the handler's result contains a NUL character (\\u0000)")
    return text
