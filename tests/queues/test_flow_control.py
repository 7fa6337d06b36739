"""Flow control: dependencies (flows), unique jobs, dead letters, queue operations, retention."""

import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from queues import (
    cancel_job,
    cancel_jobs,
    clean_queue,
    empty_queue,
    enqueue,
    enqueue_many,
    retry_job,
)
from queues.engine.runner import drain
from queues.exceptions import EnqueueError, InvalidJobState, QueueNotFound, UnknownDependency
from queues.models import AttemptOutcome, Job, JobAttempt, JobDependency, JobStatus, Queue
from queues.selectors import dead_letters, job_dependants, job_dependencies
from queues.services import apply_retention, retry_jobs
from tests.queues import handlers

pytestmark = pytest.mark.django_db

W, B, F, C = JobStatus.WAITING, JobStatus.BLOCKED, JobStatus.FAILED, JobStatus.COMPLETED
X, A, D = JobStatus.CANCELLED, JobStatus.ACTIVE, JobStatus.DELAYED


def status(*jobs: Job) -> list[str]:
    return [Job.objects.get(pk=j.pk).status for j in jobs]


def pks(jobs) -> set:
    return {j.pk for j in jobs}


def error(job: Job) -> str:
    return Job.objects.get(pk=job.pk).error


def ago(*jobs: Job, **delta) -> None:
    """Pretend the jobs finished that long ago."""
    Job.objects.filter(pk__in=pks(jobs)).update(finished_at=timezone.now() - timedelta(**delta))


def earlier_try(*jobs: Job) -> None:
    """Give each job an attempt row, as a failed try before its last would have left: a
    completed attempt lives on its job's row, so only history has rows to delete."""
    JobAttempt.objects.bulk_create(
        JobAttempt(job_id=j.pk, number=0, started_at=j.created_at, outcome=AttemptOutcome.FAILED)
        for j in jobs
    )


def echo(queue: str = "default", **options) -> Job:
    return enqueue("platform.echo", {}, queue=queue, **options)


def spec(tag: str, *deps: str) -> dict:
    return {"name": "test.record", "payload": {"tag": tag, "n": 0}, "ref": tag, "depends_on": deps}


def permanent_failure(queue: str = "default") -> Job:
    return enqueue("platform.fail", {"message": "boom", "permanent": True}, queue=queue)


# --- dependencies ---------------------------------------------------------------------------
def test_fan_out_children_wait_for_their_parent_then_run():
    parent = echo()
    children = [echo("email", depends_on=[parent.pk]) for _ in range(3)]
    assert [c.status for c in children] == [B, B, B]
    assert list(job_dependants(parent)) == children  # selectors: in creation order
    assert list(job_dependencies(children[1])) == [parent]
    assert drain("email") == 0  # blocked jobs are not claimed
    assert drain("default") == 1
    assert status(parent, *children) == [C, W, W, W]
    assert drain("email") == 3
    assert status(*children) == [C, C, C]


def test_fan_in_child_waits_for_the_last_parent():
    parents = [echo(q) for q in ("default", "sms", "notification")]
    child = echo("email", depends_on=[str(p.pk) for p in parents])
    assert list(job_dependencies(child)) == parents
    assert [list(job_dependants(p)) for p in parents] == [[child]] * 3
    assert drain("default") == 1
    assert drain("sms") == 1
    assert status(child) == [B]
    assert drain("email") == 0
    assert drain("notification") == 1
    assert status(child) == [W]
    assert drain("email") == 1
    assert status(child) == [C]


def test_a_failed_required_parent_fails_child_and_grandchild_without_running_them():
    parent = permanent_failure()
    child = echo("email", depends_on=[parent.pk])
    grandchild = echo("email", depends_on=[child.pk])
    drain("default")
    assert status(parent, child, grandchild) == [F, F, F]
    assert error(child) == f"dependency {parent.pk} failed; this job needed it to complete"
    assert error(grandchild) == f"dependency {child.pk} failed; this job needed it to complete"
    assert not Job.objects.filter(pk__in=pks([child, grandchild]), finished_at=None).exists()
    assert drain("email") == 0
    assert JobAttempt.objects.filter(job__in=[child, grandchild]).count() == 0


def test_an_optional_dependency_runs_the_child_anyway():
    parent = permanent_failure()
    child = echo("email", depends_on=[parent.pk], dependencies_mode="optional")
    assert child.status == B
    drain("default")
    assert status(parent, child) == [F, W]
    assert drain("email") == 1
    child.refresh_from_db()
    assert (child.status, child.error, child.attempts_made) == (C, "", 1)


