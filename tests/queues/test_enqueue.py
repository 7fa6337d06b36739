from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from queues import Priority, enqueue, enqueue_many
from queues.doorbell import advertise, list_key_for, redis_client
from queues.exceptions import EnqueueError, UnknownHandler, UnknownQueue
from queues.models import Job, JobStatus, Queue
from tests.queues import handlers  # noqa: F401  (registers test handlers)

pytestmark = pytest.mark.django_db


def pending_messages(list_key: str = "jobplatform.all") -> int:
    from queues.doorbell import flush

    flush()  # rings go out from a background thread; settle them first
    return redis_client().llen(f"django_q:{list_key}:q")


def test_enqueue_takes_queue_defaults():
    job = enqueue("platform.echo", {"to": "alice@example.com"})
    job = Job.objects.get(pk=job.pk)
    assert job.status == JobStatus.WAITING
    assert job.queue.name == "default"
    assert job.payload == {"to": "alice@example.com"}
    assert job.priority == Priority.NORMAL
    assert job.max_attempts == 3
    assert job.backoff == {"type": "exponential", "delay": 2000}
    assert job.timeout is None
    assert job.run_at is None
    assert job.id.version == 7


def test_handler_options_then_arguments_override_queue_defaults():
    from_handler = enqueue("test.report", {})
    assert (from_handler.priority, from_handler.max_attempts, from_handler.timeout) == (3, 5, 9)
    assert from_handler.backoff == {"type": "fixed", "delay": 100}

    explicit = enqueue(
        "test.report",
        {},
        queue="email",
        priority=Priority.CRITICAL,
        attempts=1,
        backoff={"type": "exponential", "delay": 2000, "max_delay": 60000},
        timeout=2.5,
    )
    explicit.refresh_from_db()
    assert explicit.queue.name == "email"
    assert (explicit.priority, explicit.max_attempts, explicit.timeout) == (1, 1, 2.5)
    assert explicit.backoff == {"type": "exponential", "delay": 2000, "max_delay": 60000}


def test_handler_queue_is_used_when_no_queue_given():
    assert enqueue("test.record", {"tag": "x", "n": 1}).queue.name == "default"


def test_delay_and_run_at_make_delayed_jobs():
    before = timezone.now()
    delayed = enqueue("platform.echo", {}, delay=30)
    assert delayed.status == JobStatus.DELAYED
    assert (
        before + timedelta(seconds=30) <= delayed.run_at <= timezone.now() + timedelta(seconds=30)
    )

    at = timezone.now() + timedelta(minutes=5)
    assert enqueue("platform.echo", {}, run_at=at).run_at == at
    assert enqueue("platform.echo", {}, delay=timedelta(seconds=1)).status == JobStatus.DELAYED
    # Due already, or no delay at all: runnable now.
    past = enqueue("platform.echo", {}, run_at=timezone.now() - timedelta(seconds=1))
    assert past.status == JobStatus.WAITING
    assert enqueue("platform.echo", {}, delay=0).status == JobStatus.WAITING


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("no.such.handler", {}), {}, UnknownHandler, "no job handler is registered"),
        (("platform.echo", {}), {"queue": "nope"}, UnknownQueue, "no queue is named 'nope'"),
        (
            ("platform.echo", {"when": datetime(2026, 1, 1, tzinfo=UTC)}),
            {},
            EnqueueError,
            "JSON-serializable",
        ),
        (("platform.echo", {"x": float("nan")}), {}, EnqueueError, "JSON-serializable"),
        (("platform.echo", {}), {"priority": 0}, EnqueueError, "priority must be"),
        (("platform.echo", {}), {"priority": 11}, EnqueueError, "priority must be"),
        (("platform.echo", {}), {"priority": "high"}, EnqueueError, "priority must be"),
        (("platform.echo", {}), {"priority": True}, EnqueueError, "priority must be"),
        (("platform.echo", {}), {"delay": -1}, EnqueueError, "must not be negative"),
        (("platform.echo", {}), {"delay": timedelta(seconds=-5)}, EnqueueError, "negative"),
        (("platform.echo", {}), {"delay": "soon"}, EnqueueError, "delay must be seconds"),
        (("platform.echo", {}), {"delay": 1, "run_at": timezone.now()}, EnqueueError, "not both"),
        (("platform.echo", {}), {"run_at": datetime(2030, 1, 1)}, EnqueueError, "timezone-aware"),
        (("platform.echo", {}), {"attempts": 0}, EnqueueError, "attempts must be"),
        (("platform.echo", {}), {"backoff": {"type": "linear"}}, EnqueueError, "backoff type"),
        (
            ("platform.echo", {}),
            {"backoff": {"type": "fixed", "delay": -1}},
            EnqueueError,
            "backoff delay",
        ),
        (("platform.echo", {}), {"backoff": {"kind": "fixed"}}, EnqueueError, "unknown keys"),
        (("platform.echo", {}), {"timeout": 0}, EnqueueError, "timeout must be"),
        (("platform.echo", {}), {"timeout": float("inf")}, EnqueueError, "timeout must be"),
        (("platform.echo", {}), {"retries": 3}, EnqueueError, "unknown enqueue options"),
    ],
)
def test_bad_input_is_rejected_and_nothing_is_written(args, kwargs, error, message):
    advertise(list_key_for(None), [])
    with pytest.raises(error, match=message):
        enqueue(*args, **kwargs)
    assert Job.objects.count() == 0
    assert pending_messages() == 0


