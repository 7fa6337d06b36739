"""Bulk retry of the dead-letter set: seconds and peak RSS of the process doing it.

    ./dev bench --only bulk --jobs 1000000
    python -m bench.bulk --jobs 1000000          (BENCH_DATABASE_URL, BENCH_REDIS_URL)

Writes N failed jobs server-side (INSERT ... SELECT generate_series: the Python process
never holds them), then times ``retry_jobs(dead_letters())`` as the admin's "select all"
and the API's retry-matching call it. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import django
from django.db import connection

# Time-ordered ids (as uuid7 ones are), from a counter: the keyset walks them in order.
INSERT_FAILED = """
INSERT INTO queues_job (
    id, queue_id, name, payload, status, priority, attempts_made, attempts_base,
    max_attempts, backoff, progress, error, created_at, finished_at, worker,
    stalled_count, has_dependants, webhook_url
)
SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, %s, 'platform.fail',
    '{}'::jsonb, 'failed', 5, 1, 0, 1, '{"type": "exponential", "delay": 1000}'::jsonb,
    0, 'RuntimeError: boom (attempts exhausted: 1 of 1)', now(), now(), '', 0, false, ''
FROM generate_series(1, %s) AS i
"""


def _max_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # kB on Linux


def run_bulk(jobs: int) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobplatform.settings")
    django.setup()
    # Models load only after django.setup().
    from queues.models import Job, JobStatus, Queue
    from queues.selectors import dead_letters
    from queues.services import retry_jobs

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE queues_jobattempt, queues_joblog, queues_jobdependency, queues_job CASCADE"
        )
        cursor.execute(INSERT_FAILED, [Queue.objects.get(name="default").pk, jobs])
        cursor.execute("VACUUM ANALYZE queues_job")
    rss_before = _max_rss_mb()
    t0 = time.perf_counter()
    retried = retry_jobs(dead_letters(), by="bench")
    seconds = time.perf_counter() - t0
    assert retried == jobs == Job.objects.filter(status=JobStatus.WAITING).count(), retried
    return {
        "scenario": "bulk",
        "jobs": jobs,
        "seconds": round(seconds, 1),
        "per_second": round(jobs / seconds),
        "rss_before_mb": rss_before,
        "rss_peak_mb": _max_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1_000_000)
    args = parser.parse_args()
    if "DATABASE_URL" not in os.environ:  # run directly, not through bench/run.py
        from bench.run import ensure_database

        url = os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jobplatform_bench"
        )
        ensure_database(url)
        os.environ.update(
            DATABASE_URL=url,
            REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
            SECRET_KEY=os.environ.get("SECRET_KEY", "bench-secret-key"),
            LOG_LEVEL="WARNING",
            DJANGO_SETTINGS_MODULE="jobplatform.settings",
        )
        django.setup()
        from django.core.management import call_command

        call_command("migrate", "--no-input", verbosity=0)
    print(json.dumps(run_bulk(args.jobs)), flush=True)


if __name__ == "__main__":
    main()