def test_cancelling_a_parent_fails_only_its_required_children():
    parent = echo()
    required = echo("email", depends_on=[parent.pk])
    optional = echo("sms", depends_on=parent.pk, dependencies_mode="optional")
    cancel_job(parent.pk)
    assert status(parent, required, optional) == [X, F, W]
    assert error(required) == f"dependency {parent.pk} cancelled; this job needed it to complete"


@pytest.mark.parametrize(
    ("parent_outcome", "mode", "expected"),
    [
        ("failed", "required", F),
        ("failed", "optional", W),
        ("cancelled", "required", F),
        ("completed", "required", W),
    ],
)
def test_a_parent_finished_before_enqueue_decides_the_child_at_once(parent_outcome, mode, expected):
    if parent_outcome == "cancelled":
        parent = cancel_job(echo().pk)
    else:
        parent = permanent_failure() if parent_outcome == "failed" else echo()
        drain("default")
    child = echo("email", depends_on=[parent], dependencies_mode=mode)
    assert child.status == expected == Job.objects.get(pk=child.pk).status
    if expected == F:
        assert child.error == "a required dependency had already failed or been cancelled"
        assert child.finished_at is not None
    assert list(job_dependencies(child)) == [Job.objects.get(pk=parent.pk)]


def test_enqueue_many_builds_a_dag_from_refs_in_one_call():
    handlers.started.clear()
    # Refs may name later specs as well as earlier ones.
    d, b, c, a = enqueue_many([spec("d", "b", "c"), spec("b", "a"), spec("c", "a"), spec("a")])
    assert status(a, b, c, d) == [W, B, B, B]
    assert JobDependency.objects.count() == 4
    assert pks(job_dependencies(d)) == {b.pk, c.pk}
    assert pks(job_dependants(a)) == {b.pk, c.pk}
    assert pks(job_dependencies(a)) == pks(job_dependants(d)) == set()
    assert pks(Job.objects.filter(has_dependants=True)) == {a.pk, b.pk, c.pk}
    assert drain("default") == 4
    tags = [tag for tag, _ in handlers.started]
    assert tags[0] == "a" and sorted(tags[1:3]) == ["b", "c"] and tags[3] == "d"
    assert status(a, b, c, d) == [C, C, C, C]


# --- bad input writes nothing ---------------------------------------------------------------
def one(**options):
    return lambda: enqueue("platform.echo", {}, **options)


def many(*specs):
    return lambda: enqueue_many([{"name": "platform.echo", **s} for s in specs])