def test_a_payload_with_nul_is_refused():
    with pytest.raises(EnqueueError, match="NUL"):
        enqueue("platform.echo", {"s": "a\x00b"})
    assert not Job.objects.exists()


def test_workers_are_woken_only_when_the_transaction_commits(django_capture_on_commit_callbacks):
    advertise(list_key_for(None), [])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        enqueue("platform.echo", {})
    assert pending_messages() == 0
    for callback in callbacks:
        callback()
    assert pending_messages() == 1


def test_a_rolled_back_enqueue_leaves_no_job_and_rings_no_one(transactional_db):
    advertise(list_key_for(None), [])
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue("platform.echo", {})
        raise RuntimeError("caller failed")
    assert Job.objects.count() == 0
    assert pending_messages() == 0


def test_one_pending_doorbell_per_queue_and_worker_list(transactional_db):
    advertise(list_key_for(None), [])
    advertise(list_key_for(["email"]), ["email"])
    for _ in range(20):
        enqueue("platform.echo", {})
    enqueue("platform.echo", {}, queue="email")
    assert pending_messages() == 2  # default and email, each once, on the all-queues list
    assert pending_messages(list_key_for(["email"])) == 1


def test_enqueue_many_inserts_all_and_rings_once_per_queue(transactional_db):
    advertise(list_key_for(None), [])
    jobs = enqueue_many(
        [{"name": "platform.echo", "payload": {"i": i}} for i in range(300)]
        + [{"name": "platform.echo", "payload": {}, "queue": "sms", "delay": 60}]
    )
    assert len(jobs) == 301
    assert Job.objects.filter(status=JobStatus.WAITING).count() == 300
    assert Job.objects.get(queue__name="sms").status == JobStatus.DELAYED
    assert pending_messages() == 1


def test_enqueue_many_writes_nothing_when_one_spec_is_bad():
    with pytest.raises(EnqueueError, match=r"job #2: priority must be"):
        enqueue_many(
            [
                {"name": "platform.echo", "payload": {}},
                {"name": "platform.echo", "payload": {}},
                {"name": "platform.echo", "payload": {}, "priority": 99},
            ]
        )
    with pytest.raises(UnknownHandler, match=r"job #1"):
        enqueue_many([{"name": "platform.echo"}, {"name": "missing"}])
    with pytest.raises(EnqueueError, match=r"job #0: each spec"):
        enqueue_many([{"payload": {}}])
    assert Job.objects.count() == 0


def test_queue_defaults_changes_apply_to_later_jobs():
    queue = Queue.objects.get(name="default")
    queue.default_attempts = 7
    queue.save()
    assert enqueue("platform.echo", {}).max_attempts == 7


def test_the_copy_columns_are_exactly_the_job_columns():
    from queues.services.writing import COPY_COLUMNS

    assert sorted(COPY_COLUMNS) == sorted(f.column for f in Job._meta.concrete_fields)


