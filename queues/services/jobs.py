"""Retry, cancel, promote and delete: one job, or every job a queryset matches (in keyset
chunks of ``BULK_CHUNK``, each its own transaction)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from contextlib import suppress
from uuid import UUID

from django.db import DatabaseError, IntegrityError, models, transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from queues import audit, doorbell, signals
from queues.audit import Actor
from queues.exceptions import InvalidJobState
from queues.locks import lock_job_ids, lock_jobs
from queues.models import (
    FINAL_STATUSES,
    HELD_BY_WORKER,
    Job,
    JobDependency,
    JobStatus,
    status_word,
)
from queues.selectors import get_job
from queues.services.dependencies import resolve_dependants
from queues.services.notify import job_status_changed

RETRYABLE = (JobStatus.FAILED, JobStatus.CANCELLED)
UNSTARTED = (JobStatus.WAITING, JobStatus.DELAYED, JobStatus.BLOCKED)
CANCELLABLE = (*UNSTARTED, JobStatus.ACTIVE)
UNFINISHED = (*UNSTARTED, JobStatus.ACTIVE)
# Parent statuses that fail a required dependant (as resolve_dependants decides).
FAILING = (JobStatus.FAILED, JobStatus.CANCELLED)
# Bulk actions work through their jobs this many at a time, each chunk in its own
# transaction: "select all" over a million jobs never holds a million ids, row locks or
# on-commit publishes at once.
BULK_CHUNK = 5000
# A chunk of a bulk retry that loses a unique_key to a concurrent enqueue is tried again
# (the twin is then visible and skipped) this many times before giving up.
KEY_RACE_TRIES = 3


def each_chunk(jobs: QuerySet[Job], work: Callable[[list[UUID]], int], done: list[int]) -> int:
    """Call ``work`` on the ids of ``jobs`` in keyset chunks of ``BULK_CHUNK``, newest
    first: ids are time-ordered (to the millisecond), so a child is mostly handled before
    its parent, as one statement over both would (a cancelled child, not one failed by
    its cancelled parent). ``work`` opens its own transaction and
    returns how many it changed; ``done[0]`` keeps the running total for the audit row
    if a later chunk fails."""
    before = None
    while True:
        page = jobs.order_by("-id")
        if before is not None:
            page = page.filter(id__lt=before)
        ids = list(page.values_list("id", flat=True)[:BULK_CHUNK])
        if ids:
            done[0] += work(ids)
        if len(ids) < BULK_CHUNK:
            return done[0]
        before = ids[-1]


def audited(action: str, *, by: Actor, detail: dict, run: Callable[[list[int]], object]):
    """Run a chunked bulk action and write its one audit row, with the total. Chunks
    already committed when a later one fails are audited too, as incomplete."""
    done = [0]
    try:
        result = run(done)
    except Exception:
        if done[0]:
            with suppress(DatabaseError):
                audit.record(by=by, action=action, count=done[0], incomplete=True, **detail)
        raise
    extra = result if isinstance(result, dict) else {}
    audit.record(by=by, action=action, count=done[0], **extra, **detail)
    return result


def _retry_fields() -> dict:
    # The job keeps its options (priority, timeout, attempts, backoff, payload); it gets a
    # fresh set of attempts (those made so far stop counting) and a fresh stall count.
    return {
        "status": JobStatus.WAITING,
        "attempts_base": F("attempts_made"),
        "stalled_count": 0,
        "run_at": None,
        "progress": 0,
        "result": None,
        "error": "",
        "finished_at": None,
    }


def _retryable(jobs: QuerySet[Job]) -> QuerySet[Job]:
    """Failed or cancelled, no longer held by a worker, and no unfinished job of the queue
    holds its unique_key (the retry would break the one-unfinished-job rule)."""
    twin = Job.objects.filter(
        queue=OuterRef("queue"), unique_key=OuterRef("unique_key"), status__in=UNFINISHED
    ).exclude(pk=OuterRef("pk"))
    # ``unique_key = NULL`` matches nothing, so keyless jobs pass the NOT EXISTS.
    return jobs.filter(status__in=RETRYABLE).exclude(HELD_BY_WORKER).exclude(Exists(twin))


def retry_job(job_id: UUID | str, *, by: Actor = None) -> Job:
    """Run a failed or cancelled job again, with its original options. It waits as
    ``blocked`` while one of its parents is unfinished; it is refused while a required
    parent stays failed or cancelled (retry that one first, or both together)."""
    job = get_job(job_id)
    if job.status == JobStatus.CANCELLED and job.worker:
        raise InvalidJobState(
            gettext("job %(id)s was cancelled and its handler is still stopping; retry it later")
            % {"id": job.pk},
            state=job.status,
        )
    with transaction.atomic():
        retried, refusals = _retry_chunk([job.pk], Job.objects.filter(pk=job.pk))
        if not retried:
            reason = refusals.get(job.pk) or gettext("cannot be retried")
            raise InvalidJobState(
                gettext("job %(id)s %(reason)s") % {"id": job.pk, "reason": reason},
                state=job.status,
            )
        audit.record(by=by, action="retry_jobs", target=str(job.pk), count=1)
    job.refresh_from_db()
    return job


def retry_jobs(jobs: QuerySet[Job], *, by: Actor = None, **detail) -> int:
    """Retry every failed or cancelled job in ``jobs`` (e.g. the dead-letter set,
    filtered), in chunks. Returns how many. ``detail`` goes into the audit row.

    Of jobs sharing a (queue, unique_key), only the newest is retried. A job whose parent
    is unfinished, or is a failed required parent retried in the same call, waits as
    ``blocked``; one whose required parent stays failed is left as it is."""

    def work(ids: list[UUID]) -> int:
        return _retry_chunk(ids, jobs)[0]

    return audited(
        "retry_jobs",
        by=by,
        detail=detail,
        run=lambda done: each_chunk(_retryable(jobs), work, done),
    )


def _retry_chunk(ids: list[UUID], jobs: QuerySet[Job]) -> tuple[int, dict[UUID, str]]:
    """Retry the jobs ``ids`` (a chunk of ``jobs``) in one transaction. Returns how many
    were retried and, for the others, why not."""
    for attempt in range(KEY_RACE_TRIES):
        try:
            with transaction.atomic():
                return _retry_locked(ids, jobs)
        except IntegrityError:
            # A concurrent enqueue took a unique_key after our twin check read the table;
            # the partial unique index refused the retry. Its row is committed now.
            if attempt == KEY_RACE_TRIES - 1:
                raise InvalidJobState(
                    gettext("a concurrent enqueue keeps taking these jobs' unique_key; retry later")
                ) from None
    raise AssertionError("unreachable")


def _retry_locked(ids: list[UUID], jobs: QuerySet[Job]) -> tuple[int, dict[UUID, str]]:
    wanted = set(ids)
    links = defaultdict(list)
    for child, parent, required in JobDependency.objects.filter(job_id__in=ids).values_list(
        "job_id", "parent_id", "required"
    ):
        links[child].append((parent, required))
    # The chunk and its parents in one statement, in id order: two retries, a finalize
    # and an enqueue that locks parents (all in id order) cannot deadlock on them.
    parents = {parent for edges in links.values() for parent, _ in edges}
    locked = list(
        lock_jobs(wanted | parents).values_list(
            "id", "queue_id", "queue__name", "unique_key", "status", "worker"
        )
    )
    state = {row[0]: row[4] for row in locked}
    refusals: dict[UUID, str] = {}
    candidates = []
    for job_id, queue_id, queue_name, key, status, worker in locked:
        if job_id not in wanted:
            continue
        if status not in RETRYABLE:
            refusals[job_id] = gettext(
                "is %(status)s; only failed or cancelled jobs can be retried"
            ) % {"status": status_word(status)}
        elif status == JobStatus.CANCELLED and worker:
            refusals[job_id] = gettext(
                "was cancelled and its handler is still stopping; retry it later"
            )
        else:
            candidates.append((job_id, queue_id, queue_name, key))
    _refuse_key_clashes(candidates, refusals)

    for child, edges in links.items():
        # A parent deleted meanwhile took its link with it.
        links[child] = [(parent, required) for parent, required in edges if parent in state]
    failing = {p for c, *_ in candidates for p, req in links[c] if req and state[p] in FAILING}
    # A failed required parent that this same call retries: the child waits for it.
    coming = set(_retryable(jobs).filter(id__in=failing).values_list("id", flat=True))
    blocked = _decide_dependencies(candidates, links, state, coming, refusals)

    retried = [c for c, *_ in candidates if c not in refusals]
    waiting = {c for c in retried if c not in blocked}
    Job.objects.filter(id__in=sorted(waiting)).update(**_retry_fields())
    Job.objects.filter(id__in=sorted(blocked)).update(
        **{**_retry_fields(), "status": JobStatus.BLOCKED}
    )
    names = {name for c, _, name, _ in candidates if c in waiting}
    # A failed parent that will not be retried after all (refused here, or in an earlier
    # chunk) decides children this call blocked on it, as finishing would have.
    low = min(ids)
    settled = [p for p in coming if p >= low and p not in waiting and p not in blocked]
    settled += [c for c, _, _, _ in candidates if c in refusals and state[c] in FAILING]
    names.update(resolve_dependants(sorted(set(settled))))
    doorbell.ring_on_commit(sorted(names))
    job_status_changed(retried)
    return len(retried), refusals


def _refuse_key_clashes(candidates: list[tuple], refusals: dict[UUID, str]) -> None:
    """Refuse jobs whose unique_key an unfinished job holds, and all but the newest of
    the chunk's jobs sharing one (older ones of earlier chunks met the newest as the
    unfinished twin: chunks go newest first)."""
    keyed = [(c, q, name, k) for c, q, name, k in candidates if k is not None]
    if not keyed:
        return
    taken = set(
        Job.objects.filter(
            status__in=UNFINISHED,
            queue_id__in={q for _, q, _, _ in keyed},
            unique_key__in={k for _, _, _, k in keyed},
        ).values_list("queue_id", "unique_key")
    )
    for job_id, queue_id, queue_name, key in sorted(keyed, reverse=True):
        if (queue_id, key) in taken:
            refusals[job_id] = gettext(
                "cannot be retried: another unfinished job of queue %(queue)s has its "
                "unique_key %(key)s"
            ) % {"queue": queue_name, "key": repr(key)}
        taken.add((queue_id, key))  # the newest of the chunk takes it


def _decide_dependencies(candidates, links, state, coming, refusals) -> set[UUID]:
    """Which candidates start ``blocked``; refuse those whose required parent stays
    failed or cancelled (a parent refused in this chunk counts, through chains)."""
    blocked: set[UUID] = set()
    changed = True
    while changed:
        changed = False
        for child, _, _, _ in candidates:
            if child in refusals:
                continue
            for parent, required in links[child]:
                status = state[parent]
                if status in UNFINISHED:
                    blocked.add(child)
                elif required and status in FAILING:
                    if parent in coming and parent not in refusals:
                        blocked.add(child)
                    else:
                        refusals[child] = gettext(
                            "cannot be retried: its required dependency %(parent)s is "
                            "%(status)s; retry that job first, or both together"
                        ) % {"parent": parent, "status": status_word(status)}
                        blocked.discard(child)
                        changed = True
                        break
    return blocked


def cancel_job(job_id: UUID | str, *, by: Actor = None) -> Job:
    """Cancel a job that has not finished. An active job's handler should check
    ``ctx.is_cancelled()``; if it has not stopped after ``CANCEL_GRACE`` seconds it is
    interrupted. Whatever it returns afterwards is discarded."""
    job = get_job(job_id)
    with transaction.atomic():
        if not _cancel(Job.objects.filter(pk=job.pk)):
            job.refresh_from_db()
            if job.status in FINAL_STATUSES:
                message = gettext("job %(id)s is already %(status)s; it cannot be cancelled") % {
                    "id": job.pk,
                    "status": status_word(job.status),
                }
            else:
                message = gettext(
                    "job %(id)s is already not cancellable; it cannot be cancelled"
                ) % {"id": job.pk}
            raise InvalidJobState(message, state=job.status)
        audit.record(by=by, action="cancel_jobs", target=str(job.pk), count=1)
    job.refresh_from_db()
    return job


def cancel_jobs(jobs: QuerySet[Job], *, by: Actor = None, **detail) -> int:
    """Cancel every unfinished job in ``jobs``, in chunks. Returns how many."""

    def work(ids: list[UUID]) -> int:
        with transaction.atomic():
            return _cancel(jobs.filter(id__in=ids))

    return audited(
        "cancel_jobs",
        by=by,
        detail=detail,
        run=lambda done: each_chunk(jobs.filter(status__in=CANCELLABLE), work, done),
    )


def _cancel(jobs: QuerySet[Job]) -> int:
    """Cancel a bounded set of jobs (one job, or one chunk) in the caller's transaction."""
    # In id order, as finalize locks the same jobs (queues/locks.py).
    ids = lock_job_ids(jobs.filter(status__in=CANCELLABLE))
    if not ids:
        return 0
    # An active job keeps its worker and lock until its handler stops: the worker's keeper
    # renews the lock meanwhile, and a job still stopping cannot be retried or deleted.
    count = Job.objects.filter(id__in=ids, status__in=CANCELLABLE).update(
        status=JobStatus.CANCELLED, finished_at=timezone.now()
    )
    parents = Job.objects.filter(id__in=ids, has_dependants=True).values_list("id", flat=True)
    doorbell.ring_on_commit(resolve_dependants(list(parents)))
    job_status_changed(ids)
    if signals.job_cancelled.has_listeners():
        rows = Job.objects.filter(id__in=ids).values_list("id", "queue__name", "name")
        signals.send_on_commit(
            signals.job_cancelled, [{"job_id": i, "queue": q, "name": n} for i, q, n in rows]
        )
    return count


