"""Bulk actions run in keyset chunks, each its own transaction, never holding every id."""

import math
import re
from datetime import timedelta

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from queues import enqueue_many
from queues.models import AuditLog, Job, JobAttempt, JobStatus
from queues.services import (
    cancel_jobs,
    clean_queue,
    delete_jobs,
    empty_queue,
    promote_jobs,
    retry_jobs,
)
from queues.services import jobs as job_services
from scheduling.models import ScheduleRun
from scheduling.services import create_schedule

W, F, C, X, A, D = (
    JobStatus.WAITING,
    JobStatus.FAILED,
    JobStatus.COMPLETED,
    JobStatus.CANCELLED,
    JobStatus.ACTIVE,
    JobStatus.DELAYED,
)
CHUNK = 3
N = 10  # four chunks of at most CHUNK


def make(count: int, status: str, **fields) -> list:
    jobs = enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(count)])
    ids = [j.pk for j in jobs]
    Job.objects.filter(pk__in=ids).update(status=status, **fields)
    return ids


def statuses() -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in Job.objects.values_list("status", flat=True):
        counts[value] = counts.get(value, 0) + 1
    return counts


def longest_id_list(sql: str) -> int:
    """The most job ids one ``IN (...)`` of the statement names."""
    groups = re.findall(r" IN \(([^()]*)\)", sql)
    return max((group.count("::uuid") for group in groups), default=0)


def finished_ago(minutes: int) -> dict:
    return {"finished_at": timezone.now() - timedelta(minutes=minutes)}


OPERATIONS = {
    "retry": (
        lambda: make(N, F, **finished_ago(5)),
        lambda: retry_jobs(Job.objects.filter(status=F), by="test"),
        N,
        {W: N},
    ),
    "cancel": (
        lambda: make(N, W),
        lambda: cancel_jobs(Job.objects.all(), by="test"),
        N,
        {X: N},
    ),
    "promote": (
        lambda: make(N, D, run_at=timezone.now() + timedelta(hours=1)),
        lambda: promote_jobs(Job.objects.all(), by="test"),
        N,
        {W: N},
    ),
    "delete": (
        lambda: (make(N - 1, F, **finished_ago(5)), make(1, A, worker="w:1")),
        lambda: delete_jobs(Job.objects.all(), by="test"),
        (N - 1, 1),
        {A: 1},
    ),
    "empty_queue": (
        lambda: make(N, W),
        lambda: empty_queue("default", by="test"),
        N,
        {},
    ),
    "clean_completed": (
        lambda: make(N, C, **finished_ago(5)),
        lambda: clean_queue("default", status="completed", limit=N - 2, by="test"),
        N - 2,
        {C: 2},
    ),
    "clean_waiting": (
        lambda: make(N, W),
        lambda: clean_queue("default", status="waiting", by="test"),
        N,
        {},
    ),
}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_bulk_action_over_more_than_a_chunk_works_chunk_by_chunk(
    operation, transactional_db, monkeypatch
):
    setup, run, expected, after = OPERATIONS[operation]
    setup()
    monkeypatch.setattr(job_services, "BULK_CHUNK", CHUNK, raising=False)
    database = connections["default"]
    commits = []
    real_commit = database.commit
    monkeypatch.setattr(database, "commit", lambda: (commits.append(1), real_commit()))
    with CaptureQueriesContext(database) as queries:
        assert run() == expected
    assert statuses() == after
    total = expected[0] if isinstance(expected, tuple) else expected
    # Each chunk committed on its own (the audit row after them, in autocommit)...
    assert len(commits) == math.ceil(total / CHUNK)
    # ...and no statement named more ids than one chunk.
    assert max(longest_id_list(q["sql"]) for q in queries.captured_queries) <= CHUNK
    audit = AuditLog.objects.get()
    assert (audit.username, audit.count) == ("test", total)


def test_a_bulk_delete_takes_the_related_rows_without_loading_jobs(transactional_db, monkeypatch):
    ids = make(N, F, **finished_ago(5))
    now = timezone.now()
    JobAttempt.objects.bulk_create(JobAttempt(job_id=i, number=1, started_at=now) for i in ids)
    schedule = create_schedule(name="nightly", handler="platform.echo", cron="0 2 * * *")
    run = ScheduleRun.objects.create(
        schedule=schedule, due_at=now, fired_at=now, trigger="scheduled", job_id=ids[0]
    )
    monkeypatch.setattr(job_services, "BULK_CHUNK", CHUNK, raising=False)
    loaded = []
    monkeypatch.setattr(Job, "__init__", _spy(Job.__init__, loaded))
    assert delete_jobs(Job.objects.all()) == (N, 0)
    assert loaded == []  # no Job instance was built to delete them
    assert Job.objects.count() == JobAttempt.objects.count() == 0
    run.refresh_from_db()
    assert run.job_id is None  # the schedule's history keeps the run, without its job


def _spy(init, calls):
    def wrapper(self, *args, **kwargs):
        calls.append(1)
        init(self, *args, **kwargs)

    return wrapper


@pytest.mark.parametrize("chunk", [1000, 1], ids=["one-chunk", "chunk-of-one"])
def test_cancelling_a_flow_chunk_by_chunk_leaves_nothing_runnable(chunk, db, monkeypatch):
    monkeypatch.setattr(job_services, "BULK_CHUNK", chunk)
    parent = enqueue_many([{"name": "platform.echo", "payload": {}}])[0]
    child = enqueue_many([{"name": "platform.echo", "payload": {}, "depends_on": [parent.pk]}])[0]
    cancelled = cancel_jobs(Job.objects.all())
    child.refresh_from_db()
    if chunk > 1 or child.pk > parent.pk:  # the child's chunk first: as one statement
        assert (cancelled, statuses(), child.error) == (2, {X: 2}, "")
    else:  # ids are time-ordered to the millisecond only: the parent's chunk came first
        assert (cancelled, statuses()) == (1, {X: 1, F: 1})
        assert child.error == f"dependency {parent.pk} cancelled; this job needed it to complete"
