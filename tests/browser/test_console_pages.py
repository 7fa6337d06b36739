"""Every page of the console, seen as its users see it: 1280 and 390 px wide, light and
dark, in English and Chinese. Each view is screenshotted into var/artifacts/console/
(``<page>-<lang>-<scheme>-<width>.png``, for people to look at) and checked with axe-core:
no serious or critical accessibility violation."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from queues import enqueue
from queues.engine.maintenance import promote_delayed
from queues.engine.runner import drain
from queues.metrics import refresh_snapshots
from queues.models import Job, JobStatus, Worker
from scheduling import services as schedules
from tests.browser.conftest import (
    CONSOLE_LANGUAGES,
    CONSOLE_SCHEMES,
    CONSOLE_WIDTHS,
    serious_violations,
)
from tests.browser.test_admin_browser import log_in, run_jobs
from tests.helpers import freeze_clock

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium_browser fixture reports it: a failure under CI, else a skip
    expect = None


@dataclass(frozen=True)
class ConsolePage:
    """A page of the console: its name (in the screenshots' names), its address (formatted
    with the ids ``make_console_data`` returns), an element that shows it has loaded and the axe
    findings it may have besides DJANGO_MARKUP's (rule id → CSS selector, with a reason)."""

    name: str
    url: str
    ready: str = "#content"
    axe_ignore: dict[str, str] = field(default_factory=dict)


# axe findings on Django's own admin markup, which our templates and CSS cannot change
# (rule id -> the elements it is waived on); every other rule still runs there.
DJANGO_MARKUP = {
    # AdminSplitDateTime writes "Date:" and "Time:" as bare text, not <label>s of its two
    # inputs (django/contrib/admin/templates/admin/widgets/split_datetime.html, Django
    # ticket #36203); form widgets are rendered from Django's own template directories.
    "label": "p.datetime input.vDateField, p.datetime input.vTimeField",
    # The changelist's search box is labelled by the magnifier image (alt "Search") only,
    # and described by the search help text (admin/search_form.html).
    "label-title-only": "#changelist-search #searchbar",
}

# One line per page; the matrix below multiplies it by every width, scheme and language.
PAGES = [
    ConsolePage("index", "/admin/", "#jp-summary"),
    ConsolePage("dashboard", "/admin/queues/dashboard/", "#jp-minute-chart rect"),
    ConsolePage("handlers", "/admin/queues/dashboard/handlers/", "#jp-handlers"),
    ConsolePage("jobs", "/admin/queues/job/", "#result_list tbody tr"),
    ConsolePage("job-failed", "/admin/queues/job/{failed}/change/", ".field-traceback_text"),
    ConsolePage("job-add", "/admin/queues/job/add/", "#jp-enqueue"),
    ConsolePage("schedules", "/admin/scheduling/scheduledjob/", "#result_list tbody tr"),
    ConsolePage("schedule-add", "/admin/scheduling/scheduledjob/add/", "#scheduledjob_form"),
    ConsolePage("schedule", "/admin/scheduling/scheduledjob/{schedule}/change/", "#content-main"),
    ConsolePage("queues", "/admin/queues/queue/", "#result_list tbody tr"),
]

VIEWS = [
    pytest.param(lang, scheme, width, id=f"{lang}-{scheme}-{width}")
    for lang in CONSOLE_LANGUAGES
    for scheme in CONSOLE_SCHEMES
    for width in CONSOLE_WIDTHS
]


def make_console_data() -> dict[str, str]:
    """A console with some history: jobs of every status on a few queues (failures with
    their errors, tracebacks and attempts), a schedule and a worker online. Returns the ids
    the pages' addresses name."""
    run_jobs(completed=4, failed=1, message="smtp down: connection refused by mail.example.com")
    # A job that failed after retries: three attempts, each with its traceback.
    enqueue(
        "platform.fail",
        {"message": "report template missing: monthly-invoices-2024.html"},
        queue="report-generation",
        attempts=3,
        backoff={"type": "fixed", "delay": 0},
    )
    for _ in range(3):  # each retry is delayed (by 0 ms) until the scheduler promotes it
        drain("report-generation")
        promote_delayed()
    enqueue("platform.echo", {"to": "alice@example.com"}, queue="email")
    enqueue("platform.echo", {"to": "bob@example.com"}, queue="email", delay=3600)
    parent = enqueue("platform.sleep", {"seconds": 30}, queue="data-export")
    enqueue("platform.echo", {"export": "ready"}, queue="notification", depends_on=[parent.pk])
    now = timezone.now()
    Job.objects.filter(pk=parent.pk).update(
        status=JobStatus.ACTIVE, worker="worker-1:4242:a1", started_at=now, progress=40
    )
    Worker.objects.create(
        id="worker-1:4242",
        hostname="worker-1",
        pid=4242,
        queues=["*"],
        list_key="jobplatform",
        concurrency=4,
        started_at=now - timedelta(hours=2),
        last_heartbeat=now,
        jobs_done=7,
        last_activity=now,
    )
    schedule = schedules.create_schedule(
        name="nightly-report", handler="platform.echo", cron="0 2 * * *", queue="email"
    )
    refresh_snapshots()
    failed = Job.objects.filter(status=JobStatus.FAILED, queue__name="report-generation").get()
    assert failed.attempts.count() == 3
    return {"failed": str(failed.pk), "schedule": str(schedule.pk)}


