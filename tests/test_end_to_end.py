"""Real runworker and runscheduler processes on Postgres + Redis (and the embedded mode)."""

import json
import subprocess
import sys

import pytest

from queues import enqueue, enqueue_many
from queues.models import Job, JobAttempt, JobStatus, Worker
from tests.helpers import ROOT, subprocess_env, wait_for

pytestmark = pytest.mark.subprocess


def completed() -> int:
    return Job.objects.filter(status=JobStatus.COMPLETED).count()


def test_500_jobs_complete_through_runworker_and_runscheduler(transactional_db, processes):
    worker = processes.start("runworker", "--workers", "2")
    scheduler = processes.start("runscheduler")
    wait_for(lambda: Worker.objects.exists(), timeout=30, message="the worker to register")

    enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(400)])
    for i in range(400, 480):
        enqueue("platform.echo", {"i": i}, queue="email")
    # Delayed jobs go through the scheduler's promotion.
    enqueue_many(
        [{"name": "platform.echo", "payload": {"i": i}, "delay": 0.5} for i in range(480, 500)]
    )

    wait_for(lambda: completed() == 500, timeout=60, message="500 completed jobs")
    assert sorted(Job.objects.values_list("result__i", flat=True)) == list(range(500))
    # Each succeeded at once: one attempt each, on its own row, and no history rows.
    assert not JobAttempt.objects.exists()
    assert Job.objects.filter(attempts_made=1, status="completed").count() == 500
    # Both django-q2 worker processes took part.
    assert Job.objects.values("worker").distinct().count() == 2

    assert processes.stop(worker) == 0, processes.output(worker)
    assert processes.stop(scheduler) == 0, processes.output(scheduler)
    assert not Worker.objects.exists()


def test_a_worker_serves_only_its_queues(transactional_db, processes):
    processes.start("runworker", "--queues", "email,sms", "--workers", "1")
    wait_for(lambda: Worker.objects.exists(), timeout=30, message="the worker to register")
    email = enqueue("platform.echo", {}, queue="email")
    other = enqueue("platform.echo", {}, queue="data-export")
    wait_for(
        lambda: Job.objects.get(pk=email.pk).status == JobStatus.COMPLETED,
        timeout=20,
        message="the email job",
    )
    assert Job.objects.get(pk=other.pk).status == JobStatus.WAITING
    # A second worker for the other queue picks up the job waiting there.
    processes.start("runworker", "--queues", "data-export", "--workers", "1")
    wait_for(
        lambda: Job.objects.get(pk=other.pk).status == JobStatus.COMPLETED,
        timeout=20,
        message="the data-export job",
    )


def test_runworker_refuses_unknown_queues(transactional_db):
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "runworker", "--queues", "email,nope"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "unknown queue(s): nope" in result.stderr


def test_embedded_default_runs_on_sqlite_and_the_orm_broker(tmp_path, processes):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "REDIS_URL": ""}
    manage = [sys.executable, str(ROOT / "manage.py")]

    def run(*args):
        result = subprocess.run(
            [*manage, *args],
            env=subprocess_env(**env),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    run("migrate", "--no-input", "-v", "0")
    processes.start("runworker", "--workers", "2", **env)
    processes.start("runscheduler", **env)
    for i in range(5):
        run("enqueue", "platform.echo", "--payload", json.dumps({"i": i}))
    run("enqueue", "platform.echo", "--queue", "sms", "--delay", "0.5")
    run("enqueue", "platform.fail", "--payload", '{"permanent": true}')

    def counts():
        return {q["name"]: q["counts"] for q in json.loads(run("queuestats", "--json"))}

    wait_for(
        lambda: counts()["default"]["completed"] == 5 and counts()["sms"]["completed"] == 1,
        timeout=60,
        interval=0.5,
        message="the embedded jobs to complete",
    )
    assert counts()["default"]["failed"] == 1
