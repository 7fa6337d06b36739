"""jobplatform benchmark: end-to-end no-op throughput with 2 workers, peers side by side.

    ./dev bench [--jobs N] [--only platform,celery,...]

Runs on Postgres + Redis: BENCH_DATABASE_URL (default a `jobplatform_bench` database on
127.0.0.1) and BENCH_REDIS_URL (default redis://127.0.0.1:6379/14, flushed).
"""

from __future__ import annotations

import argparse
import contextlib
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
    "drain",
    "bullmq",
    "procrastinate",
    "io",  # --io-jobs jobs that each wait --io-wait-ms on a local HTTP server
    "trickle",  # bench/rate.py: 100 jobs/s for 60 s, jobplatform and procrastinate
    "load",  # bench/rate.py: --load-rate jobs/s for 60 s (about 60 % of capacity)
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
    "drain-backlog",  # 10,000 jobs drained behind --backlog waiting ones
    "held-xmin",  # bench/xmin.py: the drain through a 120 s idle-in-transaction session
    "retention",  # bench/rate.py: 1,000 jobs/s for 10 minutes, the job table's size
]
NODE = ROOT / "bench" / "node"
IO_PORT = 18731
IO_URL = f"http://127.0.0.1:{IO_PORT}/wait"


def command(
    scenario: str, jobs: int, backlog: int, io_jobs: int = 2000, load_rate: float = 2400
) -> list[list[str]]:
    """The processes one scenario runs, each printing one JSON line."""
    py = [sys.executable, "-m"]
    if scenario == "trickle":
        return [
            py + ["bench.rate", system, "--rate", "100", "--seconds", "60"]
            for system in ("platform", "procrastinate")
        ]
    if scenario == "load":
        return [py + ["bench.rate", "platform", "--rate", str(load_rate), "--seconds", "60"]]
    if scenario == "retention":
        return [py + ["bench.rate", "platform", "--rate", "1000", "--seconds", "600"]]
    if scenario == "io":
        script = str(NODE / "bullmq.mjs")
        node = ["node", script, "io", "--jobs", str(io_jobs), "--url", IO_URL]
        return [
            py + ["bench.scenarios", "io", "--jobs", str(io_jobs)],
            [*node, "--concurrency", "10"],
            [*node, "--concurrency", "20"],
        ]
    if scenario == "bulk":
        return [py + ["bench.bulk", "--jobs", str(jobs)]]
    if scenario == "procrastinate":
        return [
            py + ["bench.procrastinate_peer", mode, "--jobs", str(jobs)]
            for mode in ("drain", "enqueue")
        ]
    if scenario == "bullmq":
        script = str(NODE / "bullmq.mjs")
        return [
            ["node", script, "drain", "--jobs", str(jobs), "--concurrency", "10"],
            ["node", script, "drain", "--jobs", str(jobs), "--concurrency", "1"],
            ["node", script, "enqueue", "--jobs", str(jobs)],
        ]
    if scenario == "held-xmin":
        return [py + ["bench.xmin"]]
    if scenario == "drain-backlog":
        return [py + ["bench.scenarios", scenario, "--jobs", str(backlog)]]
    return [py + ["bench.scenarios", scenario, "--jobs", str(jobs)]]


def _maintenance_connection(url: str) -> psycopg.Connection:
    parsed = urlparse(url)
    return psycopg.connect(
        host=parsed.hostname,
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        dbname="postgres",
        autocommit=True,
    )


