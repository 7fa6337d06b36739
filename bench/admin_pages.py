"""Admin console benchmark: page latency over a jobs table of a million rows.

    .venv/bin/python bench/admin_pages.py [--rows 1000000] [--reuse]

Uses its own Postgres database (BENCH_ADMIN_DATABASE_URL, default
``jobplatform_bench_admin`` on 127.0.0.1, created if missing) and Redis db 9. Loads N jobs
(one attempt row per finished job) and 24 h of per-minute queue buckets with server-side
SQL, then times the dashboard and job/queue admin pages with Django's test client as a
superuser. Pages over the p95 target get their slowest statement EXPLAIN ANALYZEd.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import django
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import ensure_database  # noqa: E402

DB_URL = os.environ.get(
    "BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jobplatform_bench_admin"
)
REDIS_URL = "redis://127.0.0.1:6379/9"
TARGET_P95_MS = 100.0
WARMUPS, REQUESTS = 2, 20

# Status mix by (i % 100): 85 completed, 5 failed, 3 cancelled, 4 waiting, 2 delayed, 1 active.
# created_at grows with i (rows land in the heap in creation order, as in production) unless
# shuffled, the worst case for index scans in created_at order (random heap reads).
JOBS_SQL = """
WITH q AS (SELECT array_agg(id ORDER BY id) AS ids FROM queues_queue),
g AS (
    SELECT i,
           now() - interval '7 days' * CASE WHEN %(shuffled)s THEN random()
               ELSE (%(rows)s - i + random()) / %(rows)s END AS created,
           (random() * 2000)::int AS wait_ms,
           (1 + random() * random() * 500)::int AS run_ms,
           CASE WHEN i %% 100 < 85 THEN 'completed' WHEN i %% 100 < 90 THEN 'failed'
                WHEN i %% 100 < 93 THEN 'cancelled' WHEN i %% 100 < 97 THEN 'waiting'
                WHEN i %% 100 < 99 THEN 'delayed' ELSE 'active' END AS status
    FROM generate_series(%(first)s, %(last)s) AS i
)
INSERT INTO queues_job (id, queue_id, name, payload, status, priority, attempts_made,
    max_attempts, backoff, run_at, error, created_at, started_at, finished_at, locked_until,
    worker)
SELECT gen_random_uuid(),
       q.ids[1 + g.i %% cardinality(q.ids)],
       CASE WHEN g.status = 'failed' THEN 'platform.fail' ELSE 'platform.echo' END,
       jsonb_build_object('to', 'user' || g.i || '@example.com', 'i', g.i),
       g.status,
       1 + (g.i * 7) %% 10,
       CASE WHEN g.status IN ('waiting', 'delayed') THEN 0 ELSE 1 END,
       CASE WHEN g.status = 'failed' THEN 1 ELSE 3 END,
       '{"type": "exponential", "delay": 2000}'::jsonb,
       CASE WHEN g.status = 'delayed' THEN now() + random() * interval '1 hour' END,
       CASE WHEN g.status = 'failed'
            THEN 'RuntimeError: platform.fail: simulated failure of job ' || g.i ELSE '' END,
       g.created,
       CASE WHEN g.status IN ('waiting', 'delayed') THEN NULL
            WHEN g.status = 'active' THEN now() - random() * interval '20 seconds'
            ELSE g.created + g.wait_ms * interval '1 millisecond' END,
       CASE WHEN g.status IN ('completed', 'failed', 'cancelled')
            THEN g.created + (g.wait_ms + g.run_ms) * interval '1 millisecond' END,
       CASE WHEN g.status = 'active' THEN now() + interval '30 seconds' END,
       CASE WHEN g.status IN ('waiting', 'delayed') THEN ''
            ELSE 'bench-host:' || (1000 + g.i %% 8) END
FROM q, g
"""

ATTEMPTS_SQL = """
INSERT INTO queues_jobattempt (job_id, number, worker, started_at, finished_at, duration_ms,
    outcome, error, traceback)
