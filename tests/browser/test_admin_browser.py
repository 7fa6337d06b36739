"""The admin console in a real browser: login, the live dashboard, job, queue and
schedule actions. Each test checks what the page shows and what the database holds."""

from __future__ import annotations

import re

from django.contrib.auth.models import User
from django.utils import timezone

from queues import enqueue, enqueue_many, metrics
from queues.engine.runner import drain
from queues.metrics import refresh_snapshots
from queues.models import AuditLog, Job, JobStatus, Queue, QueueMinute
from scheduling import services as schedules
from scheduling.models import ScheduleRun
from tests.helpers import freeze_clock

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the chromium_browser fixture reports it: a failure under CI, else a skip
    Page = expect = None

QUEUE_COLUMNS = [
    "queue",
    "paused",
    "waiting",
    "delayed",
    "blocked",
    "active",
    "completed",
    "failed",
    "cancelled",
    "latency",
    "done 1 h",
    "failure rate",
    "avg",
    "p95",
    "alerts",
]


def run_jobs(completed: int, failed: int, message: str = "smtp down") -> None:
    """Enqueue and run jobs on ``default`` in-process, then refresh the dashboard counts."""
    if completed:
        enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(completed)])
    if failed:
        enqueue_many(
            [
                {"name": "platform.fail", "payload": {"permanent": True, "message": message}}
                for _ in range(failed)
            ]
        )
    drain("default")
    metrics.flush(force=True)  # what the worker's keeper writes within a second of idling
    refresh_snapshots()


def log_in(page: Page) -> User:
    user = User.objects.create_superuser("admin", "a@example.com", "pw")
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator("#user-tools")).to_contain_text("admin")
    return user


def queue_cell(page: Page, queue: str, column: str):
    return page.locator(f'#jp-queues tbody tr[data-queue="{queue}"] td').nth(
        QUEUE_COLUMNS.index(column)
    )


def run_action(page: Page, action: str) -> None:
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def test_login_and_dashboard_counts_charts_and_live_refresh(page: Page, artifacts, monkeypatch):
    # The chart's buckets are keyed by the minute a job finished. With the clock stopped at
    # the start of a minute (for the runner and the live server alike), all 10 jobs land in
    # that one minute and the dashboard's "now" is in it too, whenever the test runs.
    minute = freeze_clock(monkeypatch, timezone.now().replace(second=0, microsecond=0))
    run_jobs(completed=3, failed=2)
    assert list(QueueMinute.objects.values_list("minute", "completed", "failed")) == [
        (minute, 3, 2)
    ]
    default = Queue.objects.get(name="default")
    assert {k: n for k, n in default.snapshot.counts.items() if n} == {"completed": 3, "failed": 2}

    # Wrong password first: the form says so and nobody is logged in.
    User.objects.create_superuser("admin", "a@example.com", "pw")
    page.goto("/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "wrong")
    page.click("input[type=submit]")
    expect(page.locator(".errornote")).to_be_visible()
    User.objects.filter(username="admin").delete()
    log_in(page)
    assert User.objects.get(username="admin").last_login is not None

    page.locator("#user-tools").get_by_role("link", name="Dashboard").click()
    expect(page).to_have_url(re.compile(r"/admin/queues/dashboard/$"))
    expect(page.locator("#jp-queues thead th")).to_have_text(QUEUE_COLUMNS)
    expect(queue_cell(page, "default", "completed")).to_have_text("3")
    expect(queue_cell(page, "default", "failed")).to_have_text("2")
    expect(queue_cell(page, "default", "waiting")).to_have_text("0")
    expect(queue_cell(page, "default", "done 1 h")).to_have_text("3")
    expect(queue_cell(page, "default", "failure rate")).to_have_text("40 %")
    # 40 % failures is over the 5 % threshold: the row is flagged.
    expect(page.locator('#jp-queues tr[data-queue="default"]')).to_have_class("jp-alert")
    expect(queue_cell(page, "default", "alerts")).to_contain_text("failure rate > 5%")

    # The charts: one ok and one failed bar per minute (60) and per hour (24).
    expect(page.locator("#jp-minute-chart rect")).to_have_count(120)
    expect(page.locator("#jp-hour-chart rect")).to_have_count(48)
    drawn = page.evaluate(
        """() => [...document.querySelectorAll('#jp-minute-chart rect')]
                 .reduce((sum, r) => sum + parseFloat(r.getAttribute('height')), 0)"""
    )
    assert drawn > 0, "the minute chart draws no bar for the 5 finished jobs"
    expect(page.locator("#jp-minute-chart text").last).to_have_text("max 5")

    page.screenshot(path=artifacts / "dashboard.png", full_page=True)
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=artifacts / "dashboard-dark.png", full_page=True)
    page.emulate_media(color_scheme="light")

    # New jobs: the 5 s poll updates the table in place, no reload.
    page.evaluate("() => { window.__jpSamePage = true; }")
    run_jobs(completed=4, failed=1)
    assert Job.objects.filter(status=JobStatus.COMPLETED).count() == 7
    assert list(QueueMinute.objects.values_list("minute", "completed", "failed")) == [
        (minute, 7, 3)
    ]
    expect(queue_cell(page, "default", "completed")).to_have_text("7", timeout=15_000)
    expect(queue_cell(page, "default", "failed")).to_have_text("3")
    expect(queue_cell(page, "default", "done 1 h")).to_have_text("7")
    expect(page.locator("#jp-minute-chart text").last).to_have_text("max 10")
    assert page.evaluate("() => window.__jpSamePage") is True, "the dashboard reloaded"


