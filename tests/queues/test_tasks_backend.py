"""The Tasks API backend: a third-party app's @task functions run as platform jobs."""

import math
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone
from django_tasks import TaskResultStatus, default_task_backend, task, task_backends
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist, TaskResultMismatch
from django_tasks.signals import task_enqueued, task_finished, task_started

from queues import cancel_job, enqueue
from queues.engine.maintenance import promote_delayed
from queues.engine.runner import drain
from queues.models import Job, JobStatus, Queue
from queues.tasks_backend import (  # importing it registers the django_tasks.run handler
    PlatformTaskBackend,
    TaskArgumentsNotJSON,
    platform_priority,
)
from tests.thirdparty.app import tasks

pytestmark = pytest.mark.django_db

BACKEND = "queues.tasks_backend.PlatformTaskBackend"


def _hidden(x):
    return x


# A Task that its dotted path (tests.queues.test_tasks_backend._hidden) does not lead back to.
unreachable = task()(_hidden)


@pytest.fixture(autouse=True)
def platform_tasks(settings):
    # Changing TASKS resets django_tasks' backend cache (its setting_changed receiver).
    settings.TASKS = {
        "default": {"BACKEND": BACKEND, "QUEUES": ["default", "email", "thirdparty", "ghost"]}
    }
    tasks.ran.clear()


def only_job() -> Job:
    (job,) = Job.objects.all()
    return job


# --- enqueue ------------------------------------------------------------------------------


def test_backend_is_the_platform_backend_and_supports_everything():
    backend = task_backends["default"]
    assert isinstance(backend, PlatformTaskBackend)
    assert backend.supports_defer and backend.supports_priority
    assert backend.supports_get_result and backend.supports_async_task


def test_enqueue_writes_one_job_whose_payload_is_the_task_path_and_json_arguments():
    result = tasks.echo.enqueue(1, "two", (3, 4), b"five", six={"seven": None})
    job = only_job()
    assert job.name == "django_tasks.run"
    assert job.queue.name == "default"
    assert job.status == JobStatus.WAITING
    assert job.priority == 5
    assert job.max_attempts == 1
    assert job.payload == {
        "task": "tests.thirdparty.app.tasks.echo",
        "args": [1, "two", [3, 4], "five"],
        "kwargs": {"six": {"seven": None}},
        "backend": "default",
        "queue_name": "default",
        "priority": 0,
        "run_after": None,
    }
    assert result.id == str(job.id)
    assert result.status == TaskResultStatus.READY
    assert result.enqueued_at == job.created_at
    assert result.started_at is None and result.finished_at is None
    assert result.args == [1, "two", [3, 4], "five"]
    assert result.backend == "default"
    assert result.task.func is tasks.echo.func

    assert drain("default") == 1
    assert tasks.echo.get_result(result.id).return_value == {
        "args": [1, "two", [3, 4], "five"],
        "kwargs": {"six": {"seven": None}},
    }


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((object(), 1), {}),
        ((1,), {"b": {1, 2}}),
        ((math.nan, 1), {}),
        (({1: "integer key"}, 1), {}),
        ((b"\xff", 1), {}),
    ],
    ids=["object", "set", "nan", "int-key", "non-utf8-bytes"],
)
def test_arguments_that_are_not_json_are_refused_and_nothing_is_written(args, kwargs):
    with pytest.raises(TaskArgumentsNotJSON, match="must be JSON-serializable") as caught:
        tasks.add.enqueue(*args, **kwargs)
    # The framework's error class and the TypeError other backends raise, both.
    assert isinstance(caught.value, InvalidTaskError)
    assert isinstance(caught.value, TypeError)
    assert not Job.objects.exists()


def test_a_task_not_found_at_its_dotted_path_is_refused():
    with pytest.raises(InvalidTaskError, match="cannot be found at its dotted path"):
        unreachable.enqueue(1)
    assert not Job.objects.exists()


def test_enqueue_belongs_to_the_callers_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.add.enqueue(1, 2)
        assert Job.objects.count() == 1
        raise RuntimeError("roll back")
    assert not Job.objects.exists()


def test_enqueue_sends_task_enqueued():
    seen = []

    def receiver(sender, task_result, **kwargs):
        seen.append((sender, task_result.id, task_result.status))

    task_enqueued.connect(receiver)
    try:
        result = tasks.add.enqueue(1, 2)
    finally:
        task_enqueued.disconnect(receiver)
    assert seen == [(PlatformTaskBackend, result.id, TaskResultStatus.READY)]


# --- priority -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tasks_priority, ours",
    [
        (100, 1),
        (75, 2),
        (50, 3),
        (25, 4),
        (1, 5),
        (0, 5),
        (-1, 5),
        (-25, 6),
        (-50, 7),
        (-62, 8),
        (-75, 8),
        (-90, 9),
        (-100, 10),
        (500, 1),
        (-500, 10),
    ],
)
def test_priority_mapping(tasks_priority, ours):
    assert platform_priority(tasks_priority) == ours


def test_priority_mapping_is_monotonic_and_covers_every_level():
    levels = [platform_priority(p) for p in range(100, -101, -1)]
    assert levels == sorted(levels)
    assert set(levels) == set(range(1, 11))