def promote_job(job_id: UUID | str, *, by: Actor = None) -> Job:
    """Run a delayed job now."""
    job = get_job(job_id)
    with transaction.atomic():
        if not _promote(Job.objects.filter(pk=job.pk)):
            job.refresh_from_db()
            raise InvalidJobState(
                gettext("job %(id)s is %(status)s; only delayed jobs can be promoted")
                % {"id": job.pk, "status": status_word(job.status)},
                state=job.status,
            )
        audit.record(by=by, action="promote_jobs", target=str(job.pk), count=1)
    job.refresh_from_db()
    return job


def promote_jobs(jobs: QuerySet[Job], *, by: Actor = None, **detail) -> int:
    """Run delayed jobs now, in chunks. Returns how many."""

    def work(ids: list[UUID]) -> int:
        return _promote(jobs.filter(id__in=ids))

    return audited(
        "promote_jobs",
        by=by,
        detail=detail,
        run=lambda done: each_chunk(jobs.filter(status=JobStatus.DELAYED), work, done),
    )


def _promote(jobs: QuerySet[Job]) -> int:
    """Promote a bounded set of delayed jobs (one job, or one chunk)."""
    with transaction.atomic():
        # Locked in id order before the UPDATE, which would lock them in its plan's order
        # and deadlock with a cancel of the same chunk (queues/locks.py).
        ids = lock_job_ids(jobs.filter(status=JobStatus.DELAYED))
        names = list(
            Job.objects.filter(id__in=ids).values_list("queue__name", flat=True).distinct()
        )
        count = Job.objects.filter(id__in=ids, status=JobStatus.DELAYED).update(
            status=JobStatus.WAITING, run_at=timezone.now()
        )
        doorbell.ring_on_commit(names)
        job_status_changed(ids)
    return count