def test_filter_failed_jobs_open_one_and_retry_it(page: Page, artifacts):
    run_jobs(completed=2, failed=2)
    log_in(page)
    page.goto("/admin/queues/job/")
    expect(page.locator("#result_list tbody tr")).to_have_count(4)

    status_filter = page.locator("#changelist-filter details", has_text="By status")
    status_filter.get_by_role("link", name="Failed", exact=True).click()
    expect(page).to_have_url(re.compile(r"status__exact=failed"))
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    failed = list(Job.objects.filter(status=JobStatus.FAILED).order_by("-created_at"))
    assert len(failed) == 2
    job = failed[0]

    row = rows.filter(has=page.locator(f'input.action-select[value="{job.pk}"]'))
    row.get_by_role("link", name=str(job.pk)[:13]).click()
    expect(page).to_have_url(re.compile(rf"/admin/queues/job/{job.pk}/change/"))
    expect(page.locator("div.form-row.field-error")).to_contain_text("smtp down")
    expect(page.locator(".field-traceback_text")).to_contain_text("PermanentError: smtp down")
    expect(page.locator(".field-status_tag .jp-badge")).to_have_text("failed")
    page.screenshot(path=artifacts / "job.png", full_page=True)

    page.go_back()
    expect(page).to_have_url(re.compile(r"status__exact=failed"))
    page.locator(f'input.action-select[value="{job.pk}"]').check()
    run_action(page, "retry_selected")
    expect(page.locator(".messagelist li")).to_have_text("Retry jobs: 1 jobs.")

    job.refresh_from_db()
    assert job.status == JobStatus.WAITING
    assert Job.objects.get(pk=failed[1].pk).status == JobStatus.FAILED
    log = AuditLog.objects.get()
    assert (log.action, log.count, log.username) == ("retry_jobs", 1, "admin")


def test_pause_and_resume_the_default_queue(page: Page):
    default = Queue.objects.get(name="default")
    assert not default.paused
    log_in(page)
    page.goto("/admin/queues/queue/")
    checkbox = f'input.action-select[value="{default.pk}"]'
    paused_cell = page.locator("#result_list tr", has=page.locator(checkbox)).locator(
        "td.field-paused img"
    )
    expect(paused_cell).to_have_attribute("alt", "False")

    page.locator(checkbox).check()
    run_action(page, "pause_selected")
    expect(page.locator(".messagelist li")).to_have_text("Pause queues: 1 queues.")
    expect(paused_cell).to_have_attribute("alt", "True")
    assert Queue.objects.get(pk=default.pk).paused is True
    assert Queue.objects.filter(paused=True).count() == 1

    page.locator(checkbox).check()
    run_action(page, "resume_selected")
    expect(page.locator(".messagelist li")).to_have_text("Resume queues: 1 queues.")
    expect(paused_cell).to_have_attribute("alt", "False")
    assert Queue.objects.get(pk=default.pk).paused is False
    assert list(AuditLog.objects.order_by("id").values_list("action", "target")) == [
        ("pause_queues", "default"),
        ("resume_queues", "default"),
    ]


def test_run_a_schedule_now(page: Page):
    schedule = schedules.create_schedule(name="nightly", handler="platform.echo", cron="0 2 * * *")
    assert not ScheduleRun.objects.exists() and not Job.objects.exists()
    log_in(page)
    page.goto("/admin/scheduling/scheduledjob/")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    page.locator(f'input.action-select[value="{schedule.pk}"]').check()
    run_action(page, "run_now")
    expect(page.locator(".messagelist li")).to_have_text("1 schedule(s) run now.")

    run = ScheduleRun.objects.get(schedule=schedule)
    assert run.trigger == "manual"
    job = Job.objects.get()
    assert run.job_id == job.pk
    assert (job.name, job.status) == ("platform.echo", JobStatus.WAITING)