def test_higher_tasks_priority_runs_first():
    low = tasks.record.using(priority=-50).enqueue("low")
    normal = tasks.record.enqueue("normal")
    high = tasks.record.using(priority=80).enqueue("high")
    priorities = dict(Job.objects.values_list("id", "priority"))
    assert [priorities[uuid.UUID(r.id)] for r in (low, normal, high)] == [7, 5, 2]

    assert drain("default") == 3
    assert tasks.ran == ["high", "normal", "low"]
    result = tasks.record.get_result(high.id)
    assert result.task.priority == 80
    assert result.return_value == "high"


def test_out_of_range_priority_is_refused_by_the_framework():
    with pytest.raises(InvalidTaskError, match="priority must be a whole number"):
        tasks.add.using(priority=101)


# --- run_after ----------------------------------------------------------------------------


def test_run_after_delays_the_job_until_then():
    when = timezone.now() + timedelta(hours=1)
    result = tasks.add.using(run_after=when).enqueue(2, 2)
    job = only_job()
    assert job.status == JobStatus.DELAYED
    assert job.run_at == when
    assert result.status == TaskResultStatus.READY
    assert drain("default") == 0
    assert tasks.add.get_result(result.id).status == TaskResultStatus.READY

    Job.objects.filter(pk=job.pk).update(run_at=timezone.now())
    promote_delayed()
    assert drain("default") == 1
    done = tasks.add.get_result(result.id)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.return_value == 4
    assert done.task.run_after == when


def test_run_after_in_the_past_runs_now():
    tasks.add.using(run_after=timezone.now() - timedelta(minutes=1)).enqueue(1, 1)
    assert only_job().status == JobStatus.WAITING
    assert drain("default") == 1


# --- queue_name ---------------------------------------------------------------------------


def test_queue_name_is_the_platform_queue():
    Queue.objects.create(name="thirdparty")
    result = tasks.add.using(queue_name="thirdparty").enqueue(3, 4)
    assert only_job().queue.name == "thirdparty"
    assert drain("default") == 0
    assert drain("thirdparty") == 1
    done = tasks.add.get_result(result.id)
    assert done.return_value == 7
    assert done.task.queue_name == "thirdparty"


def test_queue_outside_the_backends_queues_is_refused():
    with pytest.raises(InvalidTaskError, match="Queue 'sms' is not valid for backend"):
        tasks.add.using(queue_name="sms")
    assert not Job.objects.exists()


def test_allowed_queue_that_the_platform_does_not_have_is_refused():
    with pytest.raises(InvalidTaskError, match="no queue is named 'ghost'"):
        tasks.add.using(queue_name="ghost").enqueue(1, 2)
    assert not Job.objects.exists()


def test_empty_queues_list_allows_every_platform_queue(settings):
    settings.TASKS = {"default": {"BACKEND": BACKEND, "QUEUES": []}}
    tasks.add.using(queue_name="sms").enqueue(1, 2)
    assert only_job().queue.name == "sms"
    with pytest.raises(InvalidTaskError, match="no queue is named 'nowhere'"):
        tasks.add.using(queue_name="nowhere").enqueue(1, 2)


# --- get_result ---------------------------------------------------------------------------


def test_get_result_of_a_waiting_task():
    result = tasks.add.enqueue(1, 2)
    found = tasks.add.get_result(result.id)
    assert found.status == TaskResultStatus.READY
    assert found.enqueued_at == result.enqueued_at
    assert found.started_at is found.finished_at is found.last_attempted_at is None
    assert found.errors == [] and found.worker_ids == [] and found.attempts == 0
    assert found.args == [1, 2] and found.kwargs == {}
    assert not found.is_finished
    with pytest.raises(ValueError, match="not finished"):
        found.return_value  # noqa: B018


def test_get_result_of_a_successful_task_and_refresh():
    result = tasks.add.enqueue(20, b=22)
    assert drain("default") == 1
    found = default_task_backend.get_result(result.id)
    assert found.status == TaskResultStatus.SUCCESSFUL
    assert found.return_value == 42
    assert found.errors == []
    assert found.attempts == 1 and found.worker_ids[0]
    assert found.enqueued_at <= found.started_at <= found.finished_at
    assert found.last_attempted_at == found.started_at
    job = only_job()
    assert (job.status, job.result) == (JobStatus.COMPLETED, 42)
    assert found.finished_at == job.finished_at

    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42


def test_a_failing_task_reports_its_exception_class_and_traceback():
    result = tasks.explode.enqueue("kaboom")
    assert drain("default") == 1
    found = tasks.explode.get_result(result.id)
    assert found.status == TaskResultStatus.FAILED
    assert found.is_finished and found.finished_at is not None
    (error,) = found.errors
    assert error.exception_class_path == "tests.thirdparty.app.tasks.ThirdPartyError"
    assert error.exception_class is tasks.ThirdPartyError
    assert "Traceback (most recent call last)" in error.traceback
    assert "in explode" in error.traceback
    assert error.traceback.endswith("tests.thirdparty.app.tasks.ThirdPartyError: kaboom\n")
    # The attempt row keeps the worker's note of the class path; the TaskError does not.
    assert (
        only_job()
        .attempts.get()
        .traceback.endswith(
            "[django_tasks] exception class: tests.thirdparty.app.tasks.ThirdPartyError\n"
        )
    )
    with pytest.raises(ValueError, match="Task failed"):
        found.return_value  # noqa: B018
    # At most once: no retry was scheduled.
    job = only_job()
    assert job.status == JobStatus.FAILED
    assert job.attempts.count() == 1