def ensure_database(url: str) -> None:
    name = urlparse(url).path.lstrip("/")
    with _maintenance_connection(url) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    name = urlparse(url).path.lstrip("/")
    with _maintenance_connection(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def _slow_server(wait_ms: float):
    """The local HTTP server the io scenario's jobs wait on, for every system alike."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.slow_http",
            "--port",
            str(IO_PORT),
            "--wait-ms",
            str(wait_ms),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if server.stdout.readline().strip() != "ready":
            raise SystemExit("the io scenario's HTTP server did not start")
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--only", default=",".join(SCENARIOS[:-3]))
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--io-jobs", type=int, default=2000)
    parser.add_argument("--io-wait-ms", type=float, default=50)
    parser.add_argument("--load-rate", type=float, default=2400)
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
        if scenario in ("bullmq", "io") and not (NODE / "node_modules").exists():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE, check=True)
        parts = []
        with _slow_server(args.io_wait_ms) if scenario == "io" else contextlib.nullcontext():
            for cmd in command(scenario, args.jobs, args.backlog, args.io_jobs, args.load_rate):
                out = subprocess.run(
                    cmd,
                    cwd=ROOT,
                    env={**env, "BENCH_IO_URL": IO_URL},
                    check=True,
                    capture_output=True,
                    text=True,
                )
                parts.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(f"  {parts[-1]}", file=sys.stderr, flush=True)
        results[scenario] = parts[0] if len(parts) == 1 else parts
    report(results, args.jobs)


def report(results: dict, jobs: int) -> None:
    print(
        f"\njobplatform benchmark — {os.cpu_count()} cores, Python {platform.python_version()}, "
        "Postgres + Redis on localhost, one run\n"
    )
    drains = []
    if "drain" in results:
        drains.append(("jobplatform", "2 worker processes", results["drain"]))
    for row in results.get("bullmq", [])[:2]:
        drains.append(("BullMQ 5", f"1 Node process, concurrency {row['concurrency']}", row))
    if "procrastinate" in results:
        drains.append(("procrastinate 3", "2 worker processes", results["procrastinate"][0]))
    if drains:
        base = next((r for _, how, r in drains if how.endswith("concurrency 10")), None)
        print(f"Pre-enqueued drain of {jobs:,} no-op jobs (warm workers, timed to the last one):\n")
        print("| system | workers | jobs/s | s | / BullMQ c10 |")
        print("|---|---|---:|---:|---:|")
        for system, how, row in drains:
            ratio = f"{row['per_second'] / base['per_second']:.2f}x" if base else "-"
            print(
                f"| {system} | {how} | {row['per_second']:,.0f} | {row['seconds']:.2f} | {ratio} |"
            )
        if "drain" in results:
            d = results["drain"]
            print(
                f"\njobplatform job-table updates during the drain: {d['updates']:,}, "
                f"{d['hot_pct']} % HOT"
            )
    if "io" in results:
        mine, *peers = results["io"]
        print(
            f"\nI/O-bound drain: {mine['jobs']:,} jobs that each GET a local server answering "
            "after a fixed wait:\n"
        )
        print("| system | workers | in flight | jobs/s | s | / BullMQ c10 |")
        print("|---|---|---:|---:|---:|---:|")
        base = peers[0]["per_second"]
        rows = [
            (
                "jobplatform (async handler)",
                f"2 worker processes, {mine['slots_per_process']} each",
                2 * mine["slots_per_process"],
                mine,
            ),
            *[
                ("BullMQ 5", f"1 Node process, concurrency {p['concurrency']}", p["concurrency"], p)
                for p in peers
            ],
        ]
        for system, how, slots, row in rows:
            print(
                f"| {system} | {how} | {slots} | {row['per_second']:,.0f} | "
                f"{row['seconds']:.2f} | {row['per_second'] / base:.2f}x |"
            )
        print(
            f"\njobplatform workers' RSS: {mine['rss_mb']} MB (runworker and its processes), "
            f"{mine['rss_growth_per_slot_kb']} kB more per concurrent slot than idle"
        )
    if {"trickle", "load", "retention"} & results.keys():
        print(
            "\nFixed offered rate (one driver enqueueing every 10 ms; CPU as a share of one "
            "core, during the window; pickup = enqueue to handler start):\n"
        )
        print(
            "| system | jobs/s offered | workers | scheduler | Postgres | Redis | total | "
            "pickup p50 | p99 | max |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        rows = [*results.get("trickle", []), results.get("load"), results.get("retention")]
        for row in [r for r in rows if r]:
            cpu = row["cpu_pct"]
            system = "jobplatform" if row["scenario"] == "rate-platform" else "procrastinate 3"
            print(
                f"| {system} | {row['rate']:,.0f} for {row['seconds']:g} s | {cpu['workers']} % | "
                f"{cpu.get('scheduler', '-')} % | {cpu['postgres']} % | {cpu['redis']} % | "
                f"{sum(cpu.values()):.1f} % | {row['p50_ms']} ms | {row['p99_ms']} ms | "
                f"{row['max_ms']} ms |"
            )
        if "retention" in results:
            sizes = [n for _, n in results["retention"]["job_rows"]]
            print(
                f"\nJob table during the retention run (1,000 newest completed kept): at most "
                f"{max(sizes):,} rows, {sizes[-1]:,} at the end (sampled every 10 s)"
            )
    if "drain-backlog" in results:
        b = results["drain-backlog"]
        print(
            f"\nDrain of {b['jobs']:,} jobs behind {b['backlog']:,} waiting: "
            f"{b['per_second']:,.0f} jobs/s"
            + (
                f" ({b['per_second'] * 100 / results['drain']['per_second']:.0f} % of the "
                "drain above)"
                if "drain" in results
                else ""
            )
        )
    if "held-xmin" in results:
        x = results["held-xmin"]
        print(
            f"\nDrain through a held xmin ({x['hold_s']:g} s idle in transaction, "
            f"{x['backlog']:,} jobs backlog): {x['before_per_s']:,} jobs/s before, "
            f"{x['hold_per_s']:,} during ({x['hold_cost_pct']:+.1f} % cost), "
            f"{x['after_per_s']:,} after; dead job rows: {x['dead_before_max']:,} at most "
            f"before, {x['dead_hold_max']:,} during, back to that level "
            + (
                f"{x['dead_back_after_s']} s after"
                if x["dead_back_after_s"] is not None
                else "not within the run"
            )
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
    if {"enqueue", "bullmq", "procrastinate"} & results.keys():
        print("\nEnqueue rate (no workers running):\n")
        print("| call | jobs/s |")
        print("|---|---:|")
    if "enqueue" in results:
        e = results["enqueue"]
        print(f"| platform `enqueue` (one job, one transaction) | {e['platform_single']:,} |")
        print(
            "| platform `enqueue(durable=False)` (commit without waiting for its flush) | "
            f"{e['platform_group_commit']:,} |"
        )
        print(
            f"| platform `enqueue_many` (COPY), {e['platform_bulk_call_rows']:,} rows in one call "
            f"| {e['platform_bulk_call']:,} |"
        )
        print(f"| platform `enqueue_many` (COPY), 5,000 rows per call | {e['platform_bulk']:,} |")
        print(f"| django-q2 `async_task` (shared broker) | {e['q2_single']:,} |")
        print(f"| Celery `delay` | {e['celery_single']:,} |")
    if "bullmq" in results:
        b = results["bullmq"][2]
        print(f"| BullMQ awaited `add` | {b['single']:,} |")
        print(f"| BullMQ `addBulk` (1,000 per call) | {b['bulk']:,} |")
    if "procrastinate" in results:
        p = results["procrastinate"][1]
        print(f"| procrastinate `defer` | {p['single']:,} |")
        print(f"| procrastinate `batch_defer` (1,000 per call) | {p['bulk']:,} |")
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
