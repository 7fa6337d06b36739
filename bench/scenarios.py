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
from datetime import timedelta
from pathlib import Path

import django
import redis
from django.db import connection
from django.utils import timezone

ROOT = Path(__file__).resolve().parent.parent
POLL = 0.02


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(POLL)


def start(cmd: list[str], env: dict) -> subprocess.Popen:
    """Start one measured process; with BENCH_LOG_DIR set, its output goes to a file
    there (named for its command), otherwise nowhere."""
    out = subprocess.DEVNULL
    logs = os.environ.get("BENCH_LOG_DIR")
    if logs:
        name = "-".join(part for part in cmd[1:4] if not part.startswith("-"))
        out = open(Path(logs) / f"{name.replace('/', '_')}-{time.time():.0f}.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=out,
        stderr=subprocess.STDOUT if logs else subprocess.DEVNULL,
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


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by Postgres, Redis and the Python processes, and the whole
    machine's busy time (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    groups = {"postgres": 0.0, "redis": 0.0, "python": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        used = (int(fields[11]) + int(fields[12])) / tick
        for group in groups:
            if name.startswith(group) or (group == "redis" and name.startswith("redis-server")):
                groups[group] += used
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    groups["busy"] = (sum(map(int, cpu)) - int(cpu[3]) - int(cpu[4])) / tick
    return groups


def unfinished(**filters) -> bool:
    """Whether any job matching ``filters`` is still waiting or running: two index probes
    (the claim and lock indexes). The driver polls this, not a count(*) of the finished
    jobs, whose sequential scans would take CPU from the system being measured."""
    # Models load only after django.setup().
    from queues.models import Job, JobStatus

    return (
        Job.objects.filter(status=JobStatus.WAITING, **filters).exists()
        or Job.objects.filter(status=JobStatus.ACTIVE, **filters).exists()
    )


def run_scaling(jobs: int) -> dict:
    """Throughput with 1, 2 and 4 runworker processes (2 worker processes each), and how
    the 2 cores were used during the timed window."""
    rows = []
    for count in (1, 2, 4):
        result = run_platform(jobs, runworkers=count)
        rows.append({"runworkers": count, **result})
    return {"scenario": "scaling", "jobs": jobs, "rows": rows}


def run_platform(jobs: int, runworkers: int = 1) -> dict:
    _platform_setup()
    # Models load only after _platform_setup() has run django.setup().
    from queues import enqueue, enqueue_many
    from queues.models import Job, JobAttempt, JobStatus, Worker

    workers = [
        start([sys.executable, "manage.py", "runworker", "--workers", "2"], os.environ.copy())
        for _ in range(runworkers)
    ]
    try:
        wait_for(lambda: Worker.objects.count() == runworkers, 60, "the workers to register")
        warm = enqueue("platform.echo", {})
        wait_for(lambda: Job.objects.filter(pk=warm.pk, status="completed").exists(), 60, "warm-up")
        done = Job.objects.filter(status=JobStatus.COMPLETED)
        cpu0 = _cpu_seconds()
        t0 = time.perf_counter()
        for start_at in range(0, jobs, 1000):
            enqueue_many(
                [
                    {"name": "platform.echo", "payload": {"i": i}}
                    for i in range(start_at, min(start_at + 1000, jobs))
                ]
            )
        t_enqueued = time.perf_counter()
        wait_for(lambda: not unfinished(), 600, "all jobs")
        t1 = time.perf_counter()
        cpu1 = _cpu_seconds()
        assert done.count() == jobs + 1
        # Each job's one successful attempt lives on its row: no attempt rows to count.
        assert not JobAttempt.objects.exists()
        window = (t1 - t0) * (os.cpu_count() or 1)
        share = {k: round((cpu1[k] - cpu0[k]) * 100 / window) for k in cpu1}
        return {**result("platform", jobs, t0, t_enqueued, t1), "cpu_pct": share}
    finally:
        for worker in workers:
            stop(worker)


def _counter():
    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    client.delete("bench:done")
    return lambda: int(client.get("bench:done") or 0)


def run_q2(jobs: int, save_limit: int) -> dict:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings_q2"
    os.environ["BENCH_Q2_SAVE_LIMIT"] = str(save_limit)
    django.setup()
    # Models load only after django.setup() with this scenario's settings.
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
        wait_for(lambda: done() >= jobs + 1, 3600, "all tasks")
        t1 = time.perf_counter()
        name = "django-q2 (results saved)" if save_limit >= 0 else "django-q2 (results off)"
        return result(name, jobs, t0, t_enqueued, t1)
    finally:
        stop(cluster)


def run_celery(jobs: int) -> dict:
    # bench.celery_app reads BENCH_REDIS_URL at import; only the Celery peer needs it.
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
        wait_for(lambda: done() >= jobs + 1, 3600, "all tasks")
        t1 = time.perf_counter()
        return result("celery (2 prefork)", jobs, t0, t_enqueued, t1)
    finally:
        stop(worker)


def run_schedule_lateness(firings: int) -> dict:
    """Fire lateness of schedules through one runscheduler: 10 interval schedules every
    second, staggered by 100 ms, until ``firings`` runs happened."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "jobplatform.settings"
    django.setup()
    # Models load only after django.setup() with this scenario's settings.
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


def run_drain(jobs: int, *, backlog: int = 0) -> dict:
    """Pre-enqueued drain: ``jobs`` no-op jobs wait in a paused queue (behind ``backlog``
    more of lower priority, run after them), 2 warm worker processes; timed from the
    resume to the last completion. Every job gets its status, result, timing and
    attempt in Postgres."""
    _platform_setup()
    # Models load only after _platform_setup() has run django.setup().
    from queues import enqueue, enqueue_many
    from queues.models import Job, JobStatus, Queue, Worker
    from queues.services.queues import pause_queue, resume_queue

    worker = start([sys.executable, "manage.py", "runworker", "--workers", "2"], os.environ.copy())
    try:
        wait_for(lambda: Worker.objects.count() == 1, 60, "the worker to register")
        warm = enqueue("platform.echo", {})
        wait_for(lambda: Job.objects.filter(pk=warm.pk, status="completed").exists(), 60, "warm-up")
        pause_queue("default")
        for start_at in range(0, backlog, 10_000):
            enqueue_many(
                [
                    {"name": "platform.echo", "payload": {"i": i}, "priority": 9}
                    for i in range(start_at, min(start_at + 10_000, backlog))
                ]
            )
        for start_at in range(0, jobs, 10_000):
            enqueue_many(
                [
                    {"name": "platform.echo", "payload": {"i": i}}
                    for i in range(start_at, min(start_at + 10_000, jobs))
                ]
            )
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE queues_job")
        done = Job.objects.filter(status=JobStatus.COMPLETED, priority__lt=9)
        stats0 = _table_stats()
        profiler = _profile(worker.pid)
        t0 = time.perf_counter()
        resume_queue("default")
        queue_id = Queue.objects.get(name="default").pk
        wait_for(lambda: not unfinished(queue_id=queue_id, priority__lt=9), 900, "all jobs")
        t1 = time.perf_counter()
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
        # Each worker backend reports its counters when it goes idle, at most once a second.
        wait_for(lambda: _table_stats()["n_tup_upd"] - stats0["n_tup_upd"] >= 2 * jobs, 30, "stats")
        stats1 = _table_stats()
        assert done.count() == jobs + 1
        updates = stats1["n_tup_upd"] - stats0["n_tup_upd"]
        return {
            "scenario": "drain" if not backlog else "drain-backlog",
            "jobs": jobs,
            "backlog": backlog,
            "seconds": round(t1 - t0, 3),
            "per_second": round(jobs / (t1 - t0), 1),
            "updates": updates,
            "hot_pct": round(
                (stats1["n_tup_hot_upd"] - stats0["n_tup_hot_upd"]) * 100 / max(updates, 1), 1
            ),
        }
    finally:
        stop(worker)


def _profile(pid: int) -> subprocess.Popen | None:
    """With BENCH_PROFILE=path: py-spy samples the worker processes during the drain into
    ``path`` (collapsed stacks; bench/profile_split.py sums them per engine step)."""
    path = os.environ.get("BENCH_PROFILE")
    if not path:
        return None
    py_spy = Path(sys.executable).with_name("py-spy")
    proc = subprocess.Popen(
        [str(py_spy), "record", "--idle", "-s", "-r", "250", "-f", "raw", "-o", path]
        + ["-p", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches to every process of the tree before it samples
    return proc


def _table_stats() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd, n_dead_tup FROM pg_stat_user_tables "
            "WHERE relname = 'queues_job'"
        )
        upd, hot, dead = cursor.fetchone()
    return {"n_tup_upd": upd, "n_tup_hot_upd": hot, "n_dead_tup": dead}


def _platform_setup():
    """Django for the platform, with empty job tables (truncated, so earlier scenarios'
    dead rows do not slow this one down)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "jobplatform.settings"
    django.setup()
    # Models load only after django.setup() with this scenario's settings.
    from queues.models import Worker

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE queues_jobattempt, queues_joblog, queues_jobdependency, queues_job CASCADE"
        )
    Worker.objects.all().delete()