SELECT id, 1, worker, started_at, finished_at,
       (extract(epoch FROM finished_at - started_at) * 1000)::int, status, error,
       CASE WHEN status = 'failed' THEN 'Traceback (most recent call last):' || chr(10)
            || '  File "queues/jobs.py", line 33, in fail' || chr(10) || error ELSE '' END
FROM queues_job WHERE status IN ('completed', 'failed', 'cancelled')
"""

# One bucket per queue and minute of the last 24 h; the histogram peaks around 10-50 ms.
MINUTES_SQL = """
INSERT INTO queues_queueminute
    (queue_id, minute, completed, failed, retried, duration_ms_sum, histogram)
SELECT queue_id, minute, total - failed, failed, retried, total * 35, to_jsonb(hist)
FROM (
    SELECT q.id AS queue_id, m AS minute, h.hist, h.total,
           (h.total * 0.05)::int AS failed, (h.total * 0.01)::int AS retried
    FROM queues_queue q
    CROSS JOIN generate_series(date_trunc('minute', now()) - interval '1439 minutes',
                               date_trunc('minute', now()), interval '1 minute') AS m
    CROSS JOIN LATERAL (
        SELECT array_agg(n ORDER BY b) AS hist, sum(n)::int AS total
        FROM (SELECT b, ((ARRAY[0, 1, 3, 8, 14, 20, 18, 12, 8, 5, 3, 2, 1, 1, 0, 0])[b]
                         * (0.5 + random()) + 0 * q.id + 0 * extract(epoch FROM m))::int AS n
              FROM generate_series(1, 16) AS b) AS bins
    ) AS h
) AS s
"""


# One bucket per queue, handler and hour of the last 72 h (the handler metrics page).
HANDLER_HOURS_SQL = """
INSERT INTO queues_handlerhour
    (queue_id, name, hour, completed, failed, retried, duration_ms_sum, histogram)
SELECT q.id, h.name, m, 60000 - 3000, 3000, 600, 60000 * 35,
       '[0, 60, 180, 480, 840, 1200, 1080, 720, 480, 300, 180, 120, 60, 60, 0, 0]'::jsonb
FROM queues_queue q
CROSS JOIN (VALUES ('platform.echo'), ('platform.fail'), ('notifications.send_email'),
                   ('notifications.send_sms'), ('devices.restart')) AS h(name)
CROSS JOIN generate_series(date_trunc('hour', now()) - interval '71 hours',
                           date_trunc('hour', now()), interval '1 hour') AS m
"""


def setup_django() -> None:
    ensure_database(DB_URL)
    os.environ.update(
        DATABASE_URL=DB_URL,
        REDIS_URL=REDIS_URL,
        SECRET_KEY=os.environ.get("SECRET_KEY", "bench-admin-secret-key"),
        DEBUG="0",
        SECURE_SSL_REDIRECT="0",  # plain HTTP on localhost
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        ALLOWED_HOSTS="testserver,localhost",
        DJANGO_SETTINGS_MODULE="jobplatform.settings",
    )
    sys.path.insert(0, str(ROOT))
    django.setup()
    call_command("migrate", verbosity=0)


def timed(label: str, func, *args):
    start = time.perf_counter()
    result = func(*args)
    print(f"  {label}: {time.perf_counter() - start:.1f} s", flush=True)
    return result


def execute(sql: str, params=None, *, fetch: bool = False):
    """Run one statement: the first column of its first row if ``fetch``, else rowcount."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0] if fetch else cursor.rowcount