BAD_INPUT = {
    "unknown-id": (one(depends_on=[uuid.uuid4()]), UnknownDependency, "no job has id"),
    "unknown-id-in-many": (
        many({}, {"depends_on": str(uuid.uuid4())}),
        UnknownDependency,
        "no job",
    ),
    "not-a-uuid": (one(depends_on=["nope"]), EnqueueError, "dependency 'nope' is not a job id"),
    "cycle": (
        many({"ref": "a", "depends_on": ["b"]}, {"ref": "b", "depends_on": ["a"]}),
        EnqueueError,
        "dependency cycle: a -> b -> a",
    ),
    "self": (many({"ref": "a", "depends_on": "a"}), EnqueueError, "dependency cycle: a -> a"),
    "duplicate-ref": (many({"ref": "a"}, {"ref": "a"}), EnqueueError, "#1: ref must be a unique"),
    "bad-mode": (one(dependencies_mode="sometimes"), EnqueueError, "dependencies_mode must be"),
    "key-not-str": (one(unique_key=42), EnqueueError, "unique_key must be a string"),
    "key-empty": (one(unique_key=""), EnqueueError, "unique_key must be a string"),
    "key-too-long": (one(unique_key="k" * 201), EnqueueError, "unique_key must be a string"),
    "attempts-0": (one(attempts=0), EnqueueError, "from 1 to 1000, got 0"),
    "attempts-1001": (one(attempts=1001), EnqueueError, "from 1 to 1000, got 1001"),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_refused_and_writes_nothing(case):
    call, error, match = BAD_INPUT[case]
    with pytest.raises(error, match=match) as raised:
        call()
    assert type(raised.value) is error
    assert Job.objects.count() == 0
    assert JobDependency.objects.count() == 0


# --- unique jobs ----------------------------------------------------------------------------
def test_unique_key_returns_the_unfinished_job_until_it_finishes():
    parent = echo("sms")
    first = enqueue("platform.echo", {"v": 1}, unique_key="k", depends_on=[parent.pk])
    again = enqueue("platform.echo", {"v": 2}, unique_key="k", depends_on=[parent.pk])
    assert again.pk == first.pk and again.payload == {"v": 1}
    assert JobDependency.objects.count() == 1  # the duplicate added no link either
    other_queue = echo("email", unique_key="k")
    assert other_queue.pk != first.pk
    assert Job.objects.filter(unique_key="k").count() == 2
    drain("sms")
    assert drain("default") == 1
    fresh = enqueue("platform.echo", {"v": 3}, unique_key="k")
    assert fresh.pk != first.pk and fresh.status == W
    assert status(first) == [C]
    assert Job.objects.filter(queue__name="default", unique_key="k").count() == 2


def test_enqueue_many_with_one_key_twice_writes_one_row():
    first, second = enqueue_many(
        [{"name": "platform.echo", "payload": {"i": i}, "unique_key": "k"} for i in range(2)]
    )
    assert first.pk == second.pk
    assert list(Job.objects.values_list("payload", flat=True)) == [{"i": 0}]


def test_the_database_refuses_a_second_unfinished_job_with_a_key():
    queue = Queue.objects.get(name="default")
    Job.objects.create(queue=queue, name="platform.echo", unique_key="k", status=W)
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.create(queue=queue, name="platform.echo", unique_key="k", status=B)
    # A finished job, or another queue, may hold the same key.
    Job.objects.create(queue=queue, name="platform.echo", unique_key="k", status=C)
    Job.objects.create(queue=Queue.objects.get(name="sms"), name="platform.echo", unique_key="k")
    assert Job.objects.filter(unique_key="k").count() == 3


def test_retrying_a_job_whose_unique_key_is_taken_is_refused_cleanly():
    first = enqueue("platform.fail", {"permanent": True}, unique_key="k")
    drain("default")
    second = enqueue("platform.echo", {}, unique_key="k")
    assert second.pk != first.pk
    with pytest.raises(InvalidJobState, match="has its unique_key 'k'"):
        retry_job(first.pk)
    assert retry_jobs(Job.objects.filter(status=JobStatus.FAILED)) == 0
    assert Job.objects.get(pk=first.pk).status == JobStatus.FAILED


# --- dead letters and bulk retry/cancel -----------------------------------------------------
def test_dead_letters_are_retried_in_bulk_with_their_options():
    exhausted = enqueue(
        "platform.fail", {"message": "smtp down"}, attempts=1, priority=2, timeout=7
    )
    permanent = enqueue("platform.fail", {"message": "bad", "permanent": True}, priority=9)
    done = echo()
    elsewhere = permanent_failure("email")
    drain("default")
    drain("email")
    assert set(dead_letters()) == {exhausted, permanent, elsewhere}
    assert set(dead_letters(queue="default")) == {exhausted, permanent}
    assert list(dead_letters(queue="email", name="platform.fail")) == [elsewhere]
    assert list(dead_letters(name="platform.echo")) == []
    assert {j.pk: j.error for j in dead_letters(queue="default")} == {
        exhausted.pk: "RuntimeError: smtp down (attempts exhausted: 1 of 1)",
        permanent.pk: "PermanentError: bad",
    }
    done_before = Job.objects.values().get(pk=done.pk)

    assert retry_jobs(dead_letters(queue="default")) == 2
    for job, options in ((exhausted, (2, 7.0, 1)), (permanent, (9, None, 3))):
        job.refresh_from_db()
        assert (job.priority, job.timeout, job.max_attempts) == options
        assert (job.status, job.error, job.finished_at) == (W, "", None)
        assert job.attempts_base == job.attempts_made == 1
    assert status(elsewhere) == [F]
    assert Job.objects.values().get(pk=done.pk) == done_before
    assert retry_jobs(dead_letters(queue="default")) == 0

    assert cancel_jobs(Job.objects.all()) == 2  # the two waiting again; not the finished ones
    assert status(exhausted, permanent, done, elsewhere) == [X, X, C, F]
    assert Job.objects.values().get(pk=done.pk) == done_before


# --- queue operations -----------------------------------------------------------------------
def test_empty_queue_deletes_only_waiting_jobs_unless_asked_for_delayed():
    waiting = [echo() for _ in range(2)]
    child = echo("email", depends_on=[waiting[0].pk])
    delayed = echo(delay=60)
    active, completed = echo(), echo()
    Job.objects.filter(pk=active.pk).update(status=A)
    Job.objects.filter(pk=completed.pk).update(status=C, finished_at=timezone.now())
    other = echo("email")
    assert empty_queue("default") == 2
    assert not Job.objects.filter(pk__in=pks(waiting)).exists()
    assert status(delayed, active, completed, other) == [D, A, C, W]
    # The emptied parent's required child is failed, not left blocked for ever.
    assert status(child) == [F]
    assert error(child) == f"dependency {waiting[0].pk} cancelled; this job needed it to complete"
    assert JobDependency.objects.count() == 0
    assert empty_queue("default", include_delayed=True) == 1
    assert status(active, completed, other, child) == [A, C, W, F]
    assert Job.objects.count() == 4


@pytest.mark.parametrize("remove", ["empty_queue", "clean_queue", "apply_retention"])
def test_a_failed_required_parent_fails_a_fan_in_child_at_once(remove):
    doomed = echo("email") if remove == "empty_queue" else permanent_failure("email")
    other = echo("sms")
    child = echo(depends_on=[doomed.pk, other.pk])
    if remove == "empty_queue":
        assert empty_queue("email") == 1
    else:
        drain("email")
        # Failed without waiting for `other`: it can never run.
        assert status(child) == [F]
        ago(doomed, days=30)
        if remove == "clean_queue":
            assert clean_queue("email", status="failed") == 1
        else:
            assert apply_retention() == {"email": 1}
    assert not Job.objects.filter(pk=doomed.pk).exists()
    assert status(child) == [F]
    drain("sms")
    assert status(other, child) == [C, F]


def test_clean_queue_deletes_old_completed_jobs_up_to_the_limit():
    old = [enqueue("platform.echo", {"i": i}) for i in range(3)]
    recent = echo()
    failed = permanent_failure()
    drain("default")
    earlier_try(*old, recent)
    for minutes, job in zip((30, 20, 10), old, strict=True):
        ago(job, minutes=minutes)
    ago(failed, minutes=30)
    waiting = echo()
    assert clean_queue("default", status="completed", grace_ms=60_000, limit=2) == 2
    assert not Job.objects.filter(pk__in=[old[0].pk, old[1].pk]).exists()  # the oldest two
    assert status(old[2], recent, failed, waiting) == [C, C, F, W]
    assert clean_queue("default", status="completed", grace_ms=60_000) == 1
    assert status(recent, failed, waiting) == [C, F, W]
    assert JobAttempt.objects.count() == 2  # the deleted jobs' attempts went with them


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: clean_queue("default", status="active"), InvalidJobState),
        (lambda: clean_queue("default", status="blocked"), InvalidJobState),
        (lambda: clean_queue("default", status="completed", grace_ms=-1), InvalidJobState),
        (lambda: clean_queue("default", status="completed", limit=0), InvalidJobState),
        (lambda: clean_queue("nope", status="completed"), QueueNotFound),
        (lambda: empty_queue("nope"), QueueNotFound),
    ],
    ids=["active", "blocked", "negative-grace", "zero-limit", "unknown-queue", "empty-unknown"],
)
def test_refused_queue_operations_change_nothing(call, error):
    done = echo()
    drain("default")
    ago(done, hours=1)
    Job.objects.filter(pk=echo().pk).update(status=A)
    echo(delay=60)
    echo(depends_on=[echo("email").pk])
    before = list(Job.objects.order_by("pk").values())
    with pytest.raises(error):
        call()
    assert list(Job.objects.order_by("pk").values()) == before