def run_enqueue(jobs: int) -> dict:
    """Enqueue rates, no workers running: platform single and bulk, django-q2 async_task
    (shared broker), Celery delay."""
    _platform_setup()
    # Models load only after _platform_setup() has run django.setup().
    from queues import enqueue, enqueue_many

    single = min(jobs, 3000)
    t0 = time.perf_counter()
    for i in range(single):
        enqueue("platform.echo", {"i": i})
    platform_single = single / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(single):
        enqueue("platform.echo", {"i": i}, durable=False)
    platform_group_commit = single / (time.perf_counter() - t0)
    one_call = min(jobs, 50_000)
    rows = [{"name": "platform.echo", "payload": {"i": i}} for i in range(one_call)]
    t0 = time.perf_counter()
    enqueue_many(rows)
    platform_bulk_call = one_call / (time.perf_counter() - t0)
    bulk = jobs * 4
    t0 = time.perf_counter()
    for start_at in range(0, bulk, 5000):
        enqueue_many(
            [
                {"name": "platform.echo", "payload": {"i": i}}
                for i in range(start_at, min(start_at + 5000, bulk))
            ]
        )
    platform_bulk = bulk / (time.perf_counter() - t0)

    # django_q.tasks loads django-q2's models: only after django.setup().
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    broker = get_broker("bench-enqueue")
    t0 = time.perf_counter()
    for _ in range(single):
        async_task("bench.tasks.noop", broker=broker)
    q2_single = single / (time.perf_counter() - t0)
    broker.purge_queue()

    # bench.celery_app reads BENCH_REDIS_URL at import; only the Celery peer needs it.
    from bench.celery_app import app, noop

    t0 = time.perf_counter()
    for _ in range(single):
        noop.delay()
    celery_single = single / (time.perf_counter() - t0)
    app.connection_for_write().default_channel.client.delete("bench")
    return {
        "scenario": "enqueue",
        "platform_single": round(platform_single),
        "platform_group_commit": round(platform_group_commit),
        "platform_bulk": round(platform_bulk),
        "platform_bulk_call_rows": one_call,
        "platform_bulk_call": round(platform_bulk_call),
        "q2_single": round(q2_single),
        "celery_single": round(celery_single),
    }


