"""The schedule editor and list in a real browser: typing a cron string updates the
preview (in the schedule's zone and the browser's), saving writes the schedule, and the
list's Pause and Run now buttons act in place. Each step checks the page and the database."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from queues.models import AuditLog, Job, JobStatus
from scheduling import services as schedules
from scheduling.models import RunTrigger, ScheduledJob, ScheduleRun, ScheduleStatus
from tests.browser.test_admin_browser import log_in

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the chromium_browser fixture reports it: a failure under CI, else a skip
    Page = expect = None

ADD = "/admin/scheduling/scheduledjob/add/"
CHANGELIST = "/admin/scheduling/scheduledjob/"


@pytest.fixture
def berlin_page(chromium_browser, live_server):
    """A browser whose clock is Berlin's, so the preview's second column is the viewer's."""
    context = chromium_browser.new_context(
        base_url=live_server.url,
        viewport={"width": 1280, "height": 900},
        locale="en-US",
        timezone_id="Europe/Berlin",
    )
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def row(page: Page, name: str):
    return page.locator(
        "#result_list tbody tr", has=page.get_by_role("link", name=name, exact=True)
    )


def test_create_a_cron_schedule_by_typing_with_a_live_preview(berlin_page: Page, artifacts):
    page = berlin_page
    log_in(page)
    page.goto(ADD)
    preview = page.locator("#jp-schedule-preview")
    # With JavaScript only the chosen kind's fields show: cron string and zone.
    expect(page.locator(".form-row.field-cron")).to_be_visible()
    expect(page.locator(".form-row.field-timezone")).to_be_visible()
    expect(page.locator(".form-row.field-every")).to_be_hidden()
    expect(page.locator(".form-row.field-run_at")).to_be_hidden()

    page.fill("#id_name", "weekday-report")
    page.select_option("#id_handler", "platform.echo")
    page.select_option("#id_timezone", "Asia/Shanghai")
    cron = page.locator("#id_cron")
    cron.press_sequentially("61 9 * * 1-5", delay=20)
    expect(preview.locator("#jp-preview-errors li")).to_contain_text("invalid minute field '61'")
    cron.fill("")
    cron.press_sequentially("0 9 * * 1-5", delay=20)
    expect(preview.locator("#jp-preview-description")).to_have_text(
        "At 09:00, Monday through Friday"
    )
    expect(preview.locator("#jp-preview-errors")).to_have_count(0)
    table = preview.locator("#jp-preview-runs")
    expect(table.locator("thead th")).to_have_text(
        ["Schedule (Asia/Shanghai)", "Yours (Europe/Berlin)"]
    )
    expect(table.locator("tbody tr")).to_have_count(5)
    first = table.locator("tbody tr").first.locator("time")
    weekday = r"^(Mon|Tue|Wed|Thu|Fri) \d{4}-\d\d-\d\d"
    expect(first.nth(0)).to_have_text(re.compile(weekday + " 09:00 CST$"))
    # 09:00 in Shanghai is 02:00 in Berlin in winter, 03:00 in summer.
    expect(first.nth(1)).to_have_text(re.compile(r" 0[23]:00 CES?T$"))
    page.screenshot(path=artifacts / "schedule-editor.png", full_page=True)

    # Another kind: its fields show, the cron's hide, the preview follows.
    page.check("input[name=kind][value=interval]")
    expect(page.locator(".form-row.field-cron")).to_be_hidden()
    expect(page.locator(".form-row.field-every")).to_be_visible()
    page.fill("#id_every", "90")
    errors = preview.locator("#jp-preview-errors li")
    expect(errors).to_have_count(1)
    expect(errors).to_have_attribute("data-field", "period")
    expect(errors).to_contain_text("Choose a unit")
    page.select_option("#id_period", "minutes")
    expect(preview.locator("#jp-preview-description")).to_have_text("Every 90 minutes")
    page.check("input[name=kind][value=cron]")
    expect(preview.locator("#jp-preview-description")).to_have_text(
        "At 09:00, Monday through Friday"
    )

    page.locator("input[name=_save]").click()
    expect(page).to_have_url(re.compile(r"/admin/scheduling/scheduledjob/$"))
    expect(page.locator(".messagelist li")).to_contain_text("weekday-report")
    schedule = ScheduledJob.objects.get()
    crontab = schedule.crontab
    assert (schedule.name, schedule.handler) == ("weekday-report", "platform.echo")
    assert (crontab.minute, crontab.hour, crontab.day_of_month) == ("0", "9", "*")
    assert (crontab.month_of_year, crontab.day_of_week) == ("*", "1-5")
    assert str(crontab.timezone) == "Asia/Shanghai"
    assert schedule.interval is None and schedule.clocked is None
    local = schedule.next_run_at.astimezone(crontab.timezone)
    assert (local.hour, local.minute, local.isoweekday() <= 5) == (9, 0, True)
    expect(row(page, "weekday-report")).to_contain_text("At 09:00, Monday through Friday")


