"""Write a batch of job outcomes and their attempt rows back to the ledger in one transaction.

Attempt rows keep history: a job's completing attempt is recorded on the job's own row
(``worker``, ``started_at``, ``finished_at``; ``Job.attempt_history`` shows it as an
attempt), so a job that succeeds at once costs one row update and no insert.

Every job update is conditional on the attempt that ran it (``status = 'active' AND
attempts_made = <attempt>``): a job cancelled while it ran, or re-claimed after its lock
expired, is not overwritten; its attempt row records what happened instead.
"""

from __future__ import annotations

import json
import logging
from functools import partial

from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat

from queues import doorbell, signals
from queues.bulk import copy_rows
from queues.durations import duration_ms
from queues.engine.outcomes import Outcome, clean_text
from queues.locks import lock_job_ids
from queues.metrics import record_outcomes
from queues.models import AttemptOutcome, Job, JobAttempt, JobStatus, Queue
from queues.prepared import bound_cursor
from queues.services.dependencies import resolve_dependants
from queues.services.notify import job_status_changed

logger = logging.getLogger("queues.engine.finalize")

# The CTE locks the batch's rows in id order (as queues/locks.py does everywhere) before
# the UPDATE writes them in its plan's order: one statement, no extra round trip.
_FINALIZE_SQL = """
WITH locked AS (
    SELECT id FROM queues_job WHERE id = ANY(%(ids)s::uuid[]) ORDER BY id FOR NO KEY UPDATE
)
UPDATE queues_job AS j
SET status = v.status,
    attempts_made = v.attempts_made,
    result = v.result,
    error = v.error,
    progress = CASE WHEN v.status = 'completed' THEN 100 ELSE j.progress END,
    started_at = v.started_at,
    finished_at = v.finished_at,
    run_at = COALESCE(v.run_at, j.run_at),
    locked_until = NULL,
    worker = CASE WHEN v.status = 'completed' THEN j.worker ELSE '' END,
    attempts_base = j.attempts_base + v.uncharged,
    stalled_count = j.stalled_count + v.uncharged
FROM unnest(
    %(ids)s::uuid[], %(attempt)s::int[], %(attempts_made)s::int[], %(status)s::varchar[],
    %(result)s::jsonb[], %(error)s::text[], %(started_at)s::timestamptz[],
    %(finished_at)s::timestamptz[], %(run_at)s::timestamptz[], %(uncharged)s::int[]
) AS v(id, attempt, attempts_made, status, result, error, started_at, finished_at, run_at,
       uncharged), locked
WHERE j.id = v.id AND j.id = locked.id AND j.status = 'active' AND j.attempts_made = v.attempt
RETURNING j.id, j.has_dependants
"""


def finalize(outcomes: list[Outcome], *, worker: str) -> set:
    """Record ``outcomes``; returns the ids of the jobs whose row was updated.

    If the batch cannot be written as a whole because of one outcome's data (the database
    refuses it), each outcome is written on its own and only the offending job is failed,
    with the reason: one bad result never keeps a whole batch active.
    """
    if not outcomes:
        return set()
    try:
        return _finalize(outcomes, worker=worker)
    except (OperationalError, InterfaceError):
        raise  # the database is away: the caller retries the whole batch
    except Exception:
        logger.exception("batch finalize failed; recording %d outcomes one by one", len(outcomes))
    applied: set = set()
    for outcome in outcomes:
        try:
            applied |= _finalize([outcome], worker=worker)
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:
            logger.exception("the outcome of job %s could not be recorded", outcome.job.id)
            applied |= _finalize([_unrecordable(outcome, exc)], worker=worker)
    return applied


def _unrecordable(o: Outcome, exc: Exception) -> Outcome:
    return Outcome(
        job=o.job,
        status=JobStatus.FAILED,
        attempt_outcome=AttemptOutcome.FAILED,
        started_at=o.started_at,
        finished_at=o.finished_at,
        error=clean_text(f"the outcome could not be recorded: {type(exc).__name__}: {exc}"),
    )


