"""Fixed offered rate: what a steady stream of no-op jobs costs, and how long each waits.

    python -m bench.rate platform|procrastinate --rate R --seconds S

One driver process enqueues R jobs per second for S seconds (every 10 ms, the jobs then
due: one ``enqueue``/``defer`` when one is due, one bulk call when more are), into warm
workers: 2 worker processes each, and for jobplatform its ``runscheduler`` (promotion,
stall sweeps, retention), which it needs in production. Prints one JSON line with:

- CPU used during the timed window, by the system's own processes (workers, scheduler),
  by Postgres and by Redis, as a share of one core (100 % = one core busy all the time);
- pickup latency, enqueue to handler start, p50 / p99 / max (from the system's own
  timestamps: jobplatform's ``created_at`` and ``started_at``; procrastinate's
  ``deferred`` and ``started`` events);
- for jobplatform, the job table's row count sampled every 10 s (retention keeps the
  1,000 newest completed jobs of the queue).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench.scenarios import start, stop, unfinished, wait_for
from queues.engine.proctree import descendants

TICK = 0.01
TICK_HZ = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    return [pid, *descendants(pid)]


def _cpu(fields: list[str]) -> float:
    # Its own time and that of its children it has reaped: django-q2 replaces its worker
    # processes, and Postgres backends come and go with connections; their time must
    # not vanish from the sum when they exit.
    return sum(int(f) for f in fields[11:15]) / TICK_HZ


def _cpu_of(pids: list[int]) -> float:
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += _cpu(fields)
    return total


def _cpu_named(prefix: str) -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat[stat.index("(") + 1 : stat.rindex(")")].startswith(prefix):
            total += _cpu(stat.rsplit(")", 1)[1].split())
    return total


class Meter:
    """CPU seconds of the measured process trees, Postgres and Redis, over a window."""

    def __init__(self, roots: dict[str, int]):
        self.roots = roots

    def read(self) -> dict[str, float]:
        out = {name: _cpu_of(_tree(pid)) for name, pid in self.roots.items()}
        out["postgres"] = _cpu_named("postgres")
        out["redis"] = _cpu_named("redis-server")
        return out


def offer(rate: float, seconds: float, one, many, sample=None) -> int:
    """Enqueue ``rate`` jobs per second for ``seconds``; returns how many were sent."""
    sent = 0
    t0 = time.perf_counter()
    next_sample = t0
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            break
        due = int(rate * elapsed) - sent
        if due == 1:
            one(sent)
        elif due > 1:
            many(sent, due)
        sent += max(due, 0)
        if sample is not None and time.perf_counter() >= next_sample:
            sample(elapsed)
            next_sample += 10
        time.sleep(max(0.0, TICK - (time.perf_counter() - t0 - elapsed)))
    return sent


def _percentiles(values: list[float]) -> dict:
    values = sorted(values)
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "p50_ms": round(values[len(values) // 2], 1),
        "p99_ms": round(values[max(int(len(values) * 0.99) - 1, 0)], 1),
        "max_ms": round(values[-1], 1),
    }


def _share(before: dict, after: dict, seconds: float) -> dict:
    return {k: round((after[k] - before[k]) * 100 / seconds, 1) for k in after}


def run_platform(rate: float, seconds: float) -> dict:
    from bench.scenarios import _platform_setup

    _platform_setup()
    # Models load only after _platform_setup() has run django.setup().
    from django.db import connection

    from queues import enqueue, enqueue_many
    from queues.models import Job, Worker

    env = os.environ.copy()
    worker = start([sys.executable, "manage.py", "runworker", "--workers", "2"], env)
    scheduler = start([sys.executable, "manage.py", "runscheduler"], env)
    rows: list[tuple[float, int]] = []
    try:
        wait_for(lambda: Worker.objects.count() == 1, 60, "the worker to register")
        warm = enqueue("platform.echo", {})
        wait_for(lambda: Job.objects.filter(pk=warm.pk, status="completed").exists(), 60, "warm-up")
        time.sleep(2)  # the scheduler's first pass over an empty ledger
        meter = Meter({"workers": worker.pid, "scheduler": scheduler.pid})

        def sample(elapsed: float) -> None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM queues_job")
                rows.append((round(elapsed), cursor.fetchone()[0]))

        cpu0 = meter.read()
        t0 = time.perf_counter()
        sent = offer(
            rate,
            seconds,
            lambda i: enqueue("platform.echo", {"i": i}),
            lambda i, n: enqueue_many(
                [{"name": "platform.echo", "payload": {"i": i + k}} for k in range(n)]
            ),
            sample,
        )
        window = time.perf_counter() - t0
        cpu1 = meter.read()
        t_end = time.perf_counter()
        wait_for(lambda: not unfinished(), 120, "the last jobs")
        drain_s = time.perf_counter() - t_end
        sample(time.perf_counter() - t0)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT EXTRACT(EPOCH FROM started_at - created_at) * 1000 FROM queues_job "
                "WHERE status = 'completed' AND started_at IS NOT NULL"
            )
            latencies = [float(r[0]) for r in cursor.fetchall()]
    finally:
        stop(scheduler)
        stop(worker)
    return {
        "scenario": "rate-platform",
        "rate": rate,
        "seconds": seconds,
        "sent": sent,
        "achieved_per_s": round(sent / window, 1),
        "after_s": round(drain_s, 2),
        "cpu_pct": _share(cpu0, cpu1, window),
        "latency_sampled": len(latencies),
        **_percentiles(latencies),
        "job_rows": rows,
    }


def run_procrastinate(rate: float, seconds: float) -> dict:
    import psycopg

    from bench import procrastinate_peer as peer

    peer._fresh_schema()
    env = os.environ.copy()
    workers = [start(peer.worker_command(), env) for _ in range(2)]
    try:
        with peer.app.open(), psycopg.connect(peer.database_url(), autocommit=True) as conn:
            peer.noop.defer(i=-1)
            wait_for(lambda: not peer._unfinished(conn), 60, "warm-up")
            meter = Meter({f"worker{i}": w.pid for i, w in enumerate(workers)})
            cpu0 = meter.read()
            t0 = time.perf_counter()
            sent = offer(
                rate,
                seconds,
                lambda i: peer.noop.defer(i=i),
                lambda i, n: peer.noop.batch_defer(*({"i": i + k} for k in range(n))),
            )
            window = time.perf_counter() - t0
            cpu1 = meter.read()
            t_end = time.perf_counter()
            wait_for(lambda: not peer._unfinished(conn), 120, "the last jobs")
            drain_s = time.perf_counter() - t_end
            latencies = [
                float(r[0])
                for r in conn.execute(
                    "SELECT EXTRACT(EPOCH FROM s.at - d.at) * 1000 FROM procrastinate_events d "
                    "JOIN procrastinate_events s ON s.job_id = d.job_id AND s.type = 'started' "
                    "WHERE d.type = 'deferred'"
                ).fetchall()
            ]
    finally:
        for w in workers:
            stop(w)
    cpu = _share(cpu0, cpu1, window)
    cpu["workers"] = round(sum(v for k, v in cpu.items() if k.startswith("worker")), 1)
    for k in [k for k in cpu if k.startswith("worker") and k != "workers"]:
        del cpu[k]
    return {
        "scenario": "rate-procrastinate",
        "rate": rate,
        "seconds": seconds,
        "sent": sent,
        "achieved_per_s": round(sent / window, 1),
        "after_s": round(drain_s, 2),
        "cpu_pct": cpu,
        "latency_sampled": len(latencies),
        **_percentiles(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("system", choices=["platform", "procrastinate"])
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    run = run_platform if args.system == "platform" else run_procrastinate
    print(json.dumps(run(args.rate, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