def load(rows: int, reuse: bool, shuffled: bool) -> None:
    existing = execute("SELECT count(*) FROM queues_job", fetch=True)
    if reuse and existing >= rows:
        print(f"Reusing {existing:,} jobs (--reuse).")
    else:
        print(f"Loading {rows:,} jobs ({'shuffled' if shuffled else 'in creation order'}) ...")
        start = time.perf_counter()
        timed("truncate", execute, "TRUNCATE queues_job CASCADE")
        execute("SET synchronous_commit = off")
        for first in range(1, rows + 1, 250_000):
            params = {"first": first, "last": min(first + 249_999, rows), "rows": rows}
            params["shuffled"] = shuffled
            timed(f"jobs {first:,}-{params['last']:,}", execute, JOBS_SQL, params)
        n = timed("attempts", execute, ATTEMPTS_SQL)
        print(f"  {n:,} attempt rows")
        connection.close()  # back to the default session settings
        timed("vacuum analyze", execute, "VACUUM (ANALYZE) queues_job, queues_jobattempt")
        print(f"Load time: {time.perf_counter() - start:.1f} s")
    execute("TRUNCATE queues_queueminute")
    n = timed("queue minutes (24 h)", execute, MINUTES_SQL)
    print(f"  {n:,} minute buckets")
    execute("ANALYZE queues_queueminute")
    execute("TRUNCATE queues_handlerhour")
    n = timed("handler hours (72 h)", execute, HANDLER_HOURS_SQL)
    print(f"  {n:,} handler-hour buckets")
    execute("ANALYZE queues_handlerhour")


def load_schedules(count: int = 50, runs: int = 20) -> None:
    """``count`` cron schedules (made by the service, with their beat rows), each with its
    last ``runs`` runs pointing at finished jobs: the schedule list's sparklines."""
    # Models load only after django.setup().
    from scheduling.models import ScheduledJob
    from scheduling.services import create_schedule

    ScheduledJob.objects.filter(name__startswith="bench-").delete()
    zones = ["UTC", "Asia/Shanghai", "Europe/Berlin", "America/New_York"]
    for i in range(count):
        create_schedule(
            name=f"bench-{i:03d}",
            handler="platform.echo",
            cron=f"*/{5 + i % 10} * * * *",
            timezone_name=zones[i % len(zones)],
        )
    n = execute(
        """
        INSERT INTO scheduling_schedulerun (schedule_id, due_at, fired_at, trigger, job_id, error)
        SELECT s.id, t, t, 'scheduled', j.id, ''
        FROM scheduling_scheduledjob s
        CROSS JOIN generate_series(1, %s) AS k
        CROSS JOIN LATERAL (SELECT date_trunc('minute', now()) - k * interval '5 minutes') AS d(t)
        CROSS JOIN LATERAL (
            SELECT id FROM queues_job
            WHERE status IN ('completed', 'failed') AND s.id > 0
            OFFSET (s.id * 31 + k * 7) %% 500 LIMIT 1
        ) AS j
        WHERE s.name LIKE 'bench-%%'
        """,
        [runs],
    )
    print(f"  {count} schedules, {n:,} runs")


def time_refresh_snapshots() -> None:
    # queues.metrics imports models: only after django.setup().
    from queues.metrics import refresh_snapshots

    runs = []
    for _ in range(3):
        start = time.perf_counter()
        refresh_snapshots()
        runs.append(f"{(time.perf_counter() - start) * 1000:.0f} ms")
    print(f"refresh_snapshots() x3 (runs every 5 s in the maintenance loop): {', '.join(runs)}")


def make_client():
    # User is a model: only after django.setup().
    from django.contrib.auth.models import User

    user = User.objects.filter(username="bench-admin").first()
    if user is None:
        user = User.objects.create_superuser("bench-admin", "bench@example.com", "bench-pass")
    client = Client()
    client.force_login(user)
    return client


