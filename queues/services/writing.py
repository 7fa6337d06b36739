"""Writing planned jobs: one INSERT for one job, COPY for many, a job's ``unique_key``
decided by the database constraint; and the ``job_enqueued`` signal once they commit."""

from __future__ import annotations

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext
from psycopg.types.json import Jsonb

from queues import signals
from queues.bulk import copy_rows
from queues.exceptions import EnqueueError
from queues.models import UNFINISHED_STATUSES, Job
from queues.prepared import bound_cursor


def insert_jobs(jobs: list[Job], *, durable: bool = True) -> list[Job]:
    """Insert the jobs; a job whose unique_key is taken by an unfinished job of its queue
    is replaced by that job (the database constraint decides, not a Python check).

    ``durable=False`` (Postgres, one job outside a transaction): the INSERT, which is then
    its own transaction, also sets ``synchronous_commit = off`` for itself, so its commit
    does not wait for the WAL flush (one round trip, as a durable enqueue)."""
    for job in jobs:
        job.was_created = True  # False on an existing job returned for its unique_key
    if not any(j.unique_key for j in jobs):
        if connection.vendor == "postgresql":
            _copy(jobs, durable=durable)
        else:
            Job.objects.bulk_create(jobs, batch_size=1000)
        return jobs
    result = list(jobs)
    pending = list(range(len(jobs)))
    for _ in range(3):
        Job.objects.bulk_create([jobs[i] for i in pending], batch_size=1000, ignore_conflicts=True)
        inserted = set(
            Job.objects.filter(id__in=[jobs[i].id for i in pending]).values_list("id", flat=True)
        )
        still = []
        for i in pending:
            job = jobs[i]
            if job.id in inserted:
                continue
            # Locked, like a dependency parent: it cannot finish before our links commit.
            other = (
                Job.objects.select_for_update(of=("self",))
                .select_related("queue")
                .filter(queue=job.queue, unique_key=job.unique_key, status__in=UNFINISHED_STATUSES)
                .first()
            )
            if other is None:
                still.append(i)  # it finished meanwhile: insert ours after all
            else:
                other.was_created = False
                result[i] = other
        if not still:
            return result
        pending = still
    raise EnqueueError(gettext("unique_key kept conflicting; try again"))


# The Job model's columns, in the order ``_row`` gives them; a test compares them.
COPY_COLUMNS = (
    "id",
    "queue_id",
    "name",
    "payload",
    "status",
    "priority",
    "attempts_made",
    "attempts_base",
    "max_attempts",
    "backoff",
    "timeout",
    "run_at",
    "progress",
    "result",
    "error",
    "created_at",
    "started_at",
    "finished_at",
    "locked_until",
    "worker",
    "stalled_count",
    "unique_key",
    "has_dependants",
    "webhook_url",
)


_INSERT_SQL = (
    f"INSERT INTO queues_job ({', '.join(COPY_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(COPY_COLUMNS))})"
)
# The same INSERT as a transaction of its own that does not wait for its WAL flush: the
# setting is local to the statement's transaction, and Postgres reads it at the commit
# that ends the statement. (RETURNING runs before that commit; a CTE would not run.)
_INSERT_NO_FLUSH_SQL = _INSERT_SQL + " RETURNING set_config('synchronous_commit', 'off', true)"


def _payload(job: Job) -> Jsonb:
    # plan() keeps the text it checked the payload with: the row gets that text.
    text = getattr(job, "payload_text", None)
    return Jsonb(job.payload) if text is None else Jsonb(text, dumps=str)


def _row(job: Job, now) -> tuple:
    job.created_at = now  # what auto_now_add would have set
    # fmt: off
    return (
        job.id, job.queue_id, job.name, _payload(job), job.status, job.priority, 0, 0,
        job.max_attempts, Jsonb(job.backoff), job.timeout, job.run_at, 0, None, job.error, now,
        None, job.finished_at, None, "", 0, job.unique_key, job.has_dependants, job.webhook_url,
    )
    # fmt: on


def _copy(jobs: list[Job], *, durable: bool = True) -> None:
    """Insert new jobs (Postgres): one prepared INSERT for one job, COPY for many."""
    now = timezone.now()
    if len(jobs) == 1:
        with bound_cursor() as cursor:
            cursor.execute(_INSERT_SQL if durable else _INSERT_NO_FLUSH_SQL, _row(jobs[0], now))
    else:
        copy_rows("queues_job", COPY_COLUMNS, (_row(job, now) for job in jobs))
    for job in jobs:
        job._state.adding = False
        job._state.db = "default"


def announce(jobs: list[Job]) -> None:
    """Send ``job_enqueued`` for these new jobs once the transaction commits."""
    if signals.job_enqueued.has_listeners():
        signals.send_on_commit(
            signals.job_enqueued,
            [{"job_id": j.pk, "queue": j.queue.name, "name": j.name} for j in jobs],
        )