def _finalize(outcomes: list[Outcome], *, worker: str) -> set:

    with transaction.atomic():
        # The batch's rows first, in id order (queues/locks.py): the UPDATE ... FROM
        # (VALUES ...) would lock them in its plan's order, the claim order, and deadlock
        # with a cancel of the same jobs, which locks them in id order.
        by_id = sorted(outcomes, key=lambda o: o.job.id)
        if connection.vendor == "postgresql":
            applied = _update_postgres(by_id)  # locks in id order in the same statement
        else:
            lock_job_ids([o.job.id for o in by_id], no_key=True)
            applied = _update_orm(by_id)
        lost = [o.job.id for o in outcomes if o.job.id not in applied]
        now_status = (
            dict(Job.objects.filter(id__in=lost).values_list("id", "status")) if lost else {}
        )
        # Attempt rows are the history: the attempt that completed a job lives on the
        # job's row (Job.attempt_history), the common case, so it costs no row. A job
        # deleted meanwhile gets no attempt row; a stall sweep may already have written
        # this attempt's row: keep the first.
        _write_attempts(
            [
                _attempt_row(o, worker, o.job.id in applied, now_status.get(o.job.id))
                for o in outcomes
                if o.counted
                and (o.job.id in now_status or o.job.id in applied)
                and not (o.job.id in applied and o.status == JobStatus.COMPLETED)
            ]
        )
        # A job cancelled while it ran is no longer held by this worker once it stopped.
        stopped = [i for i, st in now_status.items() if st == JobStatus.CANCELLED]
        if stopped:
            Job.objects.filter(id__in=stopped, worker=worker).update(worker="", locked_until=None)
        # Only what was applied: a fenced-off late outcome is not counted twice.
        transaction.on_commit(
            partial(record_outcomes, [o for o in outcomes if o.job.id in applied])
        )
        _signal_outcomes([o for o in outcomes if o.job.id in applied])
        job_status_changed(
            list(applied),
            webhook_ids=[o.job.id for o in outcomes if o.job.webhook_url and o.job.id in applied],
        )
        parents = [o.job.id for o in outcomes if o.is_final and applied.get(o.job.id)]
        if parents:
            doorbell.ring_on_commit(resolve_dependants(parents))
    return set(applied)


_ATTEMPT_COLUMNS = (
    "job_id",
    "number",
    "worker",
    "started_at",
    "finished_at",
    "duration_ms",
    "outcome",
    "error",
    "traceback",
)


