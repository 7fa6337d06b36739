"""Project-level checks: settings, migrations, lint, management commands."""

import json
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from queues.models import Job
from tests.helpers import ROOT


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL", "DB_CONN_MAX_AGE"}
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_secret_key_is_required_when_debug_is_off():
    code = "import jobplatform.settings"
    result = run_python(code, DJANGO_SETTINGS_MODULE="jobplatform.settings")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert run_python(code, DEBUG="1").returncode == 0
    assert run_python(code, SECRET_KEY="x" * 50).returncode == 0


def test_bad_boolean_setting_is_a_clear_error():
    result = run_python("import jobplatform.settings", DEBUG="maybe")
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_embedded_default_is_sqlite_and_the_orm_broker():
    code = (
        "import jobplatform.settings as s; "
        "print(s.DATABASES['default']['ENGINE'], 'orm' in s.Q_CLUSTER, "
        "s.DATABASES['default']['CONN_MAX_AGE'])"
    )
    result = run_python(code, DEBUG="1")
    assert result.stdout.split() == ["django.db.backends.sqlite3", "True", "600"]
    pg = run_python(
        code.replace("'orm'", "'redis'"),
        DEBUG="1",
        DATABASE_URL="postgres://u@db:5432/x",
        REDIS_URL="redis://r:6379/0",
    )
    assert pg.stdout.split() == ["django.db.backends.postgresql", "True", "600"]


@pytest.mark.django_db
def test_migrations_are_current():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_code_is_lint_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_enqueue_and_queuestats_commands(capsys):
    call_command(
        "enqueue", "platform.echo", "--payload", '{"a": 1}', "--queue", "sms", "--priority", "1"
    )
    out = capsys.readouterr().out
    job = Job.objects.get()
    assert out.startswith(f"{job.id} waiting queue=sms priority=1")
    call_command("queuestats", "--json")
    stats = {q["name"]: q for q in json.loads(capsys.readouterr().out)}
    assert stats["sms"]["counts"]["waiting"] == 1
    assert stats["sms"]["total"] == 1
    assert set(stats) >= {
        "default",
        "email",
        "sms",
        "notification",
        "device-operation",
        "data-export",
        "report-generation",
        "image-processing",
        "log-processing",
    }
    call_command("queuestats")
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:3] == ["queue", "paused", "waiting"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "no job handler is registered as 'nope'"),
        (["platform.echo", "--payload", "{bad"], "--payload is not valid JSON"),
        (["platform.echo", "--queue", "nope"], "no queue is named 'nope'"),
        (["platform.echo", "--delay", "-1"], "must not be negative"),
    ],
)
def test_enqueue_command_errors(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("enqueue", *args)
    assert Job.objects.count() == 0


WORKER_SIDE = [
    "queues.engine.runner",
    "queues.engine.runtime",
    "queues.engine.supervisor",
    "queues.engine.maintenance",
    "queues.engine.recovery",
    "queues.engine.claim",
    "queues.engine.finalize",
    "django_q.cluster",
    "django_q.worker",
]


def test_a_web_only_process_imports_no_worker_code():
    """Producer/consumer separation: serving the admin and the API (and enqueueing) loads
    none of the worker or scheduler modules."""
    code = (
        "import os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'jobplatform.settings')\n"
        "from django.core.wsgi import get_wsgi_application\n"
        "app = get_wsgi_application()\n"
        "import jobplatform.urls\n"
        "from django.urls import get_resolver\n"
        "get_resolver().url_patterns\n"
        f"print([m for m in {WORKER_SIDE!r} if m in sys.modules])\n"
    )
    result = run_python(code, DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