def test_pause_and_run_now_from_the_list(page: Page):
    schedule = schedules.create_schedule(name="nightly", handler="platform.echo", cron="0 2 * * *")
    log_in(page)
    page.goto(CHANGELIST)
    line = row(page, "nightly")
    expect(line.locator(".field-recent_runs")).to_have_text("no runs yet")

    page.evaluate("() => { window.__jpSamePage = true; }")
    line.get_by_role("button", name="Pause").click()
    expect(page.locator(".messagelist li")).to_have_text("nightly: paused.")
    expect(line.locator(".field-status")).to_have_text("Paused")
    expect(line.get_by_role("button", name="Resume")).to_be_visible()
    schedule.refresh_from_db()
    assert schedule.status == ScheduleStatus.PAUSED

    line.get_by_role("button", name="Run now").click()
    expect(page.locator(".messagelist li")).to_have_text("nightly: a run was enqueued now.")
    expect(line.locator(".jp-spark-run")).to_have_count(1)
    expect(line.locator(".jp-spark-run")).to_have_attribute("data-outcome", "waiting")
    run = ScheduleRun.objects.get()
    assert run.trigger == RunTrigger.MANUAL
    assert (run.job.name, run.job.status) == ("platform.echo", JobStatus.WAITING)
    assert Job.objects.count() == 1

    line.get_by_role("button", name="Resume").click()
    expect(line.locator(".field-status")).to_have_text("Enabled")
    assert ScheduledJob.objects.get().status == ScheduleStatus.ENABLED
    # Fetch, not a reload: the page stayed.
    assert page.evaluate("() => window.__jpSamePage") is True
    assert list(AuditLog.objects.order_by("id").values_list("action", "username")) == [
        ("pause_schedules", "admin"),
        ("run_schedules", "admin"),
        ("enable_schedules", "admin"),
    ]


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_editor_and_list_fit_the_width(chromium_browser, live_server, artifacts, width, scheme):
    context = chromium_browser.new_context(
        base_url=live_server.url,
        viewport={"width": width, "height": 844},
        color_scheme=scheme,
        locale="en-US",
    )
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        schedule = schedules.create_schedule(
            name="nightly", handler="platform.echo", cron="0 2 * * *"
        )
        for i, status in enumerate(["completed"] * 12 + ["failed", "completed", "cancelled"]):
            run = schedules.run_now(schedule, now=timezone.now() - timedelta(hours=15 - i))
            Job.objects.filter(pk=run.job_id).update(status=status)
        log_in(page)
        page.goto(ADD)
        page.fill("#id_cron", "*/15 9-17 * * 1-5")
        preview = page.locator("#jp-schedule-preview")
        expect(preview.locator("#jp-preview-runs tbody tr")).to_have_count(5)
        box = preview.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
        preview.screenshot(path=artifacts / f"schedule-preview-{width}-{scheme}.png")
        page.screenshot(path=artifacts / f"schedule-editor-{width}-{scheme}.png", full_page=True)
        page.goto(CHANGELIST)
        button = row(page, "nightly").get_by_role("button", name="Run now")
        expect(button).to_be_visible()
        expect(row(page, "nightly").locator(".jp-spark-run")).to_have_count(15)
        # The buttons are on screen, not behind a sideways scroll.
        button_box = button.bounding_box()
        assert button_box["x"] + button_box["width"] <= width, button_box
        page.locator("#result_list").screenshot(
            path=artifacts / f"schedule-rows-{width}-{scheme}.png"
        )
        # The page never scrolls sideways; a wide list scrolls inside its own box.
        overflow = page.evaluate("() => document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 0, f"the list is {overflow}px wider than the {width}px window"
        page.screenshot(path=artifacts / f"schedule-list-{width}-{scheme}.png", full_page=True)
    finally:
        context.close()