def test_delete_button_on_the_job_page_follows_the_delete_action_rules(page: Page):
    parent = enqueue("platform.echo", {}, delay=3600)
    child = enqueue("platform.echo", {}, depends_on=[parent.pk])
    assert Job.objects.get(pk=child.pk).status == JobStatus.BLOCKED
    log_in(page)
    page.goto(f"/admin/queues/job/{parent.pk}/change/")
    page.locator("a.deletelink").click()
    page.locator("#content form input[type=submit]").click()
    expect(page.locator(".messagelist li")).to_contain_text("deleted")
    assert not Job.objects.filter(pk=parent.pk).exists()

    # What the "Delete selected jobs" action does: cancel first, so the required
    # dependant is resolved (failed), and audit the deletion.
    assert Job.objects.get(pk=child.pk).status != JobStatus.BLOCKED
    assert AuditLog.objects.filter(action="delete_jobs").exists()


def test_a_failed_job_page_retries_edits_and_duplicates(page: Page, artifacts):
    run_jobs(completed=0, failed=2)
    Queue.objects.create(name="other")
    first, second = Job.objects.order_by("created_at")
    log_in(page)

    page.goto(f"/admin/queues/job/{first.pk}/change/")
    tools = page.locator(".object-tools")
    expect(tools.locator("[data-action]")).to_have_text(["Retry", "Duplicate", "Edit and retry"])
    page.screenshot(path=artifacts / "job-failed-actions.png", full_page=True)
    tools.get_by_role("button", name="Retry").click()
    expect(page.locator(".messagelist li")).to_have_text("The job was sent back to its queue.")
    expect(page).to_have_url(re.compile(rf"/admin/queues/job/{first.pk}/change/$"))
    expect(tools.locator("[data-action]")).to_have_text(["Cancel", "Duplicate", "Edit"])
    assert Job.objects.get(pk=first.pk).status == JobStatus.WAITING

    page.goto(f"/admin/queues/job/{second.pk}/change/")
    tools.get_by_role("link", name="Edit and retry").click()
    page.fill("#id_payload", "{broken")
    page.click("#jp-edit-job input[type=submit]")
    expect(page.locator(".field-payload .errorlist")).to_contain_text("This is not valid JSON")
    assert Job.objects.get(pk=second.pk).status == JobStatus.FAILED
    page.fill("#id_payload", '{"to": "bob"}')
    page.select_option("#id_queue", "other")
    page.fill("#id_priority", "2")
    page.fill("#id_delay", "3600")
    page.screenshot(path=artifacts / "job-edit.png", full_page=True)
    page.click("#jp-edit-job input[type=submit]")
    expect(page.locator(".messagelist li")).to_have_text("The job was changed.")
    edited = Job.objects.get(pk=second.pk)
    assert (edited.payload, edited.queue.name, edited.priority, edited.status) == (
        {"to": "bob"},
        "other",
        2,
        JobStatus.DELAYED,
    )

    tools.get_by_role("button", name="Duplicate").click()
    expect(page.locator(".messagelist li")).to_contain_text("This is a copy of job")
    copy = Job.objects.exclude(pk__in=[first.pk, second.pk]).get()
    expect(page).to_have_url(re.compile(rf"/admin/queues/job/{copy.pk}/change/$"))
    assert (copy.payload, copy.queue.name, copy.status) == ({"to": "bob"}, "other", "waiting")
    assert list(AuditLog.objects.order_by("id").values_list("action", "target")) == [
        ("retry_jobs", str(first.pk)),
        ("edit_job", str(second.pk)),
        ("duplicate_job", str(copy.pk)),
    ]


# Latin words a Chinese page may show: data (names of handlers, queues, users), units and
# the product's name, never a word of our interface.
LATIN_ALLOWED = {"jobplatform", "admin", "ms", "s", "P95", "ID", "JSON", "Webhook", "cron"}
# The search box's syntax, shown as examples in its help text.
LATIN_ALLOWED |= {"key:value", "to:alice@example.com", "user.id:7"}
CHROME = (
    "#header, .breadcrumbs, #content h1, #content h2, #content h3, th, label, .help, "
    ".object-tools, .messagelist, #changelist-filter summary, #changelist-filter h2, "
    "#changelist-filter h3, .actions, .paginator, .submit-row, #jp-summary, .jp-badge, "
    "#content-main caption, .module h2"
)


