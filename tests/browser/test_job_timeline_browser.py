"""A job's page in a real browser: its attempts on one time axis at phone and desktop
widths, and a running job's progress moving live until the page shows it finished. The
test writes the job's row as a worker would; every wait is an expectation with a deadline."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils import timezone

from queues import enqueue
from queues.models import AttemptOutcome, Job, JobAttempt, JobStatus
from tests.browser.test_admin_browser import log_in
from tests.queues.test_job_page import job_with_three_attempts

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the chromium_browser fixture reports it: a failure under CI, else a skip
    Page = expect = None

# Polls run every 2 s: a change shows within a few of them.
LIVE = 10_000


def change_page(job) -> str:
    return f"/admin/queues/job/{job.pk}/change/"


def row(page: Page, number: int):
    return page.locator(f'#jp-timeline tr.jp-tl-row[data-attempt="{number}"]')


def same_page(page: Page) -> bool:
    return page.evaluate("() => window.__jpSamePage === true")


def test_a_running_jobs_progress_and_attempts_show_live_then_it_finishes(page: Page, artifacts):
    job = enqueue("platform.echo", {"i": 1})
    first_start = timezone.now() - timedelta(seconds=1)
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.ACTIVE,
        attempts_made=1,
        worker="host:9",
        started_at=first_start,
        progress=10,
    )
    log_in(page)
    page.goto(change_page(job))
    bar = page.locator("#jp-live-progress")
    expect(bar).to_have_attribute("aria-valuenow", "10")
    expect(row(page, 1)).to_have_attribute("data-outcome", "running")
    expect(page.locator("#jp-job-live")).to_have_attribute("data-poll", "1")
    page.evaluate("() => { window.__jpSamePage = true; }")

    # The handler reports progress: the bar moves, the page stays.
    Job.objects.filter(pk=job.pk).update(progress=60)
    expect(bar).to_have_attribute("aria-valuenow", "60", timeout=LIVE)
    expect(bar.locator("div")).to_have_attribute("style", re.compile(r"width:\s*60%"))
    expect(page.locator("#jp-live-progress-text")).to_have_text("60%")
    assert same_page(page), "the page reloaded for a progress report"

    # The attempt fails and the job waits for its retry: the failed attempt is drawn.
    JobAttempt.objects.create(
        job=job,
        number=1,
        worker="host:9",
        started_at=first_start,
        finished_at=first_start + timedelta(milliseconds=1400),
        duration_ms=1400,
        outcome=AttemptOutcome.FAILED,
        error="ConnectionError: smtp refused",
        traceback="Traceback (most recent call last):\nConnectionError: smtp refused",
    )
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.DELAYED, worker="", run_at=timezone.now() + timedelta(seconds=2)
    )
    expect(row(page, 1)).to_have_attribute("data-outcome", "failed", timeout=LIVE)
    expect(row(page, 1).locator("td.jp-tl-error")).to_have_text("ConnectionError: smtp refused")
    expect(page.locator(".field-status_tag .jp-badge")).to_have_text("delayed")

    # The retry runs: its bar is there, after the wait.
    second_start = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.ACTIVE,
        attempts_made=2,
        worker="host:9",
        started_at=second_start,
        progress=0,
    )
    expect(row(page, 2)).to_have_attribute("data-outcome", "running", timeout=LIVE)
    expect(row(page, 2).locator(".jp-tl-gap")).to_have_count(1)
    expect(bar).to_have_attribute("aria-valuenow", "0")
    assert same_page(page), "the page reloaded before the job finished"
    page.locator(".field-attempts_table").screenshot(path=artifacts / "job-live-retry.png")

    # It completes: polling stops and the page reloads once, showing the finished job.
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.COMPLETED,
        progress=100,
        finished_at=second_start + timedelta(milliseconds=2100),
        result={"ok": True},
    )
    expect(row(page, 2)).to_have_attribute("data-outcome", "completed", timeout=LIVE)
    expect(row(page, 2).locator("td.jp-tl-duration")).to_have_text("2.1 s")
    expect(page.locator(".field-status_tag .jp-badge")).to_have_text("completed")
    expect(page.locator("#jp-job-live")).to_have_attribute("data-poll", "0")
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(page.locator(".field-result_json")).to_contain_text('"ok": true')
    assert not same_page(page), "the finished job's page was not reloaded"
    page.screenshot(path=artifacts / "job-live-finished.png", full_page=True)


def test_the_timeline_draws_attempts_and_waits_on_one_axis_at_every_width(page: Page, artifacts):
    job = job_with_three_attempts()
    log_in(page)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(change_page(job))
        expect(page.locator("#jp-timeline tr.jp-tl-row")).to_have_count(3)
        boxes = page.evaluate(
            """() => [...document.querySelectorAll('#jp-timeline tr.jp-tl-row')].map((tr) => {
                 const lane = tr.querySelector('.jp-tl-lane').getBoundingClientRect();
                 const bar = tr.querySelector('.jp-tl-bar').getBoundingClientRect();
                 const gap = tr.querySelector('.jp-tl-gap');
                 return {lane: [lane.left, lane.right], bar: [bar.left, bar.right],
                         gap: gap ? gap.getBoundingClientRect().width : 0};
               })"""
        )
        lanes = {tuple(round(x) for x in b["lane"]) for b in boxes}
        assert len(lanes) == 1, (width, boxes)  # one axis for every attempt
        ((left, right),) = lanes
        starts = [b["bar"][0] for b in boxes]
        assert starts == sorted(starts) and len(set(starts)) == 3, (width, boxes)
        for b in boxes:
            assert left - 0.5 <= b["bar"][0] and b["bar"][1] <= right + 0.5, (width, b)
            assert b["bar"][1] - b["bar"][0] >= 4  # the shortest is still visible
        # Attempt 2 starts 2 s after attempt 1 and attempt 3 4 s after it: 32 % and 96 %.
        origin, span = left + 1, right - left - 2  # inside the lane's 1 px border
        assert abs(starts[1] - origin - 0.32 * span) <= 1, (width, boxes)
        assert abs(starts[2] - origin - 0.96 * span) <= 1, (width, boxes)
        assert [b["gap"] > 0 for b in boxes] == [False, True, True]
        fits = page.evaluate(
            """() => { const t = document.getElementById('jp-timeline');
                       return [t.scrollWidth <= t.clientWidth + 1,
                               t.getBoundingClientRect().right <= window.innerWidth]; }"""
        )
        assert fits == [True, True], (width, fits)

        traceback = row(page, 1).locator("xpath=following-sibling::tr[1]").locator("details")
        expect(traceback.locator("pre")).to_be_hidden()
        traceback.locator("summary").click()
        expect(traceback.locator("pre")).to_contain_text("ConnectionError: smtp refused")
        expect(page.locator(".jp-tl-logs li[data-level=warning]")).to_contain_text("slow upstream")
        timeline = page.locator(".field-attempts_table")
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.screenshot(path=artifacts / f"job-timeline-{width}-{scheme}.png", full_page=True)
            timeline.screenshot(path=artifacts / f"job-timeline-{width}-{scheme}-attempts.png")
        page.emulate_media(color_scheme="light")
