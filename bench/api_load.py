"""REST API throughput under gunicorn (2 sync workers) on Postgres + Redis, driven by wrk.

    .venv/bin/python bench/api_load.py [--seconds 10] [--connections 32]

Measures POST /api/v1/jobs/ (create) and GET /api/v1/jobs/{id}/ with token auth. wrk runs
on the same machine (2 cores), so the figures include its share of the CPU.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import django
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import ensure_database  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wrk(url: str, token: str, seconds: int, connections: int, body: str | None) -> dict:
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115
    script.write(f'wrk.headers["Authorization"] = "Token {token}"\n')
    if body:
        script.write('wrk.method = "POST"\n')
        script.write('wrk.headers["Content-Type"] = "application/json"\n')
        script.write(f"wrk.body = [[{body}]]\n")
    script.close()
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+\w+)", out).group(1)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out).group(1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "non_2xx": int(errors.group(1)) if errors else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    env = os.environ.copy()
    env.update(
        DATABASE_URL=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jobplatform_bench"
        ),
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
        SECRET_KEY="bench-secret-key",
        DEBUG="0",
        SECURE_SSL_REDIRECT="0",  # plain HTTP on localhost
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        ALLOWED_HOSTS="127.0.0.1",
        DB_CONN_MAX_AGE="600",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="jobplatform.settings",
    )
    os.environ.update(env)
    ensure_database(env["DATABASE_URL"])
    django.setup()
    # Models load only after django.setup() with the settings set just above.
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    from queues import enqueue  # (after setup too: it loads services on first use)

    call_command("migrate", verbosity=0)
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", "bench@example.com", "bench"
    )
    token = Token.objects.get_or_create(user=user)[0].key
    job = enqueue("platform.echo", {"hello": "world"})

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "jobplatform.wsgi",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("gunicorn did not start") from None
                time.sleep(0.2)
        body = '{"name": "platform.echo", "payload": {"to": "alice@example.com"}}'
        wrk(f"{base}/api/v1/jobs/{job.pk}/", token, 2, 4, None)  # warm-up
        create = wrk(f"{base}/api/v1/jobs/", token, args.seconds, args.connections, body)
        read = wrk(f"{base}/api/v1/jobs/{job.pk}/", token, args.seconds, args.connections, None)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    print(
        f"\ngunicorn, 2 sync workers, wrk -t2 -c{args.connections} -d{args.seconds}s "
        "(same 2-core machine), token auth\n"
    )
    print("| request | req/s | p50 | p99 | non-2xx |")
    print("|---|---:|---:|---:|---:|")
    for name, row in (("POST /api/v1/jobs/", create), ("GET /api/v1/jobs/{id}/", read)):
        print(f"| {name} | {row['rps']:,.0f} | {row['p50']} | {row['p99']} | {row['non_2xx']} |")


if __name__ == "__main__":
    main()
