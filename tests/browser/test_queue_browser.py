"""Steering queues in place in a real browser: pause, resume, concurrency and rate limit
from the queue list and from the dashboard, with and without JavaScript, at 1280 and
390 px. The database is checked after each step."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from queues.models import AuditLog, Queue, QueueSnapshot
from tests.browser.test_admin_browser import english_left, log_in
from tests.helpers import wait_for

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the chromium_browser fixture reports it: a failure under CI, else a skip
    Page = expect = None

LIST = "/admin/queues/queue/"
DASHBOARD = "/admin/queues/dashboard/"
# The dashboard's queue table, by column (tests/browser/test_admin_browser.py).
PAUSED, WAITING, ACTIVE = 1, 2, 5


def limits(name: str = "default") -> tuple:
    q = Queue.objects.get(name=name)
    return (q.paused, q.concurrency, q.rate_limit_max, q.rate_limit_duration_ms)


def until(expected: tuple, name: str = "default") -> None:
    """The database reaches ``expected`` (the page answered; the commit is visible)."""
    wait_for(lambda: limits(name) == expected, timeout=10, message=f"{name} to be {expected}")


def actions() -> list[tuple]:
    return list(AuditLog.objects.order_by("id").values_list("action", "target", "username"))


def message(page: Page):
    return page.locator(".messagelist li")


def mark_page(page: Page) -> None:
    page.evaluate("() => { window.__jpSamePage = true; }")


def same_page(page: Page) -> bool:
    return page.evaluate("() => window.__jpSamePage === true")


def fits(page: Page, width: int) -> None:
    """Nothing sticks out of the page sideways (wide tables scroll in their own box)."""
    whole, wide = page.evaluate(
        """(width) => [document.documentElement.scrollWidth,
            [...document.querySelectorAll('body *')]
              .filter((el) => el.getBoundingClientRect().right > width + 1)
              .filter((el) => !el.parentElement.closest('.jp-scroll, .results'))
              .slice(0, 8)
              .map((el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className}`)]""",
        width,
    )
    assert whole <= width, (whole, wide)


def test_steer_a_queue_from_the_queue_list(page: Page, artifacts):
    default = Queue.objects.get(name="default")
    QueueSnapshot.objects.create(queue=default, counts={"active": 1}, refreshed_at=timezone.now())
    log_in(page)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(LIST)
    row = page.locator(
        "#result_list tr", has=page.locator(f'input.action-select[value="{default.pk}"]')
    )
    mark_page(page)

    row.get_by_role("button", name="Pause").click()
    expect(message(page)).to_have_text("Queue default is paused: it starts no new jobs.")
    until((True, None, None, None))
    expect(row.locator("td.field-paused img")).to_have_attribute("alt", "True")
    row.get_by_role("button", name="Resume").click()
    expect(message(page)).to_have_text("Queue default is resumed.")
    until((False, None, None, None))
    expect(row.get_by_role("button", name="Pause")).to_be_visible()

    row.locator('input[name="concurrency"]').fill("4")
    row.get_by_role("button", name="Save").click()
    expect(message(page)).to_have_text(
        "Limits of queue default saved: concurrency 4, rate limit no limit."
    )
    until((False, 4, None, None))
    expect(row.locator("td.field-active")).to_have_text("1 / 4 · 25 %")

    row.locator('input[name="rate_limit_max"]').fill("10")
    row.locator('input[name="rate_limit_duration_ms"]').fill("1000")
    row.locator('input[name="rate_limit_duration_ms"]').press("Enter")  # the form's Save
    expect(message(page)).to_have_text(
        "Limits of queue default saved: concurrency 4, rate limit 10 / 1000 ms."
    )
    until((False, 4, 10, 1000))

    # Half a rate limit: refused with the reason, the field marked, nothing changed.
    row.locator('input[name="rate_limit_duration_ms"]').fill("")
    row.get_by_role("button", name="Save").click()
    expect(message(page)).to_contain_text("The limits of queue default were not changed")
    expect(message(page)).to_have_class("error")
    expect(row.locator('input[name="rate_limit_duration_ms"]')).to_have_attribute(
        "aria-invalid", "true"
    )
    assert limits() == (False, 4, 10, 1000)
    assert same_page(page), "the queue list reloaded"

    # The admin's own actions still work beside the controls, with no unsaved-change alert.
    page.on("dialog", lambda dialog: pytest.fail(f"unexpected dialog: {dialog.message}"))
    page.locator(f'input.action-select[value="{default.pk}"]').check()
    page.select_option("select[name=action]", "pause_selected")
    page.click("button[name=index]")
    expect(message(page)).to_have_text("Pause queues: 1 queues.")
    until((True, 4, 10, 1000))
    assert actions() == [
        ("pause_queues", "default", "admin"),
        ("resume_queues", "default", "admin"),
        ("set_queue_limits", "default", "admin"),
        ("set_queue_limits", "default", "admin"),
        ("pause_queues", "default", "admin"),
    ]

    page.screenshot(path=artifacts / "queues-1280.png", full_page=True)
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=artifacts / "queues-1280-dark.png", full_page=True)
    page.emulate_media(color_scheme="light")
    fits(page, 1280)
    # Every column of the list shows at 1280 px, the controls too: no scrolling sideways.
    table, box = page.evaluate(
        """() => [document.querySelector('#result_list').scrollWidth,
                  document.querySelector('#changelist .results').clientWidth]"""
    )
    widths = page.evaluate(
        "() => [...document.querySelectorAll('#result_list thead th')].map((th) => th.offsetWidth)"
    )
    assert table <= box, (table, box, widths)

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(LIST)
    row.get_by_role("button", name="Resume").click()
    expect(message(page)).to_have_text("Queue default is resumed.")
    until((False, 4, 10, 1000))
    row.locator('input[name="concurrency"]').fill("")  # the list scrolls sideways to it
    row.get_by_role("button", name="Save").click()
    expect(message(page)).to_have_text(
        "Limits of queue default saved: concurrency no limit, rate limit 10 / 1000 ms."
    )
    until((False, None, 10, 1000))
    fits(page, 390)
    page.screenshot(path=artifacts / "queues-390.png", full_page=True)


def test_steer_a_queue_from_the_dashboard(page: Page, artifacts):
    Queue.objects.filter(name="default").update(concurrency=2)
    default = Queue.objects.get(name="default")
    QueueSnapshot.objects.create(queue=default, counts={"active": 1}, refreshed_at=timezone.now())
    log_in(page)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(DASHBOARD)
    cells = page.locator('#jp-queues tbody tr[data-queue="default"] td')
    expect(cells.nth(ACTIVE).locator(".jp-util")).to_have_text("1 / 2 · 50 %")
    mark_page(page)

    cells.nth(PAUSED).get_by_role("button", name="Pause").click()
    expect(message(page)).to_have_text("Queue default is paused: it starts no new jobs.")
    until((True, 2, None, None))
    expect(cells.nth(PAUSED).locator(".jp-state")).to_have_text("paused")
    cells.nth(PAUSED).get_by_role("button", name="Resume").click()
    expect(message(page)).to_have_text("Queue default is resumed.")
    until((False, 2, None, None))
    expect(cells.nth(PAUSED).locator(".jp-state")).to_have_text("-")

    # The limits form stays open, with what was typed, across a refresh of the rows.
    limits_form = cells.nth(ACTIVE).locator("details.jp-limits")
    limits_form.locator("summary").click()
    limits_form.get_by_label("concurrency").fill("6")
    QueueSnapshot.objects.filter(queue=default).update(counts={"active": 1, "waiting": 42})
    expect(cells.nth(WAITING)).to_have_text("42", timeout=15_000)  # the 5 s refresh came
    expect(limits_form).to_have_attribute("open", "")
    expect(limits_form.get_by_label("concurrency")).to_have_value("6")
    limits_form.get_by_label("rate limit max").fill("5")
    limits_form.get_by_label("rate limit duration ms").fill("2000")
    page.screenshot(path=artifacts / "dashboard-steer-1280.png", full_page=True)
    limits_form.get_by_role("button", name="Save").click()
    expect(message(page)).to_have_text(
        "Limits of queue default saved: concurrency 6, rate limit 5 / 2000 ms."
    )
    until((False, 6, 5, 2000))
    expect(cells.nth(ACTIVE).locator(".jp-util")).to_have_text("1 / 6 · 17 %")

    # Invalid: refused, said, and nothing changed.
    limits_form.get_by_label("rate limit max").fill("")
    limits_form.get_by_role("button", name="Save").click()
    expect(message(page)).to_contain_text("The limits of queue default were not changed")
    assert limits() == (False, 6, 5, 2000)
    assert same_page(page), "the dashboard reloaded"
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=artifacts / "dashboard-steer-1280-dark.png", full_page=True)
    page.emulate_media(color_scheme="light")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(DASHBOARD)
    cells.nth(PAUSED).get_by_role("button", name="Pause").click()
    expect(message(page)).to_have_text("Queue default is paused: it starts no new jobs.")
    until((True, 6, 5, 2000))
    limits_form.locator("summary").click()
    limits_form.get_by_label("concurrency").fill("")
    limits_form.get_by_label("rate limit max").fill("")
    limits_form.get_by_label("rate limit duration ms").fill("")
    limits_form.get_by_role("button", name="Save").click()
    expect(message(page)).to_have_text(
        "Limits of queue default saved: concurrency no limit, rate limit no limit."
    )
    until((True, None, None, None))
    fits(page, 390)
    page.screenshot(path=artifacts / "dashboard-steer-390.png", full_page=True)
    assert [a for a, *_ in actions()] == [
        "pause_queues",
        "resume_queues",
        "set_queue_limits",
        "pause_queues",
        "set_queue_limits",
    ]


def test_without_javascript_the_controls_post_and_come_back(chromium_browser, live_server):
    default = Queue.objects.get(name="default")
    context = chromium_browser.new_context(
        base_url=live_server.url, java_script_enabled=False, locale="en-US"
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        log_in(page)
        page.goto(LIST)
        row = page.locator(
            "#result_list tr", has=page.locator(f'input.action-select[value="{default.pk}"]')
        )
        row.get_by_role("button", name="Pause").click()
        expect(page).to_have_url(re.compile(r"/admin/queues/queue/$"))
        expect(message(page)).to_have_text("Queue default is paused: it starts no new jobs.")
        until((True, None, None, None))
        row.locator('input[name="concurrency"]').fill("3")
        row.get_by_role("button", name="Save").click()
        expect(message(page)).to_have_text(
            "Limits of queue default saved: concurrency 3, rate limit no limit."
        )
        until((True, 3, None, None))

        page.goto(DASHBOARD)
        cells = page.locator('#jp-queues tbody tr[data-queue="default"] td')
        cells.nth(PAUSED).get_by_role("button", name="Resume").click()
        expect(page).to_have_url(re.compile(r"/admin/queues/dashboard/$"))
        expect(message(page)).to_have_text("Queue default is resumed.")
        until((False, 3, None, None))
        details = cells.nth(ACTIVE).locator("details.jp-limits")
        details.locator("summary").click()
        details.get_by_label("rate limit max").fill("8")
        details.get_by_label("rate limit duration ms").fill("100")
        details.get_by_role("button", name="Save").click()
        expect(message(page)).to_have_text(
            "Limits of queue default saved: concurrency 3, rate limit 8 / 100 ms."
        )
        until((False, 3, 8, 100))
    finally:
        context.close()


def test_a_user_who_may_only_look_gets_no_controls(page: Page):
    from django.contrib.auth.models import Permission

    user = User.objects.create_user("olga", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_queue", "view_job"]))
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    expect(page).to_have_url(re.compile(r"/admin/$"))
    page.goto(LIST)
    expect(page.locator("#result_list tbody tr")).to_have_count(Queue.objects.count())
    expect(page.locator(".jp-steer-button")).to_have_count(0)
    page.goto(DASHBOARD)
    expect(page.locator('#jp-queues tbody tr[data-queue="default"]')).to_be_visible()
    expect(page.locator(".jp-steer-form")).to_have_count(0)


def test_in_chinese_the_pages_with_controls_leave_no_english_of_ours(page: Page):
    Queue.objects.filter(name="default").update(
        concurrency=4, rate_limit_max=2, rate_limit_duration_ms=100
    )
    log_in(page)
    page.select_option("#jp-language-select", "zh-hans")
    page.click("#jp-language button")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    data = set(Queue.objects.values_list("name", flat=True))
    page.goto(LIST)
    assert english_left(page, data) == [], LIST
    # The admin's own script strings keep their language beside the console's.
    page.locator("#result_list input.action-select").first.check()
    expect(page.locator(".action-counter")).to_contain_text("选中了")
    page.goto(DASHBOARD)
    page.locator("details.jp-limits summary").first.click()  # its labels show
    assert english_left(page, data) == [], DASHBOARD
