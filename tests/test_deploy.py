"""Deployment files: production settings pass Django's deploy checks; the Procfile,
systemd units, Dockerfile and compose file name real commands and all the code."""

import re
import secrets

import yaml
from django.core.management import get_commands

from tests.helpers import ROOT
from tests.test_project import run_python

COMMANDS = set(get_commands())


def manage_commands(text: str) -> list[str]:
    return re.findall(r"manage\.py\"?,? \"?([a-z_]+)", text)


def test_check_deploy_is_clean_with_production_settings():
    result = run_python(
        "import sys\nfrom django.core.management import execute_from_command_line\n"
        "sys.argv = ['manage.py', 'check', '--deploy', '--fail-level', 'WARNING']\n"
        "execute_from_command_line(sys.argv)\n",
        DJANGO_SETTINGS_MODULE="jobplatform.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="jobs.example.com",
        DATABASE_URL="postgres://app@db.example.com:5432/jobs",
        REDIS_URL="redis://cache.example.com:6379/0",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_procfile_and_systemd_units_run_real_commands():
    procfile = (ROOT / "Procfile").read_text()
    names = dict(line.split(":", 1) for line in procfile.splitlines() if line.strip())
    assert set(names) >= {"release", "web", "worker", "scheduler"}
    for command in manage_commands(procfile):
        assert command in COMMANDS, command
    units = {p.name: p.read_text() for p in (ROOT / "deploy" / "systemd").glob("*.service")}
    assert set(units) == {
        "jobplatform-web.service",
        "jobplatform-worker@.service",
        "jobplatform-scheduler.service",
    }
    for name in ("jobplatform-worker@.service", "jobplatform-scheduler.service"):
        assert "KillMode=mixed" in units[name]
    for text in units.values():
        for command in manage_commands(text):
            assert command in COMMANDS, command


def test_dockerfile_and_compose_cover_the_code_and_the_services():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in (
        "jobplatform",
        "queues",
        "scheduling",
        "notifications",
        "devices",
        "templates",
        "manage.py",
    ):
        assert re.search(rf"^COPY {re.escape(package)}\b", dockerfile, re.M), package
    assert dockerfile.startswith("#") and "\nFROM python:3.11" in dockerfile
    assert "\nCMD [" in dockerfile and "\nUSER " in dockerfile
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"migrate", "web", "worker", "scheduler", "postgres", "redis"}
    for name in ("migrate", "web", "worker", "scheduler"):
        env = services[name]["environment"]
        assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} <= set(env)
    for name in ("worker", "scheduler"):
        command = services[name]["command"]
        assert command[:2] == ["python", "manage.py"] and command[2] in COMMANDS
