"""Faults injected into real processes on real Postgres and Redis.

Each test prints how long recovery took (``-s`` shows it; the README's Guarantees cite it).
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from django.db import OperationalError, connection

from queues import cancel_job, doorbell, enqueue, enqueue_many, pause_queue, resume_queue
from queues.engine.supervisor import descendants
from queues.models import AttemptOutcome, Job, JobAttempt, JobStatus, Queue, Worker
from tests.helpers import PrivateRedis, active_worker_pid, alive, wait_for

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

FAST = {"REWAKE_INTERVAL": "1", "STALL_CHECK_INTERVAL": "0.5", "WORKER_TTL": "6"}


def report(name: str, seconds: float) -> None:
    print(f"\nRECOVERY {name}: {seconds:.2f}s")


def outcomes(job) -> list[str]:
    """The outcome of each attempt of ``job``: its history rows and, for a completed job,
    the completing attempt that lives on its row."""
    return [a.outcome for a in Job.objects.get(pk=job.pk).attempt_history()]


def status(job) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job.pk)


def start_platform(processes, *, workers=1, scheduler=True, **env):
    worker = processes.start("runworker", "--workers", str(workers), **FAST, **env)
    if scheduler:
        processes.start("runscheduler", **FAST, **env)
    wait_for(Worker.objects.exists, timeout=30, message="the worker to register")
    return worker


def test_kill_9_of_a_worker_mid_job_stalls_it_and_runs_it_again(processes):
    Queue.objects.filter(name="default").update(lock_duration=2)
    start_platform(processes)
    job = enqueue("test.sleep_first", {"seconds": 60})
    pid = active_worker_pid(job)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: status(job) == JobStatus.COMPLETED, timeout=30, message="the rerun")
    report("worker kill -9 mid-job -> rerun completed", time.monotonic() - killed_at)
    job.refresh_from_db()
    assert [(a.number, a.outcome) for a in job.attempt_history()] == [
        (1, AttemptOutcome.STALLED),
        (2, AttemptOutcome.COMPLETED),
    ]
    assert "stopped renewing it" in job.attempts.get(number=1).error
    assert job.stalled_count == 1
    assert job.result == {"attempt": 2}
    # The stalled try did not use up one of the job's attempts.
    assert job.attempts_made - job.attempts_base == 1


def test_a_job_that_keeps_stalling_fails_after_max_stalled(processes):
    Queue.objects.filter(name="default").update(lock_duration=2, max_stalled=1)
    start_platform(processes)
    job = enqueue("platform.sleep", {"seconds": 120})
    for attempt in (1, 2):
        wait_for(
            lambda a=attempt: Job.objects.filter(
                pk=job.pk, status=JobStatus.ACTIVE, attempts_made=a
            ).exists(),
            timeout=30,
            message=f"attempt {attempt}",
        )
        os.kill(active_worker_pid(job), signal.SIGKILL)
    wait_for(lambda: status(job) == JobStatus.FAILED, timeout=30, message="the job to fail")
    job.refresh_from_db()
    assert job.error.startswith("stalled 2 times (queue max_stalled=1)")
    assert list(job.attempts.values_list("outcome", flat=True)) == ["stalled", "stalled"]


def test_kill_9_of_the_whole_runworker_loses_nothing(processes):
    Queue.objects.filter(name="default").update(lock_duration=2)
    worker = start_platform(processes, workers=2)
    jobs = enqueue_many([{"name": "test.slow", "payload": {"seconds": 0.1}} for _ in range(40)])
    wait_for(
        lambda: (
            Job.objects.filter(status=JobStatus.COMPLETED).count() >= 4
            and Job.objects.filter(status=JobStatus.ACTIVE).exists()
        ),
        timeout=30,
        message="work in progress",
    )
    processes.kill(worker)  # SIGKILL to the whole process group
    killed_at = time.monotonic()
    assert Job.objects.filter(status__in=[JobStatus.ACTIVE, JobStatus.WAITING]).exists()
    restarted = processes.start("runworker", "--workers", "2", **FAST)
    try:
        wait_for(
            lambda: Job.objects.filter(status=JobStatus.COMPLETED).count() == len(jobs),
            timeout=60,
            message="every job to complete after the restart",
        )
    except AssertionError as exc:  # say where the jobs are, and what the worker said
        where = list(
            Job.objects.exclude(status=JobStatus.COMPLETED).values_list(
                "status", "worker", "locked_until", "stalled_count"
            )
        )
        raise AssertionError(f"{exc}: {where}\n{processes.output(restarted)[-3000:]}") from None
    report("runworker kill -9 + restart -> all 40 completed", time.monotonic() - killed_at)
    # Each ran to completion once: stalls are the only history.
    history = [o for j in jobs for o in outcomes(j)]
    assert history.count(AttemptOutcome.COMPLETED) == len(jobs)
    assert set(history) <= {"completed", "stalled"}


@pytest.mark.parametrize("target", ["main process", "process group"])
def test_sigterm_finishes_active_jobs_keeps_the_rest_waiting_and_exits(processes, target):
    worker = start_platform(processes, scheduler=False, SHUTDOWN_GRACE="20")
    running = enqueue("test.slow", {"seconds": 1.5})
    active_worker_pid(running)
    waiting = enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(5)])
    family = descendants(worker.pid)
    sent_at = time.monotonic()
    if target == "main process":
        os.kill(worker.pid, signal.SIGTERM)
    else:
        os.killpg(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, processes.output(worker)
    report(f"SIGTERM to the {target} -> clean exit", time.monotonic() - sent_at)
    assert status(running) == JobStatus.COMPLETED
    assert {status(j) for j in waiting} == {JobStatus.WAITING}
    assert not Job.objects.filter(status=JobStatus.ACTIVE).exists()
    assert Job.objects.filter(attempts_made__gt=0).count() == 1
    wait_for(lambda: not any(alive(pid) for pid in family), timeout=10, message="no orphans")
    assert not Worker.objects.exists()


def test_sigterm_past_the_grace_period_puts_the_job_back(processes):
    worker = start_platform(processes, scheduler=False, SHUTDOWN_GRACE="1")
    job = enqueue("test.slow", {"seconds": 60})
    active_worker_pid(job)
    family = descendants(worker.pid)
    sent_at = time.monotonic()
    os.kill(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, processes.output(worker)
    report("SIGTERM past grace -> exit, job back to waiting", time.monotonic() - sent_at)
    job.refresh_from_db()
    assert job.status == JobStatus.WAITING
    attempt = job.attempts.get()
    assert attempt.outcome == AttemptOutcome.STALLED
    assert "its worker was stopped before the job finished" in attempt.error
    assert job.attempts_made - job.attempts_base == 0  # not counted against the job
    wait_for(lambda: not any(alive(pid) for pid in family), timeout=10, message="no orphans")


def test_a_cluster_frozen_by_killed_idle_workers_is_restarted(processes):
    worker = start_platform(processes, workers=2, FREEZE_SECONDS="3")
    warmup = enqueue("platform.echo", {})
    wait_for(lambda: status(warmup) == JobStatus.COMPLETED, timeout=30, message="warm-up")
    (sentinel,) = [p for p in descendants(worker.pid) if p in _children(worker.pid)]
    # Kill every idle process of the cluster: the one blocked reading the task queue
    # dies holding its lock, which freezes django-q2 (issue #23).
    for pid in _children(sentinel):
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    jobs = enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(3)])
    wait_for(
        lambda: all(status(j) == JobStatus.COMPLETED for j in jobs),
        timeout=60,
        message="jobs after the freeze",
    )
    report("idle workers kill -9 (frozen cluster) -> jobs complete", time.monotonic() - killed_at)
    # Whether the kill freezes django-q2 depends on which process held the task queue's
    # lock at that instant: frozen, the supervisor restarts the cluster; not frozen,
    # django-q2 replaces the dead processes itself. Either way the jobs above completed,
    # and the cluster recovered in one of the two known ways.
    output = processes.output(worker)
    assert "restarting it" in output or "reincarnated" in output, output


def _children(pid: int) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == pid]


def _ppid(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def test_hard_timeout_kills_a_handler_that_ignores_it(processes):
    start_platform(processes, HARD_KILL_GRACE="1")
    job = enqueue("test.stubborn", {"seconds": 60}, timeout=0.5, attempts=1)
    wait_for(lambda: status(job) == JobStatus.FAILED, timeout=30, message="the timeout")
    job.refresh_from_db()
    assert "exceeded its timeout of 0.5s and did not stop" in job.error
    assert job.attempts.get().outcome == AttemptOutcome.TIMEOUT
    after = enqueue("platform.echo", {})
    wait_for(lambda: status(after) == JobStatus.COMPLETED, timeout=30, message="a fresh worker")


@pytest.mark.parametrize(
    ("handler", "payload", "how"),
    [
        ("platform.sleep", {"seconds": 30}, "cooperatively"),
        ("test.slow", {"seconds": 30}, "by force after the grace period"),
    ],
)
def test_cancelling_an_active_job_stops_it(processes, handler, payload, how):
    start_platform(processes, CANCEL_GRACE="1")
    job = enqueue(handler, payload)
    pid = active_worker_pid(job)
    cancelled_at = time.monotonic()
    cancel_job(job.pk)
    wait_for(
        lambda: JobAttempt.objects.filter(job=job).exists(), timeout=20, message="the attempt end"
    )
    report(f"cancel active job {how} -> stopped", time.monotonic() - cancelled_at)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.attempts.get().outcome == AttemptOutcome.CANCELLED
    after = enqueue("platform.echo", {})
    wait_for(lambda: status(after) == JobStatus.COMPLETED, timeout=20, message="the next job")
    after.refresh_from_db()
    assert after.worker.split(":")[1] == str(pid)  # the process survived (its attempt's worker)


def test_concurrency_cap_holds_across_workers(processes):
    Queue.objects.filter(name="default").update(concurrency=1)
    start_platform(processes, workers=2)
    enqueue_many([{"name": "test.slow", "payload": {"seconds": 0.3}} for _ in range(4)])
    wait_for(
        lambda: Job.objects.filter(status=JobStatus.COMPLETED).count() == 4,
        timeout=60,
        message="4 jobs",
    )
    spans = sorted(Job.objects.values_list("started_at", "finished_at"))  # their one attempt
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(3)), spans


def test_queue_rate_limit_is_shared_by_workers(processes):
    Queue.objects.filter(name="default").update(rate_limit_max=4, rate_limit_duration_ms=500)
    start_platform(processes, workers=2)
    enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(12)])
    wait_for(
        lambda: Job.objects.filter(status=JobStatus.COMPLETED).count() == 12,
        timeout=60,
        message="12 jobs",
    )
    # The window is enforced at claim time; a handler starts at or after its claim, by a
    # lag that grows with the machine's load. So compare claims, which the queue row
    # counts, and the whole span, which a lag can only shorten by the first job's lag:
    # 12 jobs at 4 per 0.5 s take three windows, at least 1.0 s from first to last claim.
    starts = sorted(Job.objects.values_list("started_at", flat=True))  # their one attempt
    assert (starts[-1] - starts[0]).total_seconds() >= 0.8, starts
    assert Queue.objects.get(name="default").rate_window_count <= 4


@pytest.fixture
def private_redis(settings):
    server = PrivateRedis()
    try:  # every server started goes away, even when one fails to come up
        server.start()
        settings.REDIS_URL = server.url
        yield server.url, server.client, server.start, server.procs
    finally:
        server.close()


def test_redis_flushall_and_restart_lose_no_job(processes, private_redis):
    url, client, start_redis, procs = private_redis
    start_platform(processes, workers=2, REDIS_URL=url)
    Queue.objects.filter(name="default").update(paused=True)  # no ring: let them wait
    first = enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(50)])
    # The drain that enqueue rang has run and found the queue paused: nothing is pending.
    wait_for(
        lambda: not client.keys("django_q:*:q") and not client.keys("jobplatform:bell:*"),
        timeout=10,
        message="the doorbell to be answered",
    )
    client.flushall()
    Queue.objects.filter(name="default").update(paused=False)  # again without a ring
    flushed_at = time.monotonic()
    wait_for(
        lambda: Job.objects.filter(status=JobStatus.COMPLETED).count() == len(first),
        timeout=30,
        message="jobs after FLUSHALL",
    )
    report("Redis FLUSHALL -> 50 waiting jobs completed", time.monotonic() - flushed_at)

    procs[-1].terminate()
    procs[-1].wait(timeout=10)
    second = enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(30)])
    start_redis()
    restarted_at = time.monotonic()
    wait_for(
        lambda: Job.objects.filter(status=JobStatus.COMPLETED).count() == len(first) + len(second),
        timeout=60,
        message="jobs after the Redis restart",
    )
    report(
        "Redis restart -> 30 jobs enqueued while down completed", time.monotonic() - restarted_at
    )


def _postgres_version() -> str:
    return sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(x) for x in v.split(".")])[-1]


def test_postgres_restart_while_workers_run(processes):
    start_platform(processes, workers=2)
    jobs = enqueue_many([{"name": "test.slow", "payload": {"seconds": 0.02}} for _ in range(400)])
    wait_for(
        lambda: Job.objects.filter(status=JobStatus.COMPLETED).count() >= 30,
        timeout=30,
        message="work in progress",
    )
    unfinished = Job.objects.exclude(status=JobStatus.COMPLETED).count()
    assert unfinished > 100  # the restart lands in the middle of the work
    restarted_at = time.monotonic()
    subprocess.run(
        [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            _postgres_version(),
            "main",
            "restart",
            "-m",
            "fast",
        ],
        check=True,
        timeout=120,
    )
    connection.close()

    def all_done() -> bool:
        try:
            done = Job.objects.filter(status=JobStatus.COMPLETED).count() == len(jobs)
            return done and not Job.objects.filter(status=JobStatus.ACTIVE).exists()
        except OperationalError:
            connection.close()
            return False

    wait_for(all_done, timeout=90, interval=0.2, message="every job after the restart")
    report(
        f"Postgres restart with {unfinished} jobs unfinished -> all completed",
        time.monotonic() - restarted_at,
    )
    assert all(AttemptOutcome.COMPLETED in outcomes(j) for j in jobs)


def test_a_hard_kill_keeps_the_outcomes_of_the_batch_that_already_ran(processes):
    start_platform(processes, HARD_KILL_GRACE="1")
    warm = enqueue("platform.echo", {})
    wait_for(lambda: status(warm) == JobStatus.COMPLETED, timeout=30, message="warm-up")
    pause_queue("default")  # so the next claim takes all of them in one batch
    echoes = enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(5)])
    stubborn = enqueue("test.stubborn", {"seconds": 60}, timeout=0.5, attempts=1)
    resume_queue("default")
    wait_for(lambda: status(stubborn) == JobStatus.FAILED, timeout=30, message="the hard kill")
    assert all(status(j) == JobStatus.COMPLETED for j in echoes)
    for job in echoes:
        assert outcomes(job) == ["completed"]
    assert JobAttempt.objects.get(job=stubborn).outcome == AttemptOutcome.TIMEOUT


def test_kill_9_during_a_long_batchmate_runs_no_finished_job_again(processes):
    # One batch: five short jobs, one that runs for a minute, five more short ones.
    Queue.objects.filter(name="default").update(lock_duration=3)
    start_platform(processes, workers=1)
    warm = enqueue_many([{"name": "platform.echo", "payload": {"warm": i}} for i in range(20)])
    wait_for(
        lambda: all(status(j) == JobStatus.COMPLETED for j in warm), timeout=30, message="warm-up"
    )
    pause_queue("default")  # so that one claim takes them all
    before = enqueue_many(
        [{"name": "platform.echo", "payload": {"i": i}, "priority": 1} for i in range(5)]
    )
    long = enqueue("test.sleep_first", {"seconds": 60}, priority=2)
    after = enqueue_many(
        [{"name": "platform.echo", "payload": {"i": i}, "priority": 3} for i in range(5)]
    )
    resumed = time.monotonic()
    resume_queue("default")
    # While the long job runs: the finished ones are recorded, the unstarted ones given back.
    wait_for(
        lambda: (
            status(long) == JobStatus.ACTIVE
            and all(status(j) == JobStatus.COMPLETED for j in before)
            and all(status(j) == JobStatus.WAITING for j in after)
        ),
        timeout=15,
        message="outcomes written and batchmates given back behind the long job",
    )
    report("outcomes of a long job's batchmates written", time.monotonic() - resumed)
    os.kill(active_worker_pid(long), signal.SIGKILL)
    wait_for(
        lambda: all(status(j) == JobStatus.COMPLETED for j in [*before, long, *after]),
        timeout=60,
        message="everything done after the kill",
    )
    for job in [*before, *after]:
        assert outcomes(job) == [AttemptOutcome.COMPLETED], job.pk
    assert outcomes(long) == [AttemptOutcome.STALLED, AttemptOutcome.COMPLETED]


def test_a_job_that_kills_its_worker_fails_alone_and_its_batchmates_complete(processes):
    # The crash takes the whole batch down with it: nothing says which job did it, so no
    # batchmate may be failed for that stall; the job that stalled runs alone next time.
    Queue.objects.filter(name="default").update(lock_duration=2, max_stalled=0)
    start_platform(processes, workers=1)
    warm = enqueue_many([{"name": "platform.echo", "payload": {"warm": i}} for i in range(20)])
    wait_for(
        lambda: all(status(j) == JobStatus.COMPLETED for j in warm), timeout=30, message="warm-up"
    )
    pause_queue("default")  # so that one claim takes them all
    crash = enqueue("test.crash", {}, priority=1)
    mates = enqueue_many(
        [{"name": "platform.echo", "payload": {"i": i}, "priority": 2} for i in range(5)]
    )
    resume_queue("default")
    wait_for(
        lambda: (
            status(crash) == JobStatus.FAILED
            and all(status(j) == JobStatus.COMPLETED for j in mates)
        ),
        timeout=60,
        message="the crashing job failed, its batchmates completed",
    )
    for job in mates:
        assert outcomes(job) == [AttemptOutcome.STALLED, AttemptOutcome.COMPLETED], job.pk
        assert (
            "it was one of 6 jobs its worker held"
            in Job.objects.get(pk=job.pk).attempts.get().error
        )
    crash.refresh_from_db()
    assert outcomes(crash) == [AttemptOutcome.STALLED, AttemptOutcome.STALLED]
    assert crash.stalled_count == 2
    assert crash.error.startswith("stalled 2 times (queue max_stalled=0)")


def test_an_async_handler_that_blocks_its_loop_is_killed_and_the_jobs_beside_it_run_again(
    processes,
):
    start_platform(processes, workers=1, HARD_KILL_GRACE="1")
    warm = enqueue_many([{"name": "platform.echo", "payload": {"warm": i}} for i in range(20)])
    wait_for(
        lambda: all(status(j) == JobStatus.COMPLETED for j in warm), timeout=30, message="warm-up"
    )
    pause_queue("default")  # so that one claim takes them all
    beside = enqueue_many(
        [{"name": "test.async_sleep", "payload": {"seconds": 2}, "priority": 1} for _ in range(3)]
    )
    blocker = enqueue("test.async_block", {"seconds": 60}, priority=2, timeout=0.5, attempts=1)
    resume_queue("default")
    wait_for(
        lambda: (
            status(blocker) == JobStatus.FAILED
            and all(status(j) == JobStatus.COMPLETED for j in beside)
        ),
        timeout=60,
        message="the blocker killed with its process, the jobs beside it run again",
    )
    blocker.refresh_from_db()
    attempt = blocker.attempts.get()
    assert attempt.outcome == AttemptOutcome.TIMEOUT
    assert "did not stop (it blocked its worker's event loop)" in attempt.error
    for job in beside:
        assert outcomes(job) == [AttemptOutcome.STALLED, AttemptOutcome.COMPLETED], job.pk
        stall = Job.objects.get(pk=job.pk).attempts.get()
        assert f"job {blocker.pk} beside it could not be stopped" in stall.error
        assert Job.objects.get(pk=job.pk).stalled_count == 0  # blameless: not counted


def test_the_job_blocking_the_loop_is_blamed_not_the_one_it_keeps_from_stopping(processes):
    # The sleeper's 0.5 s timeout cannot fire while the blocker holds the loop: it is the
    # blocker, whose own timeout is far off, that takes the kill.
    start_platform(processes, workers=1, HARD_KILL_GRACE="1")
    warm = enqueue_many([{"name": "platform.echo", "payload": {"warm": i}} for i in range(20)])
    wait_for(
        lambda: all(status(j) == JobStatus.COMPLETED for j in warm), timeout=30, message="warm-up"
    )
    pause_queue("default")
    sleeper = enqueue("test.async_sleep", {"seconds": 60}, priority=1, timeout=0.5, attempts=1)
    blocker = enqueue("test.async_block", {"seconds": 60}, priority=2, timeout=300, attempts=1)
    resume_queue("default")
    wait_for(
        lambda: status(blocker) == JobStatus.FAILED and status(sleeper) == JobStatus.FAILED,
        timeout=60,
        message="the blocker killed, the sleeper timed out on its own afterwards",
    )
    blocked = Job.objects.get(pk=blocker.pk).attempts.get()
    assert blocked.outcome == AttemptOutcome.TIMEOUT
    assert "blocked its worker's event loop, so that a job beside it could not be" in (
        blocked.error
    )
    assert outcomes(sleeper) == [AttemptOutcome.STALLED, AttemptOutcome.TIMEOUT]
    assert "exceeded its timeout of 0.5s" in Job.objects.get(pk=sleeper.pk).error


def test_a_poison_job_that_wedges_with_the_gil_held_fails_after_max_stalled(processes):
    Queue.objects.filter(name="default").update(max_stalled=1)
    worker = start_platform(processes, workers=1, FREEZE_SECONDS="3", SHUTDOWN_GRACE="2")
    poison = enqueue("test.wedge", {"length": 60}, priority=1)
    innocent = enqueue("platform.echo", {"waiting": "behind it"}, priority=5)
    wait_for(lambda: status(poison) == JobStatus.FAILED, timeout=90, message="the poison job")
    wait_for(lambda: status(innocent) == JobStatus.COMPLETED, timeout=30, message="the next job")
    poison.refresh_from_db()
    assert poison.stalled_count == 2
    assert "stalled 2 times (queue max_stalled=1)" in poison.error
    assert list(poison.attempts.order_by("number").values_list("outcome", flat=True)) == [
        AttemptOutcome.STALLED,
        AttemptOutcome.STALLED,
    ]
    assert processes.output(worker).count("restarting it") == 2


def test_a_dead_host_leaves_no_pending_bell_that_silences_the_survivor(processes):
    # Two worker hosts serve every queue through one list.
    dead = processes.start("runworker", "--workers", "1", **FAST)
    processes.start("runworker", "--workers", "1", **FAST)
    wait_for(lambda: Worker.objects.count() == 2, timeout=30, message="both hosts")
    warm = enqueue("platform.echo", {})
    wait_for(lambda: status(warm) == JobStatus.COMPLETED, timeout=30, message="warm-up")
    os.killpg(dead.pid, signal.SIGKILL)  # the whole host, at once
    # What it leaves behind when it had taken a drain message and not yet answered it: a
    # pending bell for the list, no message left in it. (Whether it held one at the very
    # moment of the kill is chance; here it is certain.)
    list_key = doorbell.list_key_for(None)
    client = doorbell.redis_client()
    client.delete(f"django_q:{list_key}:q")
    client.set(f"{doorbell.KEY_PREFIX}:bell:{list_key}:default", "1", ex=60)
    jobs = []
    for i in range(10):
        jobs.append(enqueue("platform.echo", {"i": i}))
        wait_for(lambda: status(jobs[-1]) == JobStatus.COMPLETED, timeout=15, message="pickup")
    pickups = sorted(
        (j.started_at - j.created_at).total_seconds()  # each one's attempt
        for j in Job.objects.filter(pk__in=[j.pk for j in jobs])
    )
    report("survivor pickups after a dead host: max", pickups[-1])
    assert len(pickups) == 10


def test_an_idle_worker_rings_for_jobs_whose_ring_was_lost(processes):
    # No runscheduler (whose re-wake would ring), and no cluster restart for 300 s.
    processes.start("runworker", "--workers", "1", FREEZE_SECONDS="300", **FAST)
    wait_for(lambda: Worker.objects.count() == 1, timeout=30, message="the worker")
    warm = enqueue("platform.echo", {})
    wait_for(lambda: status(warm) == JobStatus.COMPLETED, timeout=30, message="warm-up")
    # Written behind enqueue's back: no ring at all, as when Redis lost the message.
    lost = Job.objects.create(queue=Queue.objects.get(name="default"), name="platform.echo")
    wait_for(lambda: status(lost) == JobStatus.COMPLETED, timeout=30, message="a lost ring")