def delete_job(job_id: UUID | str, *, by: Actor = None) -> None:
    """Delete one job with its attempts, logs and links. An active job (or one still
    stopping after a cancel) is refused: its worker still has to record the attempt."""
    job = get_job(job_id)
    with transaction.atomic():
        deleted, skipped = _delete(Job.objects.filter(pk=job.pk), [0])
        if skipped:
            raise InvalidJobState(
                gettext("job %(id)s is active; cancel it first") % {"id": job.pk},
                state=job.status,
            )
        audit.record(by=by, action="delete_jobs", target=str(job.pk), count=deleted)


def delete_jobs(jobs: QuerySet[Job], *, by: Actor = None, **detail) -> tuple[int, int]:
    """Delete jobs with their attempts, logs and links, in chunks. Active jobs are skipped
    (cancel them first): their worker still has to record the attempt. Unfinished jobs
    are cancelled first so their dependants are resolved. Returns (deleted, skipped)."""
    outcome = {}

    def run(done: list[int]) -> dict:
        outcome["result"] = _delete(jobs, done)
        return {"skipped": outcome["result"][1]}

    audited("delete_jobs", by=by, detail=detail, run=run)
    return outcome["result"]


_RUNNING = HELD_BY_WORKER


def _delete(jobs: QuerySet[Job], done: list[int]) -> tuple[int, int]:
    skipped = jobs.filter(_RUNNING).count()

    def work(ids: list[UUID]) -> int:
        with transaction.atomic():
            _cancel(Job.objects.filter(id__in=ids, status__in=UNSTARTED))
            return delete_ids(ids, statuses=list(FINAL_STATUSES))

    return each_chunk(jobs.exclude(_RUNNING), work, done), skipped


def delete_ids(ids, *, statuses) -> int:
    """Delete the given jobs still in ``statuses``, related rows first, set-based: no job
    is loaded. ``ids`` is bounded by the caller (a chunk, a retention batch)."""
    if not ids:
        return 0
    with transaction.atomic():
        # Never a job a worker still holds (active, or cancelled and still stopping).
        ids = lock_job_ids(
            Job.objects.filter(id__in=ids, status__in=statuses).exclude(HELD_BY_WORKER),
            skip_locked=True,
        )
        if not ids:
            return 0
        # Django's delete() would load every job to apply ScheduleRun.job's SET_NULL in
        # Python. The relations are done here, one statement each, whichever app adds one.
        for relation in Job._meta.related_objects:
            field = relation.field.name
            rows = relation.related_model._base_manager.filter(**{f"{field}__in": ids})
            if relation.on_delete is models.SET_NULL:
                rows.update(**{field: None})
            elif relation.on_delete is models.CASCADE:
                # Attempts, logs and links have no rows pointing at them in turn.
                rows._raw_delete(rows.db)
            else:
                raise NotImplementedError(f"{relation} has on_delete={relation.on_delete}")
        jobs = Job.objects.filter(id__in=ids)
        return jobs._raw_delete(jobs.db)
