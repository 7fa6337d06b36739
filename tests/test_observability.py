"""/metrics, /healthz, healthcheck, JSON logs and integration signals."""

import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from jobplatform.logs import JobContextFilter, JsonFormatter
from queues import cancel_job, enqueue, enqueue_many, signals
from queues.engine.runner import drain
from queues.engine.supervisor import descendants
from queues.models import Job, JobAttempt, JobStatus, Worker
from tests.helpers import ROOT, subprocess_env, wait_for
from tests.queues import handlers  # noqa: F401


def metric(text: str, name: str, **labels) -> float | None:
    """The value of one sample of the Prometheus text format (labels in any order)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        found = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if part)
        if sample == name and {k: v.strip('"') for k, v in found.items()} == labels:
            return float(value)
    return None


@pytest.mark.django_db
def test_metrics_requires_a_token_or_staff(client, settings):
    settings.METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
    client.force_login(User.objects.create_user("u", password="p"))
    assert client.get("/metrics").status_code == 403
    client.force_login(User.objects.create_user("s", password="p", is_staff=True))
    assert client.get("/metrics").status_code == 200


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_metrics_and_health_are_right_with_several_worker_processes(client, processes, settings):
    settings.METRICS_TOKEN = "t"
    auth = {"HTTP_AUTHORIZATION": "Bearer t"}
    enqueue("platform.echo", {})
    health = client.get("/healthz").json()
    assert health["status"] == "unhealthy"
    assert "has waiting jobs and no live worker" in str(health["checks"]["workers"])
    assert health["checks"]["scheduler"]["ok"] is False

    processes.start("runworker", "--workers", "2")
    processes.start("runscheduler")
    enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(300)])
    enqueue_many([{"name": "platform.fail", "payload": {"permanent": True}} for _ in range(7)])
    wait_for(
        lambda: Job.objects.filter(status__in=["completed", "failed"]).count() == 308,
        timeout=60,
        message="308 finished jobs",
    )

    def scraped():
        # Each worker process writes its counters just after its outcomes (metrics lag
        # the ledger by up to a second): wait until both handlers' counters are in.
        text = client.get("/metrics", **auth).content.decode()
        done = metric(
            text,
            "jobplatform_jobs_total",
            queue="default",
            handler="platform.echo",
            status="completed",
        )
        failed = metric(
            text,
            "jobplatform_jobs_total",
            queue="default",
            handler="platform.fail",
            status="failed",
        )
        return text if done == 301 and failed is not None else None

    text = wait_for(scraped, timeout=30, interval=0.2, message="the counters to add up")
    assert (
        metric(
            text,
            "jobplatform_jobs_total",
            queue="default",
            handler="platform.fail",
            status="failed",
        )
        == 7
    )
    assert (
        metric(
            text, "jobplatform_job_duration_seconds_count", queue="default", handler="platform.echo"
        )
        == 301
    )
    assert metric(text, "jobplatform_workers_up") == 1
    assert metric(text, "jobplatform_scheduler_last_tick_timestamp_seconds") > 0
    # Both worker processes did part of the work the counters add up.
    # (A completed job's attempt lives on its row; a failed one's is an attempt row.)
    workers = set(Job.objects.filter(status="completed").values_list("worker", flat=True))
    workers |= set(JobAttempt.objects.values_list("worker", flat=True))
    assert len(workers) == 2 and "" not in workers, workers
    wait_for(
        lambda: (
            metric(
                client.get("/metrics", **auth).content.decode(),
                "jobplatform_queue_depth",
                queue="default",
                status="completed",
            )
            == 301
        ),
        timeout=20,
        message="the snapshot",
    )

    assert client.get("/healthz").status_code == 200
    canary = client.get("/healthz?canary=1")
    assert canary.status_code == 200 and canary.json()["checks"]["canary"]["ok"]
    assert (
        subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "healthcheck"],
            env=subprocess_env(),
            capture_output=True,
            timeout=60,
        ).returncode
        == 0
    )


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_health_reports_a_frozen_cluster(client, processes, settings):
    settings.JOBPLATFORM = {**settings.JOBPLATFORM, "FREEZE_SECONDS": 3}
    # The worker's own freeze detection is set far off, so only /healthz can notice.
    worker = processes.start("runworker", "--workers", "2", FREEZE_SECONDS="1000")
    processes.start("runscheduler")
    wait_for(Worker.objects.exists, timeout=30, message="the worker")
    warm = enqueue("platform.echo", {})
    wait_for(
        lambda: Job.objects.get(pk=warm.pk).status == JobStatus.COMPLETED,
        timeout=30,
        message="warm-up",
    )
    sentinel = [
        p
        for p in descendants(worker.pid)
        if Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(worker.pid)
    ][0]
    # Frozen for certain: every process of the cluster stopped, none dead, so nothing
    # replaces them (killing them freezes django-q2 only when the kill hits the holder of
    # its task-queue lock; otherwise it reincarnates them and recovers by itself).
    stopped = [sentinel, *descendants(sentinel)]
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    enqueue("platform.echo", {})

    last = {}

    def frozen():
        body = last["body"] = client.get("/healthz").json()
        return "frozen cluster" in str(body["checks"]["workers"]) and body

    try:
        try:
            body = wait_for(frozen, timeout=60, interval=0.5, message="/healthz to see the freeze")
        except AssertionError as exc:  # say what it saw instead, and which workers
            workers = list(Worker.objects.values("id", "queues", "last_heartbeat", "last_activity"))
            raise AssertionError(f"{exc}; last /healthz: {last.get('body')}; {workers}") from None
        assert body["status"] == "unhealthy"
        assert client.get("/healthz").status_code == 503
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@pytest.mark.django_db
def test_healthcheck_command_exits_1_when_unhealthy():
    enqueue("platform.echo", {})
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("healthcheck", stdout=out)
    assert exit_info.value.code == 1
    assert json.loads(out.getvalue())["status"] == "unhealthy"


@pytest.mark.django_db
def test_json_logs_carry_the_running_job():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(JobContextFilter())
    sdk = logging.getLogger("thirdparty.sdk")
    sdk.addHandler(handler)
    try:
        job = enqueue("test.logs", {"who": "alice"})
        drain("default")
        sdk.warning("outside any job")
    finally:
        sdk.removeHandler(handler)
    inside, outside = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert inside["message"] == "calling the provider for alice"
    assert (inside["job_id"], inside["queue"], inside["handler"], inside["attempt"]) == (
        str(job.pk),
        "default",
        "test.logs",
        1,
    )
    assert "job_id" not in outside and outside["level"] == "WARNING"


@pytest.mark.django_db
def test_integration_signals(django_capture_on_commit_callbacks):
    seen = []

    def receiver(signal, **kwargs):
        seen.append((signal, kwargs))

    names = [
        "job_enqueued",
        "job_started",
        "job_progress",
        "job_completed",
        "job_failed",
        "job_cancelled",
    ]
    for name in names:
        getattr(signals, name).connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            ok = enqueue("test.report", {})
            bad = enqueue("platform.fail", {"message": "boom"}, attempts=1)
            later = enqueue("platform.echo", {}, delay=60)
            drain("default")
            cancel_job(later.pk)
    finally:
        for name in names:
            getattr(signals, name).disconnect(receiver)
    by = {}
    for sig, kwargs in seen:
        name = next(n for n in names if getattr(signals, n) is sig)
        by.setdefault(name, []).append(kwargs)
    assert {k["job_id"] for k in by["job_enqueued"]} == {ok.pk, bad.pk, later.pk}
    assert {k["job_id"] for k in by["job_started"]} == {ok.pk, bad.pk}
    assert [k["progress"] for k in by["job_progress"]] == [10, 80]
    assert by["job_completed"][0]["job_id"] == ok.pk and by["job_completed"][0]["result"] == {
        "ok": True
    }
    failed = by["job_failed"][0]
    assert (failed["job_id"], failed["final"], failed["queue"]) == (bad.pk, True, "default")
    assert "boom" in failed["error"]
    assert [k["job_id"] for k in by["job_cancelled"]] == [later.pk]