# --- retention ------------------------------------------------------------------------------
def test_retention_deletes_old_and_surplus_finished_jobs_only():
    Queue.objects.filter(name="default").update(
        keep_completed_count=2, keep_completed_age=3600, keep_failed_age=7200
    )
    completed = [enqueue("platform.echo", {"i": i}) for i in range(6)]
    failed = [permanent_failure() for _ in range(2)]
    drain("default")
    earlier_try(*completed)
    for job, minutes in zip([*completed, *failed], (180, 120, 4, 3, 2, 1, 180, 60), strict=True):
        ago(job, minutes=minutes)
    parent = echo()
    unfinished = [parent, echo(delay=60), echo(depends_on=[parent.pk]), echo()]
    Job.objects.filter(pk=unfinished[3].pk).update(status=A)
    ago(*unfinished, days=30)  # a stray finished_at must not expose them to retention
    email_done = echo("email")
    drain("email")
    earlier_try(email_done)
    ago(email_done, hours=3)  # the email queue keeps completed jobs for 24 h

    assert apply_retention() == {"default": 5}
    kept = {completed[4].pk, completed[5].pk, failed[1].pk, email_done.pk}
    assert pks(Job.objects.all()) == kept | pks(unfinished)
    assert status(*unfinished) == [W, D, B, A]
    assert set(JobAttempt.objects.values_list("job_id", flat=True)) == kept
    assert JobAttempt.objects.count() == 4
    assert apply_retention() == {}
