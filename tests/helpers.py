"""Helpers shared by the tests: poll with a deadline, run manage.py commands, skip (or
fail under CI) when a tool is missing, API clients, a frozen clock and the ledger's state."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def wait_for(
    predicate: Callable[[], object],
    *,
    timeout: float,
    interval: float = 0.05,
    message: str = "condition",
) -> object:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a manage.py child that uses this test run's database and Redis."""
    db = settings.DATABASES["default"]
    env = os.environ.copy()
    env.update(
        DJANGO_SETTINGS_MODULE="jobplatform.settings_test",
        DATABASE_URL=(
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
            f"{connection.settings_dict['NAME']}"
        ),
        REDIS_URL=settings.REDIS_URL,
        DB_CONN_MAX_AGE="600",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Processes:
    """Start manage.py commands in their own process groups; kill what is left at the end."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []

    def start(self, *args: str, **env: str) -> subprocess.Popen:
        """A manage.py command."""
        return self.start_command([str(ROOT / "manage.py"), *args], **env)

    def start_command(
        self, argv: list[str], *, prefix: tuple[str, ...] = (), name: str = "", **env: str
    ) -> subprocess.Popen:
        """``python <argv>`` with this run's database and Redis; ``prefix`` runs it under
        another command (e.g. ``ip netns exec NS``), ``name`` names its log file."""
        name = name or (argv[1] if argv[0] == "-m" else Path(argv[0]).stem)
        log = open(self.tmp_path / f"{name}-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [*prefix, sys.executable, *argv],
            cwd=ROOT,
            env=subprocess_env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.log_path = log.name
        log.close()
        self.procs.append(proc)
        return proc

    def output(self, proc: subprocess.Popen) -> str:
        return Path(proc.log_path).read_text(errors="replace")

    def stop(self, proc: subprocess.Popen, *, timeout: float = 30) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill(proc)
                raise AssertionError(f"{proc.args} did not stop within {timeout}s") from None
        return proc.returncode

    def kill(self, proc: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(AssertionError):
                    self.stop(proc, timeout=15)
            # Worker children live in the same process group: make sure none survives.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def skip_unless_ci(reason: str) -> NoReturn:
    """Something a test needs is missing here: skip it, except under CI (``CI=true``),
    where the test must run, so it fails."""
    if in_ci():
        pytest.fail(f"cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def token_client(user):
    """An API client that sends ``user``'s token, as a real client would."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def active_worker_pid(job, *, timeout: float = 30, message: str = "") -> int:
    """Wait until ``job`` is active; the pid of the worker process that holds it."""
    from queues.models import Job, JobStatus

    worker = wait_for(
        lambda: (
            Job.objects.filter(pk=job.pk, status=JobStatus.ACTIVE)
            .values_list("worker", flat=True)
            .first()
        ),
        timeout=timeout,
        message=message or f"job {job.pk} to become active",
    )
    return int(worker.split(":")[1])  # host:pid:token


def freeze_clock(monkeypatch, instant: datetime) -> datetime:
    """Stop ``django.utils.timezone.now`` at ``instant`` for the rest of the test (every
    thread, the live server's included). Code that buckets by the minute or computes
    "the next run after now" then sees one instant, whenever the test runs."""
    from django.utils import timezone

    monkeypatch.setattr(timezone, "now", lambda: instant)
    return instant


def rows(*models) -> dict[str, list[dict]]:
    """Every row of each model, every column, in primary-key order."""
    return {m._meta.label: list(m.objects.order_by("pk").values()) for m in models}


def ledger_state(*models) -> dict[str, list[dict]]:
    """What a refused request must leave as it was: queues, jobs (status, attempts,
    payload...), their attempts, logs and dependencies, the audit log, and ``models``."""
    from queues.models import AuditLog, Job, JobAttempt, JobDependency, JobLog, Queue

    return rows(Queue, Job, JobAttempt, JobLog, JobDependency, AuditLog, *models)


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port (never the shared one),
    which the test may stop and start again; ``close`` removes every server it started."""

    def __init__(self) -> None:
        import redis

        port = free_port()
        self.command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        self.command += ["--save", "", "--appendonly", "no"]
        self.url = f"redis://127.0.0.1:{port}/0"
        self.client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        self.procs.append(subprocess.Popen(self.command, stdout=subprocess.DEVNULL))
        wait_for(self.pings, timeout=10, message="redis-server to start")

    def stop(self) -> None:
        self.procs[-1].terminate()
        self.procs[-1].wait(timeout=10)

    def pings(self) -> bool:
        import redis

        try:
            return self.client.ping()
        except redis.ConnectionError:
            return False

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
