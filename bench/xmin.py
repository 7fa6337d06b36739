"""Drain through a held transaction horizon: the classic Postgres queue-bloat trigger.

    python -m bench.xmin [--backlog 1600000] [--hold 120] [--before 60] [--after 120]

A backlog of no-op jobs waits in a paused queue; 2 warm worker processes and a scheduler
(retention: the default queue keeps 1,000 completed jobs) run. The queue resumes; after
``--before`` seconds a session opens a REPEATABLE READ transaction, takes a snapshot and
sits idle in it for ``--hold`` seconds (holding back the xmin horizon: no dead row newer
than it can be vacuumed); then it ends, and the drain goes on for ``--after`` seconds.
Every 5 s it samples jobs done (job-table updates / 2: a claim and a finalize per job),
and dead and live rows of the job tables. Prints one JSON line; the summary compares the
drain rate during the hold with the rate before it, and says when dead rows came back
to their level before the hold.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import psycopg

from bench.scenarios import _platform_setup, start, stop, wait_for

SAMPLE = 5.0


def _stats(conn) -> dict:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = conn.execute(
        "SELECT relname, n_tup_upd, n_dead_tup, n_live_tup FROM pg_stat_user_tables "
        "WHERE relname IN ('queues_job', 'queues_jobattempt')"
    ).fetchall()
    return {name: {"upd": upd, "dead": dead, "live": live} for name, upd, dead, live in rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backlog", type=int, default=1_600_000)
    parser.add_argument("--before", type=float, default=60)
    parser.add_argument("--hold", type=float, default=120)
    parser.add_argument("--after", type=float, default=120)
    parser.add_argument("--jobs", type=int, default=0)  # ./dev bench passes it; unused
    args = parser.parse_args()
    _platform_setup()
    # Models load only after _platform_setup() has run django.setup().
    from django.db import connection

    from queues import enqueue, enqueue_many
    from queues.models import Job, Queue, Worker
    from queues.services.queues import pause_queue, resume_queue

    Queue.objects.filter(name="default").update(keep_completed_count=1000)
    env = os.environ.copy()
    worker = start([sys.executable, "manage.py", "runworker", "--workers", "2"], env)
    scheduler = start([sys.executable, "manage.py", "runscheduler"], env)
    dsn = connection.get_connection_params()
    conninfo = psycopg.conninfo.make_conninfo(
        host=dsn.get("host"), port=dsn.get("port"), user=dsn.get("user"), dbname=dsn["dbname"]
    )
    try:
        wait_for(lambda: Worker.objects.count() == 1, 60, "the worker to register")
        warm = enqueue("platform.echo", {})
        wait_for(lambda: Job.objects.filter(pk=warm.pk, status="completed").exists(), 60, "warm")
        pause_queue("default")
        for start_at in range(0, args.backlog, 10_000):
            enqueue_many(
                [
                    {"name": "platform.echo", "payload": {"i": i}}
                    for i in range(start_at, min(start_at + 10_000, args.backlog))
                ]
            )
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE queues_job")
        stats = psycopg.connect(conninfo, autocommit=True)
        holder = psycopg.connect(conninfo)
        samples = []
        t0 = time.monotonic()
        resume_queue("default")
        phase, held_to = "before", None
        last = _stats(stats)
        while True:
            time.sleep(SAMPLE)
            now = time.monotonic() - t0
            if phase == "before" and now >= args.before:
                holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                holder.execute("SELECT count(*) FROM queues_queue")  # takes the snapshot
                phase = "hold"
            elif phase == "hold" and now >= args.before + args.hold:
                holder.rollback()
                phase, held_to = "after", now
            elif phase == "after" and now >= args.before + args.hold + args.after:
                break
            current = _stats(stats)
            done = (current["queues_job"]["upd"] - last["queues_job"]["upd"]) / 2
            samples.append(
                {
                    "t": round(now, 1),
                    "phase": phase,
                    "jobs_per_s": round(done / SAMPLE),
                    "job_dead": current["queues_job"]["dead"],
                    "job_live": current["queues_job"]["live"],
                    "attempt_dead": current["queues_jobattempt"]["dead"],
                }
            )
            print(json.dumps(samples[-1]), file=sys.stderr, flush=True)
            last = current
        holder.close()
        stats.close()
    finally:
        stop(scheduler)
        stop(worker)

    def rate(name: str) -> float:
        # The first sample of a phase straddles its start.
        values = [s["jobs_per_s"] for s in samples if s["phase"] == name][1:]
        return sum(values) / max(len(values), 1)

    baseline_dead = max(s["job_dead"] for s in samples if s["phase"] == "before")
    back = next(
        (s["t"] for s in samples if s["phase"] == "after" and s["job_dead"] <= baseline_dead),
        None,
    )
    print(
        json.dumps(
            {
                "scenario": "held-xmin",
                "backlog": args.backlog,
                "hold_s": args.hold,
                "before_per_s": round(rate("before")),
                "hold_per_s": round(rate("hold")),
                "after_per_s": round(rate("after")),
                "hold_cost_pct": round(100 - rate("hold") * 100 / max(rate("before"), 1), 1),
                "dead_before_max": baseline_dead,
                "dead_hold_max": max(s["job_dead"] for s in samples if s["phase"] == "hold"),
                "dead_back_after_s": None if back is None else round(back - held_to, 1),
                "samples": samples,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