def pages() -> list[tuple[str, str]]:
    # Models load only after django.setup().
    from queues.models import Job, Queue

    email = Queue.objects.get(name="email").pk
    failed_id = Job.objects.filter(status="failed").values_list("pk", flat=True)[0]
    prefix = str(failed_id)[:8]
    return [
        ("admin index", "/admin/"),
        ("dashboard", "/admin/queues/dashboard/"),
        ("dashboard JSON", "/admin/queues/dashboard/data/"),
        ("jobs: all", "/admin/queues/job/"),
        ("jobs: status=failed", "/admin/queues/job/?status__exact=failed"),
        ("jobs: queue=email", f"/admin/queues/job/?queue__id__exact={email}"),
        ("jobs: payload search", "/admin/queues/job/?q=to:user123457@example.com"),
        ("jobs: handler=platform.echo", "/admin/queues/job/?name=platform.echo"),
        ("jobs: q=status:failed queue:email", "/admin/queues/job/?q=status:failed+queue:email"),
        ("jobs: q=handler:platform.fail", "/admin/queues/job/?q=handler:platform.fail"),
        ("jobs: q=error:job 4242", "/admin/queues/job/?q=error:%22job+4242%22"),
        ("jobs: q=id:<prefix>", f"/admin/queues/job/?q=id:{prefix}"),
        ("jobs: q=i:123457", "/admin/queues/job/?q=i:123457"),
        ("job detail (failed)", f"/admin/queues/job/{failed_id}/change/"),
        ("job live JSON", f"/admin/queues/job/{failed_id}/live/"),
        ("new job form", "/admin/queues/job/add/"),
        ("queues", "/admin/queues/queue/"),
        ("handler metrics 72 h", "/admin/queues/dashboard/handlers/?window=72h"),
        ("schedules", "/admin/scheduling/scheduledjob/"),
        ("schedule form", "/admin/scheduling/scheduledjob/add/"),
        (
            "schedule preview JSON",
            "/admin/scheduling/scheduledjob/preview/?kind=cron&cron=*/5+9-17+*+*+1-5"
            "&timezone=Asia/Shanghai&viewer_tz=UTC",
        ),
    ]


def measure(client, url: str) -> dict:
    for _ in range(WARMUPS):
        response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"{url}: HTTP {response.status_code}")
    times = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - start) * 1000)
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    times.sort()
    return {
        "p50": statistics.median(times),
        "p95": times[math.ceil(0.95 * len(times)) - 1],
        "max": times[-1],
        "queries": captured.captured_queries,
    }


def explain_slowest(name: str, r: dict) -> None:
    queries = r["queries"]
    slowest = max(queries, key=lambda q: float(q["time"]))
    sql, sql_ms = slowest["sql"], sum(float(q["time"]) for q in queries) * 1000
    print(f"\n### {name}: slowest statement ({float(slowest['time']) * 1000:.0f} ms)\n")
    print(f"All {len(queries)} statements: {sql_ms:.0f} ms of a {r['p50']:.0f} ms p50 page.\n")
    print(f"```sql\n{sql}\n```\n")
    if not sql.lstrip().upper().startswith("SELECT"):
        print("(not a SELECT: not explained)")
        return
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    print(f"```\n{plan}\n```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep a big-enough jobs table")
    parser.add_argument("--shuffled", action="store_true", help="created_at not in heap order")
    args = parser.parse_args()

    setup_django()
    load(args.rows, args.reuse, args.shuffled)
    load_schedules()
    time_refresh_snapshots()
    client = make_client()
    results = []
    for name, url in pages():
        print(f"timing {name} ...", file=sys.stderr, flush=True)
        results.append((name, url, measure(client, url)))

    total = execute("SELECT count(*) FROM queues_job", fetch=True)
    print(f"\n{total:,} jobs; {REQUESTS} requests per page after {WARMUPS} warm-ups.\n")
    print("| page | p50 ms | p95 ms | max ms | queries |")
    print("|---|---:|---:|---:|---:|")
    for name, url, r in results:
        flag = " **slow**" if r["p95"] > TARGET_P95_MS else ""
        print(
            f"| {name} (`{url}`) | {r['p50']:.1f} | {r['p95']:.1f}{flag} | {r['max']:.1f} "
            f"| {len(r['queries'])} |"
        )
    slow = [(name, r) for name, _, r in results if r["p95"] > TARGET_P95_MS]
    if not slow:
        print(f"\nAll pages within the p95 target of {TARGET_P95_MS:.0f} ms.")
    for name, r in slow:
        explain_slowest(name, r)


if __name__ == "__main__":
    main()