def test_builtin_exception_class_path():
    result = tasks.divide.enqueue(1, 0)
    drain("default")
    (error,) = tasks.divide.get_result(result.id).errors
    assert error.exception_class_path == "builtins.ZeroDivisionError"
    assert error.exception_class is ZeroDivisionError


def test_a_return_value_that_is_not_json_fails_the_task():
    result = tasks.returns_object.enqueue()
    drain("default")
    found = tasks.returns_object.get_result(result.id)
    assert found.status == TaskResultStatus.FAILED
    assert found.errors[0].exception_class is TypeError


def test_a_cancelled_task_is_failed_with_job_cancelled():
    result = tasks.add.enqueue(1, 2)
    cancel_job(result.id)
    assert drain("default") == 0
    found = tasks.add.get_result(result.id)
    assert found.status == TaskResultStatus.FAILED
    (error,) = found.errors
    assert error.exception_class_path == "queues.exceptions.JobCancelled"
    assert found.finished_at is not None


@pytest.mark.parametrize("result_id", ["nope", str(uuid.uuid4()), ""])
def test_unknown_result_id_does_not_exist(result_id):
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(result_id)


def test_a_job_that_is_not_a_task_is_no_task_result():
    job = enqueue("platform.echo", {"task": "tests.thirdparty.app.tasks.add"})
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(str(job.id))


def test_get_result_of_another_task_is_a_mismatch():
    result = tasks.add.enqueue(1, 2)
    with pytest.raises(TaskResultMismatch):
        tasks.echo.get_result(result.id)


def test_async_enqueue_and_get_result():
    result = async_to_sync(tasks.add.aenqueue)(5, 6)
    assert drain("default") == 1
    found = async_to_sync(tasks.add.aget_result)(result.id)
    assert found.return_value == 11


# --- running ------------------------------------------------------------------------------


def test_async_task_runs():
    result = tasks.add_async.enqueue(2, 3)
    assert drain("default") == 1
    assert tasks.add_async.get_result(result.id).return_value == 5


def test_task_context_sees_the_running_result():
    result = tasks.introspect.enqueue("ctx")
    assert drain("default") == 1
    assert tasks.introspect.get_result(result.id).return_value == {
        "label": "ctx",
        "id": result.id,
        "status": "RUNNING",
        "attempt": 1,
        "started": True,
    }


def test_started_and_finished_signals_are_sent_by_the_worker():
    seen = []

    def receiver(signal, sender, task_result, **kwargs):
        seen.append((signal, task_result.status))

    task_started.connect(receiver)
    task_finished.connect(receiver)
    try:
        tasks.add.enqueue(1, 2)
        tasks.explode.enqueue("no")
        drain("default")
    finally:
        task_started.disconnect(receiver)
        task_finished.disconnect(receiver)
    assert seen == [
        (task_started, TaskResultStatus.RUNNING),
        (task_finished, TaskResultStatus.SUCCESSFUL),
        (task_started, TaskResultStatus.RUNNING),
        (task_finished, TaskResultStatus.FAILED),
    ]


def _forged(task_path: str, **extra) -> dict:
    return {
        "task": task_path,
        "args": [],
        "kwargs": {},
        "backend": "default",
        "queue_name": "default",
        "priority": 0,
        "run_after": None,
        **extra,
    }


@pytest.mark.parametrize(
    "payload, reason",
    [
        (_forged("tests.thirdparty.app.tasks.not_a_task"), "is a function, not a task"),
        (_forged("os.getcwd"), "is a builtin_function_or_method, not a task"),
        (_forged("tests.thirdparty.app.tasks.alias"), "is an alias of task"),
        (_forged("no_such_module.anything"), "cannot import task"),
        (_forged("tests.thirdparty.app.tasks.add", backend="other"), "is not configured"),
        (_forged("tests.thirdparty.app.tasks.add", queue_name="sms"), "not valid for its backend"),
        (_forged("tests.thirdparty.app.tasks.add", args="1, 2"), "args must be a list"),
        ({"anything": 1}, "names no task"),
    ],
)
def test_the_handler_runs_only_tasks_at_their_own_path(payload, reason):
    job = enqueue("django_tasks.run", payload)
    assert drain("default") == 1
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("PermanentError: ")
    assert reason in job.error
    assert job.attempts.count() == 1


def test_get_result_of_a_forged_job_is_refused_clearly():
    job = enqueue("django_tasks.run", _forged("tests.thirdparty.app.tasks.not_a_task"))
    with pytest.raises(InvalidTaskError, match="cannot be loaded: .* not a task"):
        default_task_backend.get_result(str(job.id))