def run_pickup(samples: int) -> dict:
    """Idle pickup latency: one job at a time into an idle worker; enqueue -> handler start."""
    _platform_setup()
    # Models load only after _platform_setup() has run django.setup().
    from queues import enqueue
    from queues.models import Job, Worker

    worker = start([sys.executable, "manage.py", "runworker", "--workers", "2"], os.environ.copy())
    try:
        wait_for(Worker.objects.exists, 60, "the worker to register")
        latencies = []
        for i in range(samples + 5):
            job = enqueue("platform.echo", {"i": i})
            wait_for(
                lambda j=job: Job.objects.filter(pk=j.pk, status="completed").exists(),
                30,
                "the job",
            )
            started_at = Job.objects.get(pk=job.pk).started_at  # its attempt's start
            if i >= 5:  # warm-up
                latencies.append((started_at - job.created_at).total_seconds() * 1000)
            time.sleep(0.02)  # idle again
    finally:
        stop(worker)
    latencies.sort()
    return {
        "scenario": "pickup",
        "samples": len(latencies),
        "p50_ms": round(latencies[len(latencies) // 2], 1),
        "p99_ms": round(latencies[max(int(len(latencies) * 0.99) - 1, 0)], 1),
    }


def run_io(jobs: int) -> dict:
    """I/O-bound drain: ``jobs`` pre-enqueued jobs of an async handler that each GET the
    slow local server (BENCH_IO_URL, a fixed wait per request), 2 warm worker processes
    with ASYNC_CONCURRENCY jobs each at once. Also the workers' RSS per concurrent slot."""
    _platform_setup()
    # Models load only after _platform_setup() has run django.setup().
    from queues import enqueue_many
    from queues.models import Job, JobStatus, Queue, Worker
    from queues.services.queues import pause_queue, resume_queue

    url = os.environ["BENCH_IO_URL"]
    slots = int(os.environ.get("ASYNC_CONCURRENCY", "10"))
    env = {**os.environ, "EXTRA_JOB_MODULES": "bench.io_jobs", "ASYNC_CONCURRENCY": str(slots)}
    # The driver enqueues by name: the handler must be registered here too.
    import bench.io_jobs  # noqa: F401

    worker = start([sys.executable, "manage.py", "runworker", "--workers", "2"], env)
    try:
        wait_for(lambda: Worker.objects.count() == 1, 60, "the worker to register")
        for _ in range(3):  # warm: each process opens its pool
            warm = enqueue_many([{"name": "bench.http_wait", "payload": {"url": url}}] * 40)
            wait_for(lambda w=warm: not unfinished(pk__in=[j.pk for j in w]), 60, "warm-up")
        rss_idle = _rss_kb(worker.pid)
        pause_queue("default")
        enqueue_many([{"name": "bench.http_wait", "payload": {"url": url}}] * jobs)
        t0 = time.perf_counter()
        resume_queue("default")
        queue_id = Queue.objects.get(name="default").pk
        wait_for(lambda: not unfinished(queue_id=queue_id), 600, "all jobs")
        t1 = time.perf_counter()
        rss_after = _rss_kb(worker.pid)
        failed = Job.objects.exclude(status=JobStatus.COMPLETED).count()
        assert failed == 0, f"{failed} jobs did not complete"
        return {
            "scenario": "io",
            "jobs": jobs,
            "processes": 2,
            "slots_per_process": slots,
            "seconds": round(t1 - t0, 3),
            "per_second": round(jobs / (t1 - t0), 1),
            "rss_mb": round(rss_after / 1024, 1),
            "rss_growth_per_slot_kb": round((rss_after - rss_idle) / (2 * slots), 1),
        }
    finally:
        stop(worker)


def _rss_kb(pid: int) -> int:
    # The supervisor module imports queues.models: only after django.setup().
    from queues.engine.supervisor import descendants

    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def run_rss(jobs: int) -> dict:
    """Worker RSS (runworker and all its processes) after 1,000 jobs and after ``jobs``."""
    _platform_setup()
    # Models load only after _platform_setup() has run django.setup().
    from queues import enqueue_many
    from queues.models import Job, Worker

    worker = start([sys.executable, "manage.py", "runworker", "--workers", "2"], os.environ.copy())
    done = Job.objects.filter(status="completed")

    def push(total: int) -> None:
        already = Job.objects.count()
        for start_at in range(already, total, 5000):
            enqueue_many(
                [
                    {"name": "platform.echo", "payload": {"i": i}}
                    for i in range(start_at, min(start_at + 5000, total))
                ]
            )
        wait_for(lambda: not unfinished(), 900, f"{total} jobs")
        assert done.count() >= total
        time.sleep(1)  # let the processes settle

    try:
        wait_for(Worker.objects.exists, 60, "the worker to register")
        push(1000)
        after_1k = _rss_kb(worker.pid)
        push(jobs)
        after_all = _rss_kb(worker.pid)
    finally:
        stop(worker)
    return {
        "scenario": "rss",
        "jobs": jobs,
        "rss_1k_mb": round(after_1k / 1024, 1),
        "rss_all_mb": round(after_all / 1024, 1),
        "growth_pct": round((after_all - after_1k) * 100 / after_1k, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "scenario",
        choices=[
            "platform",
            "drain",
            "drain-backlog",
            "io",
            "q2",
            "q2-nosave",
            "celery",
            "schedule-lateness",
            "enqueue",
            "pickup",
            "rss",
            "scaling",
        ],
    )
    parser.add_argument("--jobs", type=int, default=5000)
    args = parser.parse_args()
    if args.scenario == "platform":
        out = run_platform(args.jobs)
    elif args.scenario == "io":
        out = run_io(args.jobs)
    elif args.scenario == "drain":
        out = run_drain(args.jobs)
    elif args.scenario == "drain-backlog":
        out = run_drain(10_000, backlog=args.jobs)
    elif args.scenario == "q2":
        out = run_q2(args.jobs, 250)
    elif args.scenario == "q2-nosave":
        out = run_q2(args.jobs, -1)
    elif args.scenario == "schedule-lateness":
        out = run_schedule_lateness(120)
    elif args.scenario == "enqueue":
        out = run_enqueue(args.jobs)
    elif args.scenario == "pickup":
        out = run_pickup(200)
    elif args.scenario == "scaling":
        out = run_scaling(args.jobs)
    elif args.scenario == "rss":
        out = run_rss(max(args.jobs, 1_000_000))
    else:
        out = run_celery(args.jobs)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
