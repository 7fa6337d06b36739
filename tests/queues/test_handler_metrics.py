"""Per-handler metrics: finished attempts land in HandlerHour buckets (through the real
finalize → record_outcomes → flush path), the page sums them per handler over 1, 24 and
72 hours, and pruning keeps 72 hours. Real Postgres; every instant is fixed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from queues import enqueue, enqueue_many, metrics
from queues.engine.claim import ClaimedJob
from queues.engine.outcomes import Outcome
from queues.engine.runner import drain
from queues.handler_metrics import handler_metrics
from queues.metrics import DURATION_BINS_MS, duration_bin
from queues.models import (
    AttemptOutcome,
    HandlerHour,
    HandlerStats,
    Job,
    JobStatus,
    Queue,
    QueueMinute,
)
from tests.helpers import freeze_clock

pytestmark = pytest.mark.django_db

URL = "/admin/queues/dashboard/handlers/"
NOW = datetime(2026, 12, 4, 12, 30, tzinfo=UTC)
BINS = len(DURATION_BINS_MS) + 1
STATUS = {
    "completed": (JobStatus.COMPLETED, AttemptOutcome.COMPLETED),
    "failed": (JobStatus.FAILED, AttemptOutcome.FAILED),
    "retried": (JobStatus.DELAYED, AttemptOutcome.FAILED),
}


def hist(*attempts: tuple[int, int]) -> list[int]:
    """A histogram of (ms, n) pairs: hist((8, 2)) holds two attempts in the ≤10 ms bin."""
    counts = [0] * BINS
    for ms, n in attempts:
        counts[duration_bin(ms)] += n
    return counts


def record(name: str, finished_at: datetime, ms: int, status: str = "completed", n: int = 1):
    """``n`` finished attempts of ``name`` as finalize hands them to record_outcomes (one
    real enqueued job stands for all of them: the metrics read its queue and name)."""
    job = ClaimedJob.from_job(enqueue(name, {}), attempt=1)
    next_status, attempt_outcome = STATUS[status]
    started_at = finished_at - timedelta(milliseconds=ms)
    metrics.record_outcomes(
        [
            Outcome(
                job=job,
                status=next_status,
                attempt_outcome=attempt_outcome,
                started_at=started_at,
                finished_at=finished_at,
            )
            for _ in range(n)
        ]
    )


def bucket(name: str, hour: datetime) -> dict:
    return HandlerHour.objects.values(
        "completed", "failed", "retried", "duration_ms_sum", "histogram"
    ).get(queue__name="default", name=name, hour=hour)


def counts(*, histogram: list[int], **fields: int) -> dict:
    return {
        "completed": 0, "failed": 0, "retried": 0, "duration_ms_sum": 0,
        **fields, "histogram": histogram,
    }  # fmt: skip


def hours_ago(n: float) -> datetime:
    return NOW - timedelta(hours=n)


# --- recording ----------------------------------------------------------------------


def test_a_drain_counts_each_handler_into_the_hour_it_finished_in(
    monkeypatch, django_capture_on_commit_callbacks
):
    freeze_clock(monkeypatch, NOW)
    enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(3)])
    enqueue("platform.fail", {"permanent": True})
    enqueue("test.flaky", {"succeed_on": 2}, attempts=3)
    with django_capture_on_commit_callbacks(execute=True):
        drain("default")
    metrics.flush(force=True)
    hour = NOW.replace(minute=0)
    # The clock stands still: every attempt took 0 ms (the first bin).
    assert bucket("platform.echo", hour) == counts(completed=3, histogram=hist((0, 3)))
    assert bucket("platform.fail", hour) == counts(failed=1, histogram=hist((0, 1)))
    # The flaky job's first try was retried; its second (run later, not in this drain)
    # is still to come.
    assert bucket("test.flaky", hour)["retried"] == 1
    assert HandlerHour.objects.count() == 3
    # The all-time counters are still written, from the same deltas.
    assert HandlerStats.objects.get(name="platform.echo").completed == 3


def test_flush_adds_to_the_hour_buckets_one_upsert_per_bucket():
    at = NOW.replace(minute=10)
    record("platform.echo", at, ms=8, n=2)
    record("platform.echo", at + timedelta(minutes=5), ms=40, status="failed")
    record("platform.echo", at + timedelta(hours=1), ms=150)  # the next hour
    record("platform.fail", at, ms=3000, status="retried")
    with CaptureQueriesContext(connection) as queries:
        metrics.flush(force=True)
    inserts = [q["sql"] for q in queries.captured_queries if "queues_handlerhour" in q["sql"]]
    assert len(inserts) == 3  # echo at 12:00, echo at 13:00, fail at 12:00
    assert bucket("platform.echo", NOW.replace(minute=0)) == counts(
        completed=2, failed=1, duration_ms_sum=56, histogram=hist((8, 2), (40, 1))
    )
    # A second flush into the same bucket adds up, counters and histogram bins alike.
    record("platform.echo", at, ms=8)
    record("platform.echo", at, ms=70000)  # the open-ended last bin
    metrics.flush(force=True)
    assert bucket("platform.echo", NOW.replace(minute=0)) == counts(
        completed=4, failed=1, duration_ms_sum=70064, histogram=hist((8, 3), (40, 1), (70000, 1))
    )
    assert bucket("platform.echo", NOW.replace(minute=0) + timedelta(hours=1))["completed"] == 1
    assert bucket("platform.fail", NOW.replace(minute=0))["retried"] == 1
    # HandlerStats sums the hours: 5 echo attempts ever, one of them failed.
    stats = HandlerStats.objects.get(name="platform.echo")
    assert (stats.completed, stats.failed, sum(stats.histogram)) == (5, 1, 6)


# --- the selector: windows, totals, percentiles ---------------------------------------


def place_fixed_hours():
    """echo: 100 attempts in the 1 h window (p50 ≤10, p95 ≤50, p99 ≤200 ms), 10 more two
    hours ago (≤1 s), 200 more two days ago (≤20 ms), and one four days ago, outside every
    window; fail: 3 in the 1 h window, 7 more twelve hours ago (all ≤2 s)."""
    record("platform.echo", hours_ago(0.2), ms=8, n=40)  # 12:18
    record("platform.echo", hours_ago(1.1), ms=8, n=10)  # 11:24: in the 1 h window's 11:00 bucket
    record("platform.echo", hours_ago(0.2), ms=40, n=44)
    record("platform.echo", hours_ago(0.2), ms=40, n=1, status="failed")
    record("platform.echo", hours_ago(0.2), ms=150, n=4, status="retried")
    record("platform.echo", hours_ago(0.2), ms=3000, n=1)
    record("platform.echo", hours_ago(2), ms=700, n=10)  # 10:30
    record("platform.echo", hours_ago(48), ms=15, n=200)  # two days ago
    record("platform.echo", hours_ago(96), ms=15)  # four days ago
    record("platform.fail", hours_ago(0.5), ms=1500, n=3, status="failed")  # 12:00
    record("platform.fail", hours_ago(12), ms=1500, n=7, status="failed")
    metrics.flush(force=True)


def totals(window: str) -> dict:
    """Per handler: runs, failures, p50, p95 and p99 (ms) over ``window``."""
    rows = handler_metrics(window=window, now=NOW)["handlers"]
    return {r.name: (r.runs, r.failures, *map(r.percentile_ms, (0.5, 0.95, 0.99))) for r in rows}


def test_windows_sum_the_hour_buckets_that_overlap_them():
    place_fixed_hours()
    assert totals("1h") == {
        "platform.echo": (100, 5, 10, 50, 200),
        "platform.fail": (3, 3, 2000, 2000, 2000),
    }
    assert totals("24h") == {
        "platform.echo": (110, 5, 50, 1000, 1000),
        "platform.fail": (10, 10, 2000, 2000, 2000),
    }
    assert totals("72h") == {
        "platform.echo": (310, 5, 20, 50, 1000),
        "platform.fail": (10, 10, 2000, 2000, 2000),
    }
    since = handler_metrics(window="1h", now=NOW)["since"]
    assert since == datetime(2026, 12, 4, 11, tzinfo=UTC)


def test_handlers_are_sorted_by_runs_in_the_window_and_charted_per_hour():
    record("platform.echo", hours_ago(30), ms=5, n=50)
    record("platform.fail", hours_ago(0.1), ms=5, n=2, status="failed")
    metrics.flush(force=True)
    assert [r.name for r in handler_metrics(window="1h", now=NOW)["handlers"]] == [
        "platform.fail",
        "platform.echo",  # idle in the window: listed last, with nothing counted
    ]
    data = handler_metrics(window="72h", now=NOW)
    echo, fail = data["handlers"]
    assert (echo.name, echo.runs, fail.runs) == ("platform.echo", 50, 2)
    # 73 bars: the hour holding now - 72 h through the current hour.
    assert len(data["chart_hours"]) == 73 and data["chart_hours"][-1] == NOW.replace(minute=0)
    thirty_hours_ago = data["chart_hours"].index(NOW.replace(minute=0) - timedelta(hours=30))
    assert echo.hours[thirty_hours_ago] == [50, 0]
    assert fail.hours[-1] == [2, 2] and sum(r for r, _f in fail.hours) == 2


def test_an_open_ended_percentile_and_an_empty_window_read_plainly():
    record("platform.echo", hours_ago(0.1), ms=90000, n=2)
    record("platform.fail", hours_ago(20), ms=5, status="failed")
    metrics.flush(force=True)
    rows = {r.name: r for r in handler_metrics(window="1h", now=NOW)["handlers"]}
    assert rows["platform.echo"].percentile_ms(0.5) == -1  # past the last bound (60 s)
    assert rows["platform.fail"].runs == 0 and rows["platform.fail"].percentile_ms(0.5) is None


# --- pruning ---------------------------------------------------------------------------


def test_prune_deletes_handler_hours_that_ended_72_hours_ago_and_counts_them():
    queue = Queue.objects.get(name="default")
    for hours in (75, 74, 73, 72, 71, 1):
        HandlerHour.objects.create(
            queue=queue, name="platform.echo", hour=NOW.replace(minute=0) - timedelta(hours=hours)
        )
    QueueMinute.objects.create(queue=queue, minute=NOW - timedelta(hours=49))
    QueueMinute.objects.create(queue=queue, minute=NOW - timedelta(hours=47))
    # now - 72 h is 12-01 12:30: the 12:00 bucket (72 h before 12:00 today) still overlaps.
    assert metrics.prune_buckets(now=NOW) == 3 + 1
    kept = HandlerHour.objects.order_by("hour").values_list("hour", flat=True)
    assert [NOW.replace(minute=0) - h for h in kept] == [timedelta(hours=h) for h in (72, 71, 1)]
    assert QueueMinute.objects.count() == 1
    assert metrics.prune_buckets(now=NOW) == 0


# --- the page ----------------------------------------------------------------------------


def page(client, monkeypatch, query: str = ""):
    freeze_clock(monkeypatch, NOW)
    response = client.get(URL + query)
    assert response.status_code == 200
    return response


def test_the_page_shows_each_window_with_links_to_the_handlers_jobs(admin_client, monkeypatch):
    place_fixed_hours()
    one_hour = page(admin_client, monkeypatch, "?window=1h")
    assert one_hour.context["window"] == "1h"
    echo, fail = one_hour.context["handlers"]
    assert (echo["name"], echo["runs"], echo["failures"]) == ("platform.echo", 100, 5)
    assert echo["failure_pct"] == pytest.approx(5.0)
    assert echo["percentiles"] == [("p50", "≤ 10 ms"), ("p95", "≤ 50 ms"), ("p99", "≤ 200 ms")]
    assert (fail["runs"], fail["failure_pct"]) == (3, 100.0)
    assert fail["percentiles"][0] == ("p50", "≤ 2.0 s")
    html = one_hour.content.decode()
    assert '<tr data-handler="platform.echo">' in html
    assert "5.0 %" in html and "≤ 200 ms" in html
    assert 'href="/admin/queues/job/?name=platform.echo"' in html
    assert 'href="/admin/queues/job/?name=platform.fail&amp;status__exact=failed"' in html
    assert 'href="?window=1h" class="jp-current" aria-current="page"' in html
    assert "Dashboard</a> › Handler metrics" in html

    echo72 = page(admin_client, monkeypatch, "?window=72h").context["handlers"][0]
    assert (echo72["runs"], echo72["percentiles"][0]) == (310, ("p50", "≤ 20 ms"))
    # No (or an unknown) window: the last 24 h.
    for query in ("", "?window=7d"):
        response = page(admin_client, monkeypatch, query)
        assert response.context["window"] == "24h"
        assert [h["runs"] for h in response.context["handlers"]] == [110, 10]


def test_the_links_open_the_handlers_filtered_job_list(
    admin_client, monkeypatch, django_capture_on_commit_callbacks
):
    freeze_clock(monkeypatch, NOW)
    enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(2)])
    enqueue("platform.fail", {"permanent": True})
    with django_capture_on_commit_callbacks(execute=True):
        drain("default")
    metrics.flush(force=True)
    rows = {h["name"]: h for h in page(admin_client, monkeypatch, "?window=1h").context["handlers"]}
    for name, url, expected in [
        ("platform.echo", "jobs_url", {"platform.echo"}),
        ("platform.fail", "failed_url", {"platform.fail"}),
    ]:
        listed = admin_client.get(rows[name][url])
        assert listed.status_code == 200
        assert {job.name for job in listed.context["cl"].result_list} == expected
    assert Job.objects.filter(name="platform.fail", status=JobStatus.FAILED).count() == 1


def test_an_empty_store_says_so(admin_client, monkeypatch):
    html = page(admin_client, monkeypatch).content.decode()
    assert "No job finished in the last 72 h: nothing to show yet." in html
    assert "jp-handler-table" not in html
    # Data older than the window only: the rows stay, with a note.
    record("platform.echo", hours_ago(30), ms=5)
    metrics.flush(force=True)
    html = page(admin_client, monkeypatch, "?window=1h").content.decode()
    assert "No job finished in the last 1 h." in html and 'data-handler="platform.echo"' in html


def test_login_is_required(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={URL}"
    User.objects.create_user("bob", password="pw")  # not staff
    client.login(username="bob", password="pw")
    assert client.get(URL).status_code == 302


# The session, the user, and the hour buckets summed three ways (per handler and hour,
# the window's histograms per handler, the window's queues per handler).
PAGE_QUERIES = 5


@pytest.mark.parametrize("handlers", [1, 25])
def test_the_page_query_count_does_not_grow_with_handlers(
    admin_client, monkeypatch, django_assert_num_queries, handlers
):
    queue = Queue.objects.get(name="default")
    HandlerHour.objects.bulk_create(
        HandlerHour(
            queue=queue,
            name=f"handler.{i}",
            hour=NOW.replace(minute=0) - timedelta(hours=h),
            completed=i + 1,
            failed=1,
            histogram=hist((30, i + 2)),
        )
        for i in range(handlers)
        for h in (0, 5, 40)
    )
    freeze_clock(monkeypatch, NOW)
    with django_assert_num_queries(PAGE_QUERIES):
        response = admin_client.get(URL + "?window=72h")
    assert len(response.context["handlers"]) == handlers
    assert response.context["handlers"][0]["name"] == f"handler.{handlers - 1}"
