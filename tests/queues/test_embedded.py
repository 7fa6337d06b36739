"""The embedded default (SQLite, django-q2's ORM broker, no ``REDIS_URL``): every path that
uses Redis when it has one still works without it. Each test runs its code in a child
process on a fresh copy of a migrated SQLite file, with ``REDIS_URL`` unset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import ROOT

SETUP = """
import json, os, threading, time
import django
django.setup()
from django.conf import settings
assert settings.REDIS_URL is None, settings.REDIS_URL
assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token
from queues import enqueue
from queues.api import wait
from queues.engine.runner import drain

user = User.objects.create_superuser("admin", "a@example.com", "pw")
token = Token.objects.create(user=user).key
reads = []
_read = wait._state


def counting_read(job_id):
    reads.append(time.monotonic())
    return _read(job_id)


wait._state = counting_read


def long_poll(job, timeout):
    started = time.monotonic()
    response = Client().get(
        f"/api/v1/jobs/{job.pk}/wait/", {"timeout": timeout}, HTTP_AUTHORIZATION=f"Token {token}"
    )
    return {
        "code": response.status_code,
        "body": response.json(),
        "reads": len(reads),
        "elapsed": time.monotonic() - started,
    }
"""


def _child_env(database: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DB_CONN_MAX_AGE", "WEBHOOK_ALLOWED_NETWORKS"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="jobplatform.settings_test",
        DATABASE_URL=f"sqlite:///{database}",
        # settings_test only sets REDIS_URL when it is missing: empty means "no Redis".
        REDIS_URL="",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("embedded") / "template.sqlite3"
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=_child_env(str(path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return str(path)


@pytest.fixture
def embedded_database(migrated_sqlite, tmp_path) -> str:
    """A fresh copy of the migrated SQLite file for this test's child processes."""
    database = tmp_path / "db.sqlite3"
    shutil.copy(migrated_sqlite, database)
    return str(database)


@pytest.fixture
def run_embedded(embedded_database):
    """Run ``code`` after SETUP in a child without Redis; returns the last stdout line as JSON."""

    def run(code: str, **env: str) -> dict:
        result = subprocess.run(
            [sys.executable, "-c", SETUP + textwrap.dedent(code)],
            cwd=ROOT,
            env=_child_env(embedded_database, **env),
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    return run


def test_long_poll_without_redis_answers_when_the_job_completes_during_the_wait(run_embedded):
    outcome = run_embedded(
        """
        job = enqueue("platform.echo", {"x": 1})


        def finish_once_the_waiter_polls():
            deadline = time.monotonic() + 30
            while len(reads) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            drain("default")
            connection.close()


        worker = threading.Thread(target=finish_once_the_waiter_polls)
        worker.start()
        answer = long_poll(job, 30)
        worker.join(timeout=30)
        print(json.dumps(answer))
        """
    )
    assert outcome["code"] == 200
    assert outcome["body"]["status"] == "completed"
    assert outcome["body"]["result"] == {"x": 1}
    # It answered on a ledger read after the job finished, long before the timeout.
    assert outcome["reads"] >= 3
    assert outcome["elapsed"] < 25


def test_long_poll_without_redis_times_out_with_the_current_state(run_embedded):
    outcome = run_embedded(
        """
        job = enqueue("platform.echo", {}, queue="sms")  # nobody drains it
        print(json.dumps(long_poll(job, 0.6)))
        """
    )
    assert outcome["code"] == 408
    assert outcome["body"]["status"] == "waiting"
    assert outcome["elapsed"] >= 0.6
    # Back-off: 50, 100, 200 ms, then the rest of the timeout; polling every 50 ms would
    # have read the ledger a dozen times.
    assert 3 <= outcome["reads"] <= 7


def test_webhooks_rate_limits_doorbell_and_health_work_without_redis(run_embedded):
    outcome = run_embedded(
        """
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from queues import doorbell
        from queues.engine import limits
        from queues.health import run_checks
        from queues.models import Job

        received = []


        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass


        server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        job = enqueue("platform.echo", {"y": 2}, webhook_url=url)
        drain("default")
        drain("notification")
        server.shutdown()
        doorbell.advertise("jobplatform.all", ["default"])
        doorbell.bell_answered("default", "jobplatform.all")
        doorbell.withdraw("jobplatform.all", ["default"])
        _, checks = run_checks()
        print(json.dumps({
            "statuses": [event["status"] for event in received],
            "deliveries": sorted(
                Job.objects.filter(name="platform.webhook").values_list("status", flat=True)
            ),
            "rings": doorbell.ring(["default"]),
            "first_hit": limits.hit("embedded", limit=1, per=60),
            "second_hit_waits": limits.hit("embedded", limit=1, per=60) is not None,
            "redis_check": checks["redis"],
        }))
        """,
        WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32",
    )
    assert outcome["statuses"] == ["waiting", "active", "completed"]
    assert outcome["deliveries"] == ["completed"] * 3
    assert outcome["rings"] == 0  # no live worker to ring; the ledger keeps the job
    assert outcome["first_hit"] is None
    assert outcome["second_hit_waits"] is True
    assert outcome["redis_check"] == {"ok": True, "detail": "not configured (ORM broker)"}


@pytest.mark.subprocess
def test_a_real_worker_without_redis_finishes_the_job_a_long_poll_waits_on(
    embedded_database, run_embedded, processes
):
    worker = processes.start(
        "runworker", "--workers", "1", DATABASE_URL=f"sqlite:///{embedded_database}", REDIS_URL=""
    )
    outcome = run_embedded(
        """
        from queues.selectors import live_workers

        deadline = time.monotonic() + 60
        while not live_workers().exists():  # the ORM doorbell rings only live workers
            assert time.monotonic() < deadline, "runworker did not register"
            time.sleep(0.05)
        job = enqueue("platform.sleep", {"seconds": 0.5})
        print(json.dumps(long_poll(job, 30)))
        """
    )
    assert outcome["code"] == 200, processes.output(worker)
    assert outcome["body"]["status"] == "completed"
    assert outcome["body"]["result"] == {"slept": 0.5}
    assert outcome["reads"] >= 2  # it was still running when the wait began
