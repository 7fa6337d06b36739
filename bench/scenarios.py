"""One benchmark scenario per process (each peer needs its own settings).

    python -m bench.scenarios platform|q2|celery --jobs N

Prints one JSON line: {"scenario", "jobs", "seconds", "per_second", "enqueue_per_second"}.
Each scenario starts its workers (2 processes), waits until they run a warm-up job, then
enqueues N no-op jobs and measures until the last one has run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLL = 0.02


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(POLL)


def start(cmd: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def result(name: str, jobs: int, t0: float, t_enqueued: float, t1: float) -> dict:
    return {
        "scenario": name,
        "jobs": jobs,
        "seconds": round(t1 - t0, 3),
        "per_second": round(jobs / (t1 - t0), 1),
        "enqueue_per_second": round(jobs / max(t_enqueued - t0, 1e-9), 1),
    }


def run_platform(jobs: int) -> dict:
    import django

    os.environ["DJANGO_SETTINGS_MODULE"] = "jobplatform.settings"
    django.setup()
    from queues import enqueue, enqueue_many
    from queues.models import Job, JobAttempt, JobStatus, Worker

    JobAttempt.objects.all().delete()
    Job.objects.all().delete()
    Worker.objects.all().delete()
    worker = start([sys.executable, "manage.py", "runworker", "--workers", "2"], os.environ.copy())
    try:
        wait_for(Worker.objects.exists, 60, "the worker to register")
        warm = enqueue("platform.echo", {})
        wait_for(lambda: Job.objects.filter(pk=warm.pk, status="completed").exists(), 60, "warm-up")
        done = Job.objects.filter(status=JobStatus.COMPLETED)
        t0 = time.perf_counter()
        for start_at in range(0, jobs, 1000):
            enqueue_many(
                [
                    {"name": "platform.echo", "payload": {"i": i}}
                    for i in range(start_at, min(start_at + 1000, jobs))
                ]
            )
        t_enqueued = time.perf_counter()
        wait_for(lambda: done.count() >= jobs + 1, 600, "all jobs")
        t1 = time.perf_counter()
        assert JobAttempt.objects.count() == jobs + 1
        return result("platform", jobs, t0, t_enqueued, t1)
    finally:
        stop(worker)


def _counter():
    import redis

    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    client.delete("bench:done")
    return lambda: int(client.get("bench:done") or 0)


def run_q2(jobs: int, save_limit: int) -> dict:
    import django

    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings_q2"
    os.environ["BENCH_Q2_SAVE_LIMIT"] = str(save_limit)
    django.setup()
    from django_q.brokers import get_broker
    from django_q.models import OrmQ, Task  # noqa: F401
    from django_q.tasks import async_task

    Task.objects.all().delete()
    broker = get_broker()
    broker.purge_queue()
    done = _counter()
    cluster = start([sys.executable, "manage.py", "qcluster"], os.environ.copy())
    try:
        async_task("bench.tasks.noop", broker=broker)
        wait_for(lambda: done() >= 1, 60, "warm-up")
        t0 = time.perf_counter()
        for _ in range(jobs):
            # One shared broker: without it async_task opens a Redis connection per call.
            async_task("bench.tasks.noop", broker=broker)
        t_enqueued = time.perf_counter()
        wait_for(lambda: done() >= jobs + 1, 600, "all tasks")
        t1 = time.perf_counter()
        name = "django-q2 (results saved)" if save_limit >= 0 else "django-q2 (results off)"
        return result(name, jobs, t0, t_enqueued, t1)
    finally:
        stop(cluster)


def run_celery(jobs: int) -> dict:
    from bench.celery_app import app, noop

    app.connection_for_write().default_channel.client.delete("bench")
    done = _counter()
    worker = start(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.celery_app",
            "worker",
            "-c",
            "2",
            "-P",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-Q",
            "bench",
            "--loglevel",
            "WARNING",
        ],
        os.environ.copy(),
    )
    try:
        noop.delay()
        wait_for(lambda: done() >= 1, 60, "warm-up")
        t0 = time.perf_counter()
        for _ in range(jobs):
            noop.delay()
        t_enqueued = time.perf_counter()
        wait_for(lambda: done() >= jobs + 1, 600, "all tasks")
        t1 = time.perf_counter()
        return result("celery (2 prefork)", jobs, t0, t_enqueued, t1)
    finally:
        stop(worker)


def run_schedule_lateness(firings: int) -> dict:
    """Fire lateness of schedules through one runscheduler: 10 interval schedules every
    second, staggered by 100 ms, until ``firings`` runs happened."""
    import django

    os.environ["DJANGO_SETTINGS_MODULE"] = "jobplatform.settings"
    django.setup()
    from datetime import timedelta

    from django.utils import timezone

    from queues.models import Job
    from scheduling import services
    from scheduling.models import ScheduledJob, ScheduleRun

    ScheduleRun.objects.all().delete()
    ScheduledJob.objects.filter(name__startswith="bench-").delete()
    Job.objects.all().delete()
    scheduler = start([sys.executable, "manage.py", "runscheduler"], os.environ.copy())
    try:
        start_at = timezone.now() + timedelta(seconds=3)
        for i in range(10):
            services.create_schedule(
                name=f"bench-{i}",
                handler="platform.echo",
                every=1,
                start_at=start_at + timedelta(milliseconds=100 * i),
                misfire_policy="skip",
            )
        runs = ScheduleRun.objects.filter(schedule__name__startswith="bench-")
        wait_for(lambda: runs.count() >= firings, 120, "the firings")
        ScheduledJob.objects.filter(name__startswith="bench-").update(status=0, next_run_at=None)
        lateness = sorted(r.lateness_ms for r in runs.order_by("due_at")[:firings])
    finally:
        stop(scheduler)
    return {
        "scenario": "schedule fire lateness",
        "firings": len(lateness),
        "p50_ms": lateness[len(lateness) // 2],
        "p99_ms": lateness[max(int(len(lateness) * 0.99) - 1, 0)],
        "max_ms": lateness[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "scenario", choices=["platform", "q2", "q2-nosave", "celery", "schedule-lateness"]
    )
    parser.add_argument("--jobs", type=int, default=5000)
    args = parser.parse_args()
    if args.scenario == "platform":
        out = run_platform(args.jobs)
    elif args.scenario == "q2":
        out = run_q2(args.jobs, 250)
    elif args.scenario == "q2-nosave":
        out = run_q2(args.jobs, -1)
    elif args.scenario == "schedule-lateness":
        out = run_schedule_lateness(120)
    else:
        out = run_celery(args.jobs)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
