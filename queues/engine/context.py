"""What a handler receives as ``ctx``."""

from __future__ import annotations

from uuid import UUID

from queues.engine import beside
from queues.engine.limits import check
from queues.models import Job, JobLog, JobStatus
from queues.signals import job_progress


class JobContext:
    """The running job as its handler sees it: ids, attempt number, progress and logs."""

    def __init__(self, *, job_id: UUID, name: str, queue: str, attempt: int, worker: str):
        self.job_id = job_id
        self.name = name
        self.queue = queue
        self.attempt = attempt
        self.worker = worker

    def _owned(self):
        # Only this attempt may write: a job that was cancelled or re-claimed is left alone.
        return Job.objects.filter(
            pk=self.job_id, status=JobStatus.ACTIVE, attempts_made=self.attempt
        )

    def progress(self, pct: int | float) -> None:
        """Report progress, 0 to 100."""
        if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 <= pct <= 100:
            raise ValueError(f"progress must be a number from 0 to 100, got {pct!r}")
        self._owned().update(progress=int(pct))
        if job_progress.has_listeners():
            job_progress.send_robust(
                sender=Job,
                job_id=self.job_id,
                queue=self.queue,
                name=self.name,
                attempt=self.attempt,
                progress=int(pct),
            )

    def log(self, message: object) -> None:
        """Append a line to the job's log (kept in the ledger, shown in the admin)."""
        JobLog.objects.create(job_id=self.job_id, attempt=self.attempt, message=str(message))

    def is_cancelled(self) -> bool:
        """True once someone cancelled the job; long handlers should check and return."""
        return Job.objects.filter(pk=self.job_id, status=JobStatus.CANCELLED).exists()

    # For async handlers, whose event loop refuses sync database calls.

    async def aprogress(self, pct: int | float) -> None:
        await beside.run(self.progress, pct)

    async def alog(self, message: object) -> None:
        await beside.run(self.log, message)

    async def ais_cancelled(self) -> bool:
        return await beside.run(self.is_cancelled)

    async def arate_limit(self, key: str, *, limit: int, per: float) -> None:
        await beside.run(lambda: self.rate_limit(key, limit=limit, per=per))

    def rate_limit(self, key: str, *, limit: int, per: float) -> None:
        """Use one unit of the shared limit ``key`` (``limit`` per ``per`` seconds, across
        every worker). When it is used up this raises ``RateLimited``: the job goes back
        to ``delayed`` until the window ends, without using up an attempt."""
        check(key, limit=limit, per=per)

    def __repr__(self) -> str:
        return f"<JobContext {self.name} {self.job_id} attempt {self.attempt}>"
