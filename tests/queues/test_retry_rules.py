"""Retry rules: unique keys (one unfinished job per key), dependencies, the stall count."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from queues import cancel_job, enqueue, retry_job
from queues.engine.recovery import recover_stalled
from queues.engine.runner import drain
from queues.exceptions import InvalidJobState
from queues.models import Job, JobStatus, Queue
from queues.selectors import dead_letters
from queues.services import jobs as job_services
from queues.services import retry_jobs
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db

W, B, F, C = JobStatus.WAITING, JobStatus.BLOCKED, JobStatus.FAILED, JobStatus.COMPLETED
X, A = JobStatus.CANCELLED, JobStatus.ACTIVE


def status(*jobs: Job) -> list[str]:
    return [Job.objects.get(pk=j.pk).status for j in jobs]


def rows(*jobs: Job) -> list[dict]:
    return list(Job.objects.filter(pk__in=[j.pk for j in jobs]).order_by("pk").values())


def failed(queue: str = "default", **options) -> Job:
    job = enqueue("platform.fail", {"permanent": True}, queue=queue, **options)
    drain(queue)
    assert status(job) == [F]
    return job


@pytest.fixture(params=[1000, 1], ids=["one-chunk", "chunk-of-one"])
def chunk(request, monkeypatch):
    monkeypatch.setattr(job_services, "BULK_CHUNK", request.param, raising=False)
    return request.param


# --- M1: unique keys ------------------------------------------------------------------------
def test_retrying_failed_twins_with_one_unique_key_retries_only_the_newest(chunk):
    older, newer = failed(unique_key="k"), failed(unique_key="k")
    other_queue = failed("email", unique_key="k")
    before = rows(older)
    assert retry_jobs(dead_letters()) == 2
    assert status(older, newer, other_queue) == [F, W, W]
    assert rows(older) == before
    assert retry_jobs(dead_letters()) == 0  # the newest is unfinished: the older one waits
    assert rows(older) == before


def test_retry_job_losing_the_key_to_a_concurrent_enqueue_is_refused(transactional_db):
    job = failed(unique_key="k")
    before = rows(job)
    queue = Queue.objects.get(name="default")
    inserted, go, errors = threading.Event(), threading.Event(), []
    retrier_pid = connection.connection.info.backend_pid

    def enqueue_twin():
        # An enqueue whose INSERT the retry's twin check cannot see yet (not committed).
        try:
            with transaction.atomic():
                Job.objects.create(queue=queue, name="platform.echo", unique_key="k")
                inserted.set()
                go.wait(10)
        except Exception as exc:  # reported to the test below
            errors.append(exc)
        finally:
            connections.close_all()

    twin = threading.Thread(target=enqueue_twin)
    twin.start()
    assert inserted.wait(10)
    waiter = threading.Thread(target=_commit_when_blocked, args=(retrier_pid, go))
    waiter.start()
    try:
        with pytest.raises(InvalidJobState, match="has its unique_key 'k'"):
            retry_job(job.pk)
    finally:
        go.set()
        twin.join(10)
        waiter.join(10)
    assert errors == []
    assert rows(job) == before
    assert Job.objects.filter(unique_key="k", status=W).count() == 1


def _commit_when_blocked(pid: int, go: threading.Event) -> None:
    """Let the concurrent enqueue commit once the retry waits on its row in the index."""
    try:

        def blocked():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE pid = %s AND wait_event_type = 'Lock'",
                    [pid],
                )
                return cursor.fetchone()[0]

        wait_for(blocked, timeout=10, message="the retry to wait on the enqueue's row")
    finally:
        go.set()
        connections.close_all()


# --- M2: dependencies -----------------------------------------------------------------------
def flaky_parent(**options) -> Job:
    """Fails its first attempt for good (attempts=1); a retry succeeds."""
    return enqueue("test.flaky", {"succeed_on": 2}, attempts=1, **options)


def child_of(*parents: Job, **options) -> Job:
    return enqueue(
        "test.record", {"tag": "child", "n": 0}, depends_on=[p.pk for p in parents], **options
    )


def test_retrying_a_failed_flow_runs_the_child_only_after_its_parent(chunk):
    parent = flaky_parent()
    child = child_of(parent, queue="email")
    drain("default")
    assert status(parent, child) == [F, F]
    assert retry_jobs(dead_letters()) == 2
    assert status(parent, child) == [W, B]
    assert drain("email") == 0  # blocked: not claimed
    assert drain("default") == 1
    assert status(parent, child) == [C, W]
    assert drain("email") == 1
    assert status(child) == [C]
    parent_done = Job.objects.get(pk=parent.pk).finished_at
    assert Job.objects.get(pk=child.pk).started_at >= parent_done  # its one attempt


def test_retrying_a_cancelled_child_keeps_it_blocked_while_its_parent_is_unfinished():
    parent = enqueue("platform.echo", {})
    child = child_of(parent, queue="email")
    cancel_job(child.pk)
    assert status(parent, child) == [W, X]
    assert retry_job(child.pk).status == B
    assert drain("email") == 0
    Job.objects.filter(pk=parent.pk).update(status=A)  # running now: still blocked
    cancel_job(child.pk)
    assert retry_job(child.pk).status == B
    Job.objects.filter(pk=parent.pk).update(status=W, worker="")
    drain("default")
    assert status(parent, child) == [C, W]


def test_retrying_a_child_whose_required_parent_stays_failed_is_refused_and_changes_nothing():
    parent = failed()
    child = child_of(parent)
    assert status(child) == [F]
    before = rows(parent, child)
    with pytest.raises(InvalidJobState, match=f"required dependency {parent.pk} is failed"):
        retry_job(child.pk)
    assert retry_jobs(Job.objects.filter(pk=child.pk)) == 0
    assert rows(parent, child) == before


def test_retrying_a_chain_whose_root_stays_failed_changes_nothing(chunk):
    root = failed()
    middle = child_of(root)
    leaf = child_of(middle)
    assert status(root, middle, leaf) == [F, F, F]
    before = rows(root, middle, leaf)
    retried = retry_jobs(Job.objects.filter(pk__in=[middle.pk, leaf.pk]))
    assert status(root, middle, leaf) == [F, F, F]
    if chunk > 1:  # decided within one chunk: nothing was touched at all
        assert retried == 0
        assert rows(root, middle, leaf) == before


def test_a_retried_child_of_a_failed_optional_parent_waits_to_run():
    parent = failed()
    child = child_of(parent, dependencies_mode="optional")
    drain("default")
    assert status(child) == [C]
    Job.objects.filter(pk=child.pk).update(status=F, finished_at=timezone.now())
    assert retry_job(child.pk).status == W


# --- M3: the stall count --------------------------------------------------------------------
def test_a_retried_job_starts_with_no_stalls_counted():
    job = enqueue("platform.echo", {})
    max_stalled = Job.objects.get(pk=job.pk).queue.max_stalled
    locked_until = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        status=F, stalled_count=max_stalled + 1, error="stalled", finished_at=locked_until
    )
    retried = retry_job(job.pk)
    assert (retried.status, retried.stalled_count) == (W, 0)
    # Its first stall after the retry is one stall, not one too many.
    Job.objects.filter(pk=job.pk).update(
        status=A, worker="w:1", locked_until=locked_until, attempts_made=1
    )
    recover_stalled(now=locked_until + timedelta(seconds=1))
    job.refresh_from_db()
    assert (job.status, job.stalled_count) == (W, 1)
