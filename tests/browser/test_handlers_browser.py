"""The per-handler metrics page in a real browser: a handler's row, its link to the job
list, the window selector, and the layout at 1,280 and 390 px (light and dark)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from queues import enqueue_many, metrics
from queues.engine.runner import drain
from tests.browser.test_admin_browser import log_in
from tests.helpers import freeze_clock

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the chromium_browser fixture reports it: a failure under CI, else a skip
    Page = expect = None

NOW = datetime(2026, 12, 4, 12, 30, tzinfo=UTC)
COLUMNS = ["Runs", "Failures", "Failure rate", "Average", "p50", "p95", "p99"]


def cell(page: Page, handler: str, column: str):
    # The row's first cell is the handler's name (a th); the figures follow in order.
    return page.locator(f'#jp-handler-table tr[data-handler="{handler}"] td').nth(
        COLUMNS.index(column)
    )


def dark(page: Page) -> None:
    """Wait until the admin's dark colours are on (its links fade in over 0.15 s): the
    window pills and the chart take the dark theme's background."""
    expect(page.locator(".jp-windows a").last).to_have_css("background-color", "rgb(18, 18, 18)")
    expect(page.locator(".jp-spark").first).to_have_css("background-color", "rgb(18, 18, 18)")


def test_a_handlers_row_its_link_and_the_layout(page: Page, artifacts, monkeypatch):
    freeze_clock(monkeypatch, NOW)  # the runner's and the live server's clock alike
    enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(3)])
    enqueue_many([{"name": "platform.fail", "payload": {"permanent": True}}])
    drain("default")
    metrics.flush(force=True)
    log_in(page)

    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/admin/queues/dashboard/handlers/?window=1h")
    expect(page.locator("h1")).to_have_text("Handler metrics")
    expect(page.locator(".breadcrumbs")).to_have_text("Home › Queues › Dashboard › Handler metrics")
    expect(page.locator(".jp-windows a.jp-current")).to_have_text("1 h")
    expect(page.locator("#jp-handler-table tbody tr")).to_have_count(2)
    expect(page.locator("#jp-handler-table tbody tr").first).to_have_attribute(
        "data-handler", "platform.echo"
    )
    expect(cell(page, "platform.echo", "Runs")).to_have_text("3")
    expect(cell(page, "platform.echo", "Failures")).to_have_text("0")
    expect(cell(page, "platform.fail", "Failure rate")).to_have_text("100.0 %")
    expect(cell(page, "platform.echo", "p50")).to_have_text("≤ 1 ms")  # the clock stood still
    expect(page.locator('tr[data-handler="platform.fail"] .jp-spark-failures')).to_have_count(1)
    page.screenshot(path=artifacts / "handlers-1280.png", full_page=True)
    page.emulate_media(color_scheme="dark")
    dark(page)
    page.screenshot(path=artifacts / "handlers-1280-dark.png", full_page=True)
    page.emulate_media(color_scheme="light")
    table, box, whole = page.evaluate(
        """() => [document.querySelector('#jp-handler-table').scrollWidth,
                  document.querySelector('#jp-handlers .jp-scroll').clientWidth,
                  document.documentElement.scrollWidth]"""
    )
    assert table <= box and whole <= 1280, (table, box, whole)

    # A phone: each handler stacks into a card, nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(cell(page, "platform.echo", "Runs")).to_be_visible()
    page.screenshot(path=artifacts / "handlers-390.png", full_page=True)
    page.emulate_media(color_scheme="dark")
    dark(page)
    page.screenshot(path=artifacts / "handlers-390-dark.png", full_page=True)
    page.emulate_media(color_scheme="light")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390

    # The window is in the URL: choosing one is a link, and bookmarkable.
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("link", name="72 h", exact=True).click()
    expect(page).to_have_url(re.compile(r"/admin/queues/dashboard/handlers/\?window=72h$"))
    expect(page.locator(".jp-windows a.jp-current")).to_have_text("72 h")

    page.locator('tr[data-handler="platform.echo"] th a').click()
    expect(page).to_have_url(re.compile(r"/admin/queues/job/\?name=platform\.echo$"))
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    expect(page.locator("#result_list tbody td.field-name")).to_have_text(["platform.echo"] * 3)