def overflowing(page) -> list[str]:
    """The outermost elements that stick out past the right edge of the window (and of
    every box that would scroll them), so that the whole page scrolls sideways."""
    return page.evaluate(
        """() => {
            const width = document.documentElement.clientWidth;
            if (document.documentElement.scrollWidth <= width) return [];
            const sticksOut = (el) => el.getBoundingClientRect().right > width + 1;
            const scrolledAway = (el) => {
                for (let box = el.parentElement; box && box !== document.body;
                     box = box.parentElement) {
                    if (getComputedStyle(box).overflowX !== 'visible' && !sticksOut(box)) {
                        return true;
                    }
                }
                return false;
            };
            const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
                + [...el.classList].map((c) => '.' + c).join('');
            return [...document.body.querySelectorAll('*')]
                .filter((el) => sticksOut(el) && !scrolledAway(el)
                    && (el.parentElement === document.body || !sticksOut(el.parentElement)))
                .map((el) => `${name(el.parentElement)} > ${name(el)} `
                    + `(right edge at ${Math.round(el.getBoundingClientRect().right)} px)`);
        }"""
    )


def cut_placeholders(page) -> list[str]:
    """Empty inputs whose placeholder is wider than the box shows ("no limi"), the
    closed ``<details>`` opened first so that their fields are measured too."""
    return page.evaluate(
        """() => {
            document.querySelectorAll('details:not([open])').forEach((d) => { d.open = true; });
            const canvas = document.createElement('canvas').getContext('2d');
            return [...document.querySelectorAll('input[placeholder]')]
                .filter((input) => !input.value && input.getClientRects().length)
                .filter((input) => {
                    const style = getComputedStyle(input);
                    canvas.font = `${style.fontStyle} ${style.fontWeight} ${style.fontSize} `
                        + style.fontFamily;
                    const room = input.clientWidth - parseFloat(style.paddingLeft)
                        - parseFloat(style.paddingRight);
                    return canvas.measureText(input.placeholder).width > room + 0.5;
                })
                .map((input) => `input[name=${input.name}] "${input.placeholder}"`);
        }"""
    )


# A string of each JavaScript catalog, translated in Chinese: Django's admin's and the
# console's. A catalog loaded after the admin's jquery.init.js (which replaces
# window.django) leaves gettext() with its strings only, the other's in English.
JS_CATALOG_PROBES = [("/admin/jsi18n/", "Today"), ("/admin/jp-jsi18n/", "just now")]


def untranslated_js_catalogs(page) -> list[str]:
    """The JavaScript catalogs the page loads whose strings gettext() does not translate."""
    return page.evaluate(
        """(probes) => probes
            .filter(([src]) => document.querySelector(`script[src*="${src}"]`))
            .filter(([, msgid]) => typeof gettext !== 'function' || gettext(msgid) === msgid)
            .map(([src, msgid]) => `${src}: gettext("${msgid}") stays English`)""",
        JS_CATALOG_PROBES,
    )


@pytest.fixture
def signed_in(page, artifacts, monkeypatch) -> tuple[dict[str, str], dict]:
    """The data, and the storage state of an admin logged in through the login page.

    Then the clock stops (for the live server too), so that views taken minutes apart
    show the same data: the worker stays online, "ago" times stay put."""
    ids = make_console_data()
    freeze_clock(monkeypatch, timezone.now())
    log_in(page)
    assert User.objects.get().is_superuser
    (artifacts / "console").mkdir(exist_ok=True)
    return ids, page.context.storage_state()


@pytest.mark.parametrize("console_page", [pytest.param(p, id=p.name) for p in PAGES])
def test_console_page_views(console_page, axe, signed_in, console_context, artifacts, subtests):
    """Each view of the page renders in its language, fits the window's width and passes
    axe. A failing view is reported on its own (``[zh-hans-dark-390]``); the others are
    still checked."""
    ids, state = signed_in
    url = console_page.url.format(**ids)
    ignore = {**DJANGO_MARKUP, **console_page.axe_ignore}
    for view in VIEWS:
        lang, scheme, width = view.values
        with subtests.test(msg=view.id):
            page = console_context(
                width=width, color_scheme=scheme, language=lang, storage_state=state
            ).new_page()
            page.goto(url)
            expect(page).not_to_have_url(re.compile(r"/login/"))
            expect(page.locator("html")).to_have_attribute("lang", lang)
            expect(page.locator(console_page.ready).first).to_be_attached()
            name = f"{console_page.name}-{lang}-{scheme}-{width}"
            page.screenshot(path=artifacts / "console" / f"{name}.png", full_page=True)
            violations = axe(page, ignore=ignore)
            # Every finding, the minor ones too, with axe's details (colours, ratios).
            (artifacts / "console" / f"{name}.axe.json").write_text(
                json.dumps(violations, indent=1, ensure_ascii=False)
            )
            problems = serious_violations(violations)
            problems += [f"wider than the window: {element}" for element in overflowing(page)]
            if lang != "en":
                problems += untranslated_js_catalogs(page)
            problems += [f"placeholder cut: {field}" for field in cut_placeholders(page)]
            if problems:
                pytest.fail(
                    f"{console_page.name} ({url}) {view.id}: {len(problems)} problem(s):\n  "
                    + "\n  ".join(problems),
                    pytrace=False,
                )
            page.context.close()
