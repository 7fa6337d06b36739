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

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = [
    "platform",
    "q2",
    "q2-nosave",
    "celery",
    "enqueue",
    "pickup",
    "schedule-lateness",
    "rss",
    "scaling",
    "bulk",  # bench/bulk.py: ./dev bench --only bulk --jobs 1000000
]


def ensure_database(url: str) -> None:
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
    redis.Redis.from_url(redis_url).flushdb()
    env = os.environ.copy()
    env.update(
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        BENCH_REDIS_URL=redis_url,
        SECRET_KEY=env.get("SECRET_KEY", "bench-secret-key"),
        DEBUG="0",
        SECURE_SSL_REDIRECT="0",  # plain HTTP on localhost
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
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

    results: dict[str, dict] = {}
    for scenario in [s for s in args.only.split(",") if s]:
        if scenario not in SCENARIOS:
            raise SystemExit(f"unknown scenario {scenario!r}; choose from {SCENARIOS}")
        out = subprocess.run(
            [sys.executable, "-m", "bench.bulk" if scenario == "bulk" else "bench.scenarios"]
            + ([] if scenario == "bulk" else [scenario])
            + ["--jobs", str(args.jobs)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        results[scenario] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {results[scenario]}", file=sys.stderr, flush=True)
    report(results, args.jobs)


def report(results: dict, jobs: int) -> None:
    print(
        f"\njobplatform benchmark — {os.cpu_count()} cores, Python {platform.python_version()}, "
        "Postgres + Redis on localhost, one run\n"
    )
    throughput = [results[k] for k in ("platform", "q2", "q2-nosave", "celery") if k in results]
    if throughput:
        print(f"End-to-end no-op throughput, {jobs} jobs, 2 workers:\n")
        print("| system | jobs/s | total s |")
        print("|---|---:|---:|")
        for row in throughput:
            print(f"| {row['scenario']} | {row['per_second']:,.0f} | {row['seconds']:.2f} |")
        if "platform" in results and "celery" in results:
            ratio = results["platform"]["per_second"] / results["celery"]["per_second"]
            print(f"\nplatform / Celery: {ratio:.1f}x")
    if "enqueue" in results:
        e = results["enqueue"]
        print("\nEnqueue rate (no workers running):\n")
        print("| call | jobs/s |")
        print("|---|---:|")
        print(f"| platform `enqueue` (one job, one transaction) | {e['platform_single']:,} |")
        print(f"| platform `enqueue_many` (COPY) | {e['platform_bulk']:,} |")
        print(f"| django-q2 `async_task` (shared broker) | {e['q2_single']:,} |")
        print(f"| Celery `delay` | {e['celery_single']:,} |")
    if "pickup" in results:
        p = results["pickup"]
        print(
            f"\nIdle pickup latency (enqueue -> handler start, {p['samples']} jobs): "
            f"p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms"
        )
    if "schedule-lateness" in results:
        lat = results["schedule-lateness"]
        print(
            f"\nSchedule fire lateness ({lat['firings']} firings): p50 {lat['p50_ms']} ms, "
            f"p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms"
        )
    if "scaling" in results:
        print(
            f"\nScaling, {results['scaling']['jobs']} jobs, 2 worker processes per runworker "
            "(share of the machine's CPU during the timed run):\n"
        )
        print("| runworkers | jobs/s | machine busy | Postgres | Redis | Python |")
        print("|---:|---:|---:|---:|---:|---:|")
        for row in results["scaling"]["rows"]:
            cpu = row["cpu_pct"]
            print(
                f"| {row['runworkers']} | {row['per_second']:,.0f} | {cpu['busy']} % | "
                f"{cpu['postgres']} % | {cpu['redis']} % | {cpu['python']} % |"
            )
    if "rss" in results:
        r = results["rss"]
        print(
            f"\nWorker RSS (runworker + its processes): {r['rss_1k_mb']} MB after 1,000 jobs, "
            f"{r['rss_all_mb']} MB after {r['jobs']:,} ({r['growth_pct']:+.1f} %)"
        )
    if "bulk" in results:
        b = results["bulk"]
        print(
            f"\nBulk retry of {b['jobs']:,} failed jobs (retry_jobs over dead_letters()): "
            f"{b['seconds']} s, peak RSS {b['rss_peak_mb']} MB ({b['rss_before_mb']} MB before)"
        )


if __name__ == "__main__":
    main()
