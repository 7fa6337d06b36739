"""jobplatform benchmark: end-to-end no-op throughput with 2 workers, peers side by side.

    ./dev bench [--jobs N] [--only platform,celery,...]

Runs on Postgres + Redis: BENCH_DATABASE_URL (default a `jobplatform_bench` database on
127.0.0.1) and BENCH_REDIS_URL (default redis://127.0.0.1:6379/14, flushed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ["platform", "q2", "q2-nosave", "celery", "schedule-lateness"]


def ensure_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    with psycopg.connect(
        host=parsed.hostname,
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        dbname="postgres",
        autocommit=True,
    ) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    args = parser.parse_args()

    db_url = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jobplatform_bench"
    )
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    ensure_database(db_url)
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    env = os.environ.copy()
    env.update(
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        BENCH_REDIS_URL=redis_url,
        SECRET_KEY=env.get("SECRET_KEY", "bench-secret-key"),
        DEBUG="0",
        DB_CONN_MAX_AGE="600",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )

    rows, lateness = [], None
    for scenario in [s for s in args.only.split(",") if s]:
        if scenario not in SCENARIOS:
            raise SystemExit(f"unknown scenario {scenario!r}; choose from {SCENARIOS}")
        out = subprocess.run(
            [sys.executable, "-m", "bench.scenarios", scenario, "--jobs", str(args.jobs)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {row}", file=sys.stderr, flush=True)
        if "firings" in row:
            lateness = row
        else:
            rows.append(row)

    cpus = os.cpu_count()
    print(
        f"\nEnd-to-end no-op throughput, {args.jobs} jobs, 2 workers "
        f"({cpus} cores, Python {platform.python_version()}, Postgres + Redis on localhost)\n"
    )
    print("| system | jobs/s | total s | enqueue jobs/s |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['scenario']} | {row['per_second']:,.0f} | {row['seconds']:.2f} "
            f"| {row['enqueue_per_second']:,.0f} |"
        )
    if lateness:
        print(
            f"\nSchedule fire lateness (one runscheduler, {lateness['firings']} firings of 10 "
            f"interval schedules): p50 {lateness['p50_ms']} ms, p99 {lateness['p99_ms']} ms, "
            f"max {lateness['max_ms']} ms"
        )


if __name__ == "__main__":
    main()