def _write_attempts(rows: list[JobAttempt]) -> None:
    """Attempt rows by COPY (Postgres), the batch's largest write. A row a stall sweep
    already wrote for the same attempt makes COPY fail: then insert skipping those."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        try:
            with transaction.atomic():
                copy_rows(
                    "queues_jobattempt",
                    _ATTEMPT_COLUMNS,
                    ([getattr(row, column) for column in _ATTEMPT_COLUMNS] for row in rows),
                )
            return
        except IntegrityError:
            pass
    existing = set(
        JobAttempt.objects.filter(
            job_id__in=[r.job_id for r in rows], number__in=[r.number for r in rows]
        ).values_list("job_id", "number")
    )
    JobAttempt.objects.bulk_create(
        [r for r in rows if (r.job_id, r.number) not in existing], ignore_conflicts=True
    )
    # The attempt was already recorded (a stall sweep gave up on its worker): keep that
    # row, and say on it what the late worker reported, so the history shows both.
    for row in rows:
        if (row.job_id, row.number) in existing:
            late = f"late report from {row.worker}, discarded: {row.outcome}"
            if row.error:
                late += f" ({row.error[:500]})"
            JobAttempt.objects.filter(job_id=row.job_id, number=row.number).update(
                error=Concat(F("error"), Value(f"\n{late}"))
            )


def _update_postgres(outcomes: list[Outcome]) -> dict:
    # One array per column: ten parameters whatever the batch's size (no SQL to build,
    # nothing to split per row).
    params = {
        "ids": [o.job.id for o in outcomes],
        "attempt": [o.job.attempt for o in outcomes],
        "attempts_made": [o.next_attempts_made for o in outcomes],
        "status": [o.status.value for o in outcomes],
        "result": [o.result_json for o in outcomes],
        "error": [o.error for o in outcomes],
        "started_at": [o.started_at for o in outcomes],
        "finished_at": [o.finished_at if o.is_final else None for o in outcomes],
        "run_at": [o.run_at for o in outcomes],
        "uncharged": [0 if o.charged else 1 for o in outcomes],
    }
    with bound_cursor() as cursor:
        cursor.execute(_FINALIZE_SQL, params)
        return dict(cursor.fetchall())


def _update_orm(outcomes: list[Outcome]) -> dict:
    applied = {}
    for o in outcomes:
        fields = {
            "status": o.status,
            "attempts_made": o.next_attempts_made,
            "result": json.loads(o.result_json) if o.result_json is not None else None,
            "error": o.error,
            "started_at": o.started_at,
            "finished_at": o.finished_at if o.is_final else None,
            "locked_until": None,
        }
        if o.status != JobStatus.COMPLETED:
            fields["worker"] = ""  # a completed job keeps who ran it (its attempt's worker)
        if o.run_at is not None:
            fields["run_at"] = o.run_at
        if o.status == JobStatus.COMPLETED:
            fields["progress"] = 100
        if not o.charged:
            fields["attempts_base"] = F("attempts_base") + 1
            fields["stalled_count"] = F("stalled_count") + 1
        rows = Job.objects.filter(pk=o.job.id, status=JobStatus.ACTIVE, attempts_made=o.job.attempt)
        has_dependants = rows.values_list("has_dependants", flat=True).first()
        if rows.update(**fields):
            applied[o.job.id] = bool(has_dependants)
    return applied


def _attempt_row(o: Outcome, worker: str, applied: bool, status_now: str | None) -> JobAttempt:
    outcome, error = o.attempt_outcome, o.error
    if not applied:
        ran = f"{o.attempt_outcome}: {o.error}" if o.error else str(o.attempt_outcome)
        if status_now == JobStatus.CANCELLED:
            outcome = AttemptOutcome.CANCELLED
            error = f"the job was cancelled while this attempt ran; discarded its outcome ({ran})"
        else:
            error = (
                f"this attempt no longer owned the job (now {status_now}); "
                f"discarded its outcome ({ran})"
            )
    return JobAttempt(
        job_id=o.job.id,
        number=o.job.attempt,
        worker=worker,
        started_at=o.started_at,
        finished_at=o.finished_at,
        duration_ms=duration_ms(o.started_at, o.finished_at),
        outcome=outcome,
        error=error,
        traceback=o.traceback,
    )


def _signal_outcomes(outcomes: list[Outcome]) -> None:
    completed, failed = [], []
    if signals.job_completed.has_listeners():
        completed = [o for o in outcomes if o.status == JobStatus.COMPLETED]
    if signals.job_failed.has_listeners():
        failed = [o for o in outcomes if o.status != JobStatus.COMPLETED and o.counted]
    if not (completed or failed):
        return  # nobody listens, or no outcome of this batch is theirs
    # One query for the batch's queue names, not one per outcome.
    names = dict(
        Queue.objects.filter(pk__in={o.job.queue_id for o in [*completed, *failed]}).values_list(
            "pk", "name"
        )
    )

    def about(o: Outcome) -> dict:
        return {
            "job_id": o.job.id,
            "queue": names.get(o.job.queue_id),
            "name": o.job.name,
            "attempt": o.job.attempt,
        }

    if completed:
        signals.send_on_commit(
            signals.job_completed,
            [
                {**about(o), "result": json.loads(o.result_json) if o.result_json else None}
                for o in completed
            ],
        )
    if failed:
        signals.send_on_commit(
            signals.job_failed,
            [{**about(o), "error": o.error, "final": o.status == JobStatus.FAILED} for o in failed],
        )