def english_left(page: Page, data: set[str]) -> list[str]:
    """Latin words in the page's interface text (headers, labels, buttons, messages,
    badges, filters) that are not data or allowed."""
    texts = page.evaluate(
        """(selector) => Array.from(document.querySelectorAll(selector))
          .filter((node) => !node.closest('.visually-hidden')).map((node) => {
            const copy = node.cloneNode(true);
            // Data inside the interface: values, code, links to records, times; and
            // Django's own screen-reader headers (its catalog leaves a few in English).
            copy.querySelectorAll('code, pre, option, td, .jp-data, .visually-hidden')
                .forEach((n) => n.remove());
            return (copy.innerText || '') + ' ' + Array.from(copy.querySelectorAll(
                'input[type=submit], button')).map((b) => b.value || b.innerText).join(' ');
        })""",
        CHROME,
    )
    words = set()
    for text in texts:
        words.update(w.rstrip(".:-@_") for w in re.findall(r"[A-Za-z][A-Za-z0-9_.:@-]*", text))
    hex_id = re.compile(r"^[0-9a-f]+(-[0-9a-f]+)*$")  # a job id's first characters
    return sorted(
        w for w in words if w not in LATIN_ALLOWED and w not in data and not hex_id.match(w)
    )


def test_in_chinese_no_english_of_ours_is_left(page: Page, artifacts):
    run_jobs(completed=2, failed=1)
    failed = Job.objects.get(status=JobStatus.FAILED)
    page.goto("/admin/login/?next=/admin/")
    page.select_option("#jp-language-select", "zh-hans")
    page.click("#jp-language button")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    User.objects.create_superuser("admin", "a@example.com", "pw")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    expect(page).to_have_url(re.compile(r"/admin/$"))
    data = {"default", "platform.echo", "platform.fail", "smtp", "down", str(failed.pk)[:13]}
    data |= set(Queue.objects.values_list("name", flat=True))
    for url, name in [
        ("/admin/", "index"),
        ("/admin/queues/dashboard/", "dashboard"),
        ("/admin/queues/job/", "jobs"),
        (f"/admin/queues/job/{failed.pk}/change/", "job-failed"),
        (f"/admin/queues/job/{failed.pk}/edit/", "job-edit"),
    ]:
        page.goto(url)
        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
        page.screenshot(path=artifacts / f"zh-{name}.png", full_page=True)
        left = english_left(page, data)
        assert left == [], f"{url}: {left}"
    page.goto(f"/admin/queues/job/{failed.pk}/change/")
    expect(page.locator(".object-tools [data-action=retry]")).to_have_text("重试")
    expect(page.locator(".field-status_tag .jp-badge")).to_have_text("失败")


def test_enqueue_a_job_from_the_admin(page: Page, artifacts):
    log_in(page)
    page.goto("/admin/queues/job/")
    page.locator(".object-tools a.addlink").click()
    expect(page).to_have_url(re.compile(r"/admin/queues/job/add/$"))
    page.select_option("#id_name", "platform.sleep")
    expect(page.locator("#jp-example")).to_contain_text('"seconds": 2')
    expect(page.locator("#id_payload")).to_have_value('{\n  "seconds": 2\n}')
    page.fill("#id_payload", '{"seconds": "soon"}')
    page.click("#jp-enqueue input[type=submit]")
    expect(page.locator(".errorlist.nonfield")).to_contain_text("does not match the schema")
    assert not Job.objects.exists()
    page.locator("#jp-use-example").click()
    page.fill("#id_delay", "600")
    page.screenshot(path=artifacts / "job-new.png", full_page=True)
    page.click("#jp-enqueue input[type=submit]")
    expect(page.locator(".messagelist li")).to_contain_text("was enqueued")
    job = Job.objects.get()
    expect(page).to_have_url(re.compile(rf"/admin/queues/job/{job.pk}/change/$"))
    assert (job.name, job.payload, job.status) == ("platform.sleep", {"seconds": 2}, "delayed")
    assert AuditLog.objects.get().action == "enqueue"


def test_the_job_list_fits_at_1280_px(page: Page, artifacts):
    run_jobs(completed=3, failed=2, message="smtp down: " + "x" * 300)
    page.set_viewport_size({"width": 1280, "height": 800})
    log_in(page)
    for lang in ("en", "zh-hans"):
        page.select_option("#jp-language-select", lang)
        page.click("#jp-language button")
        expect(page.locator("html")).to_have_attribute("lang", lang)
        page.goto("/admin/queues/job/")
        expect(page.locator("#result_list tbody tr")).to_have_count(5)
        page.screenshot(path=artifacts / f"jobs-1280-{lang}.png", full_page=True)
        # No column cut off: the table is no wider than the box that would scroll it.
        widths = page.evaluate(
            """() => [document.querySelector('#result_list').scrollWidth,
                      document.querySelector('#changelist .results').clientWidth,
                      document.documentElement.scrollWidth]"""
        )
        table, box, whole = widths
        assert table <= box and whole <= 1280, (lang, widths)
