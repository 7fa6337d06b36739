"""Real-browser fixtures: Playwright's sync API driving Debian's chromium, headless.

``playwright install`` cannot download browsers here, so the tests launch the system
chromium (``apt-get install chromium``). Under CI (``CI=true``) a missing Playwright or a
chromium that cannot be launched fails the tests; elsewhere they are skipped with a
message saying what to install.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import skip_unless_ci

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "artifacts"


def _unavailable(message: str):
    skip_unless_ci(f"browser tests: {message}")


@pytest.fixture(scope="module")
def chromium_browser():
    """One headless chromium per test module.

    While Playwright's sync API is started, the main thread has a running asyncio loop,
    so Django refuses ORM calls from the test body (and from the database flush that
    ends each transactional test) unless DJANGO_ALLOW_ASYNC_UNSAFE is set. It is set here,
    before any of these tests touches the database, and only while the browser runs, so
    the rest of the suite keeps Django's async-safety check.
    """
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"Playwright is not installed ({exc}); pip install -e '.[dev]'")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        playwright = sync_playwright().start()
        try:
            try:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            except PlaywrightError as exc:
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                _unavailable(
                    f"cannot launch {CHROMIUM} ({first_line}); "
                    "install it with: apt-get install -y chromium"
                )
            try:
                yield browser
            finally:
                browser.close()
        finally:
            playwright.stop()


@pytest.fixture
def page(chromium_browser, live_server):
    """A fresh browser context (no cookies) pointed at the live server."""
    context = chromium_browser.new_context(
        base_url=live_server.url, viewport={"width": 1400, "height": 900}, locale="en-US"
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