def test_enqueue_many_rows_read_back_exactly():
    jobs = enqueue_many(
        [
            {
                "name": "platform.echo",
                "payload": {"n": [1, 2.5, None, "x"]},
                "priority": 2,
                "timeout": 1.5,
                "attempts": 4,
                "backoff": {"type": "fixed", "delay": 10},
            },
            {"name": "platform.echo", "payload": "plain", "delay": 30},
        ]
    )
    first, second = (Job.objects.get(pk=j.pk) for j in jobs)
    assert (first.payload, first.priority, first.timeout, first.max_attempts) == (
        {"n": [1, 2.5, None, "x"]},
        2,
        1.5,
        4,
    )
    assert first.backoff == {"type": "fixed", "delay": 10}
    assert first.created_at == jobs[0].created_at and first.status == JobStatus.WAITING
    assert (second.payload, second.status) == ("plain", JobStatus.DELAYED)
    assert second.run_at == jobs[1].run_at


# --- durable=False: enqueue's own commit without waiting for its WAL flush ------------------
@pytest.mark.django_db(transaction=True)  # enqueue's own commit, not the test's transaction
@pytest.mark.parametrize("many", [False, True])
def test_a_non_durable_enqueue_commits_without_waiting_for_the_flush(many):
    with CaptureQueriesContext(connection) as queries:
        if many:
            (job,) = enqueue_many([{"name": "platform.echo", "payload": {"i": 1}}], durable=False)
        else:
            job = enqueue("platform.echo", {"i": 1}, durable=False)
    sql = [q["sql"] for q in queries.captured_queries]
    insert = next(i for i, q in enumerate(sql) if q.startswith(("INSERT", "COPY")))
    if many:
        assert "SET LOCAL synchronous_commit = off" in sql
        assert sql.index("SET LOCAL synchronous_commit = off") < insert  # same transaction
    else:
        # One job: the INSERT is its own transaction (one round trip) and switches the
        # flush off for that transaction itself, before the commit that ends it.
        assert sql[insert].endswith("RETURNING set_config('synchronous_commit', 'off', true)")
        assert "SET LOCAL synchronous_commit = off" not in sql
    assert Job.objects.get(pk=job.pk).status == JobStatus.WAITING
    with connection.cursor() as cursor:  # only that transaction: the session is as it was
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


@pytest.mark.django_db(transaction=True)
def test_a_non_durable_enqueue_inside_a_transaction_is_refused_and_writes_nothing():
    with transaction.atomic():
        with pytest.raises(EnqueueError, match="the commit is the caller's"):
            enqueue("platform.echo", {}, durable=False)
        with pytest.raises(EnqueueError, match="the commit is the caller's"):
            enqueue_many([{"name": "platform.echo"}], durable=False)
    assert not Job.objects.exists()
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


def _columns(job: Job) -> dict:
    return {
        f.attname: getattr(job, f.attname) for f in Job._meta.concrete_fields if f.attname != "id"
    }


def test_a_planned_job_is_the_job_the_model_constructor_builds():
    # new_job skips Model.__init__; the unsaved Job must be the one Job(...) would give.
    from queues.services.planning import plan

    now = timezone.now()
    planned = plan("platform.echo", {"to": "a"}, {"priority": 2, "delay": 30}, now).job
    queue = Queue.objects.get(name="default")
    built = Job(
        queue=queue,
        name="platform.echo",
        payload={"to": "a"},
        status=JobStatus.DELAYED,
        priority=2,
        max_attempts=planned.max_attempts,
        backoff=planned.backoff,
        timeout=None,
        run_at=now + timedelta(seconds=30),
    )
    assert _columns(planned) == _columns(built)
    assert planned._state.adding and planned.queue.name == "default"
    planned.save()
    assert _columns(Job.objects.get(pk=planned.pk)) | {"created_at": None} == _columns(planned) | {
        "created_at": None
    }


def test_a_handler_registered_anew_gives_its_new_defaults_to_later_jobs():
    from queues.registry import _handlers
    from queues.registry import job as register

    def redefined(payload):  # a module reloaded: the same function registers again
        return None

    try:
        register("test.redefined", attempts=4)(redefined)
        assert enqueue("test.redefined").max_attempts == 4
        register("test.redefined", attempts=7)(redefined)
        assert enqueue("test.redefined").max_attempts == 7
    finally:
        _handlers.pop("test.redefined", None)


def test_a_post_init_receiver_still_sees_planned_jobs():
    from django.db.models.signals import post_init

    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.name)

    post_init.connect(receiver, sender=Job)
    try:
        job = enqueue("platform.echo", {})
    finally:
        post_init.disconnect(receiver, sender=Job)
    assert "platform.echo" in seen
    assert Job.objects.filter(pk=job.pk).exists()
