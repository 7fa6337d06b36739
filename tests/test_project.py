"""Project-level checks: settings, migrations, lint, management commands."""

import ast
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


def test_a_web_only_process_imports_no_engine_code():
    """Producer/consumer separation: serving the admin and the API (and enqueueing) loads
    no module of queues.engine, and no django-q2 cluster or worker."""
    code = (
        "import os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'jobplatform.settings')\n"
        "from django.core.wsgi import get_wsgi_application\n"
        "app = get_wsgi_application()\n"
        "import jobplatform.urls\n"
        "import django.contrib.admin\n"
        "from django.urls import get_resolver\n"
        "get_resolver().url_patterns\n"
        "django.contrib.admin.site.get_urls()\n"
        "print(sorted(m for m in sys.modules if m == 'queues.engine'\n"
        "    or m.startswith(('queues.engine.', 'django_q.cluster', 'django_q.worker'))))\n"
    )
    result = run_python(code, DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


APPS = ("queues", "scheduling", "notifications", "devices", "jobplatform")
DOMAINS = ("scheduling", "notifications", "devices")
# Modules that may import the engine: the engine itself, and the commands that run it.
ENGINE_USERS = (
    "queues.engine",
    "queues.runner",  # the one-release path for doorbell messages queued before the move
    "queues.management.commands.runworker",
    "queues.management.commands.runscheduler",
)


def _module_imports() -> dict[str, set[str]]:
    """Every module of the apps, with every module it imports (top level or in a
    function), read from the source with ast."""
    found: dict[str, set[str]] = {}
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            module = ".".join(parts)
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            names: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                        base = ".".join([*anchor, *([base] if base else [])])
                    names.add(base)
                    names.update(f"{base}.{alias.name}" for alias in node.names)
            found[module] = names
    return found


def _layering_violations(imports: dict[str, set[str]]) -> list[str]:
    def top(name: str) -> str:
        return name.split(".")[0]

    def within(name: str, prefix: str) -> bool:
        return name == prefix or name.startswith(prefix + ".")

    problems = []
    for module, names in sorted(imports.items()):
        here = top(module)
        for name in sorted(names):
            there = top(name)
            if here == "queues" and there in (*DOMAINS, "jobplatform"):
                problems.append(f"{module} imports {name}: queues must not import {there}")
            if here in DOMAINS and there in DOMAINS and there != here:
                problems.append(f"{module} imports {name}: one domain app imports another")
            if within(name, "queues.engine") and not any(within(module, u) for u in ENGINE_USERS):
                problems.append(f"{module} imports {name}: only the worker side imports the engine")
    return problems


def test_the_layering_holds():
    """queues imports no domain app and not jobplatform; domain apps do not import each
    other; only the engine and the worker commands import queues.engine."""
    imports = _module_imports()
    assert {"queues.engine.runner", "scheduling.services", "devices.admin"} <= set(imports)
    assert _layering_violations(imports) == []


def test_the_layering_check_catches_each_kind_of_break():
    # The check itself can fail: one made-up module per rule.
    broken = {
        "queues.api.views": {"jobplatform.api", "jobplatform.api.Conflict"},
        "devices.services": {"scheduling.models"},
        "queues.admin.jobs": {"queues.engine.runner", "queues.engine.runner.drain"},
        "queues.engine.runner": {"queues.engine.claim"},
        "queues.management.commands.runworker": {"queues.engine.supervisor"},
        "scheduling.services": {"queues.services"},
    }
    problems = _layering_violations(broken)
    assert problems == [
        "devices.services imports scheduling.models: one domain app imports another",
        "queues.admin.jobs imports queues.engine.runner: only the worker side imports the engine",
        "queues.admin.jobs imports queues.engine.runner.drain: only the worker side imports "
        "the engine",
        "queues.api.views imports jobplatform.api: queues must not import jobplatform",
        "queues.api.views imports jobplatform.api.Conflict: queues must not import jobplatform",
    ]
