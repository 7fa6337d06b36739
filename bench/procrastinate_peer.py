"""procrastinate as a benchmark peer: the Postgres-backed queue a Django user might pick.

    python -m bench.procrastinate_peer drain|enqueue --jobs N

Its own database (BENCH_DATABASE_URL with ``_procrastinate`` appended), its schema applied
fresh for each run. Jobs keep procrastinate's defaults: a finished job's row stays in
``procrastinate_jobs`` with its status, and each state change is an event row. The drain
runs 2 ``procrastinate worker`` processes (concurrency 1 each, like jobplatform's 2 worker
processes). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import psycopg
from procrastinate import App, PsycopgConnector

from bench.run import drop_database, ensure_database
from bench.scenarios import start, stop, wait_for


def database_url() -> str:
    base = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jobplatform_bench"
    )
    return base + "_procrastinate"


app = App(connector=PsycopgConnector(conninfo=database_url()))


@app.task(name="noop")
def noop(**kwargs) -> None:
    return None


def _fresh_schema() -> None:
    drop_database(database_url())
    ensure_database(database_url())
    with app.open():
        app.schema_manager.apply_schema()


def _defer(count: int) -> None:
    for start_at in range(0, count, 1000):
        noop.batch_defer(*({"i": i} for i in range(start_at, min(start_at + 1000, count))))


def _count(conn, status: str) -> int:
    return conn.execute(
        "SELECT count(*) FROM procrastinate_jobs WHERE status = %s", [status]
    ).fetchone()[0]


def _unfinished(conn) -> bool:
    # An index probe (procrastinate's partial index of todo and doing jobs), not a
    # count(*): the driver's polling must not take CPU from the workers it measures.
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing'))"
    ).fetchone()[0]


def worker_command() -> list[str]:
    """One ``procrastinate worker`` process (concurrency 1, like a jobplatform worker
    process, unless BENCH_PROCRASTINATE_CONCURRENCY says otherwise)."""
    return [
        sys.executable,
        "-m",
        "procrastinate",
        "--app=bench.procrastinate_peer.app",
        "worker",
        "--concurrency",
        os.environ.get("BENCH_PROCRASTINATE_CONCURRENCY", "1"),
    ]


def run_drain(jobs: int) -> dict:
    _fresh_schema()
    with app.open():
        _defer(jobs)
    env = os.environ.copy()
    cmd = worker_command()
    with psycopg.connect(database_url(), autocommit=True) as conn:
        t0 = time.perf_counter()
        workers = [start(cmd, env) for _ in range(2)]
        try:
            wait_for(lambda: not _unfinished(conn), 900, "all procrastinate jobs")
            t1 = time.perf_counter()
            assert _count(conn, "succeeded") == jobs
        finally:
            for worker in workers:
                stop(worker)
        stats = conn.execute(
            "SELECT n_tup_upd, n_tup_hot_upd, n_dead_tup FROM pg_stat_user_tables "
            "WHERE relname = 'procrastinate_jobs'"
        ).fetchone()
    return {
        "scenario": "procrastinate-drain",
        "jobs": jobs,
        # Includes the workers' start (about 0.5 s): a Python peer cannot be warmed up
        # without running a job first.
        "seconds": round(t1 - t0, 3),
        "per_second": round(jobs / (t1 - t0), 1),
        "updates": stats[0],
        "hot_updates": stats[1],
    }


def run_enqueue(jobs: int) -> dict:
    _fresh_schema()
    single = min(jobs, 3000)
    with app.open():
        t0 = time.perf_counter()
        for i in range(single):
            noop.defer(i=i)
        single_rate = single / (time.perf_counter() - t0)
        bulk = jobs * 4
        t0 = time.perf_counter()
        _defer(bulk)
        bulk_rate = bulk / (time.perf_counter() - t0)
    return {
        "scenario": "procrastinate-enqueue",
        "single": round(single_rate),
        "bulk": round(bulk_rate),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["drain", "enqueue"])
    parser.add_argument("--jobs", type=int, default=10000)
    args = parser.parse_args()
    out = run_drain(args.jobs) if args.mode == "drain" else run_enqueue(args.jobs)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
