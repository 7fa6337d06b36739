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


# Accessibility checks: axe-core from npm (tests/browser/package.json, installed by
# ``./dev test`` with ``npm ci --prefix tests/browser``), run inside the page.
AXE_JS = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
# What fails a page: WCAG's "serious" and "critical" findings. "minor" and "moderate" ones
# (a missing landmark, say) are left to review.
AXE_FAILING_IMPACTS = ("serious", "critical")

# The console's views: width (px), colour scheme and language.
CONSOLE_WIDTHS = (1280, 390)
CONSOLE_SCHEMES = ("light", "dark")
# The app's languages (settings.LANGUAGES), with the browser locale that asks for each.
CONSOLE_LANGUAGES = {"en": "en-US", "zh-hans": "zh-CN"}


@pytest.fixture(scope="module")
def axe_script() -> Path:
    """axe.min.js; when it is missing the tests skip, or fail under CI."""
    if not AXE_JS.is_file():
        skip_unless_ci(f"axe-core is not installed ({AXE_JS}); run: npm ci --prefix tests/browser")
    return AXE_JS


def axe_violations(
    page, script: Path, *, ignore: dict[str, str] | None = None, options: dict | None = None
) -> list[dict]:
    """Run axe-core on ``page`` as it is now; its violations (axe's result objects).

    ``ignore`` maps a rule id to a CSS selector: that rule's findings on elements matching
    the selector are dropped, every other rule still runs there. Use it only for markup we
    cannot change, with a comment saying why.
    """
    page.add_script_tag(path=str(script))
    # Only violations are read: axe then skips the details of what passed, which is most
    # of its time on a long page.
    options = {"resultTypes": ["violations"], **(options or {})}
    return page.evaluate(
        """async ([options, ignore]) => {
            const result = await axe.run(document, options);
            const kept = (rule, node) => {
                const selector = ignore[rule.id];
                if (!selector) return true;
                const target = node.target[node.target.length - 1];
                const element = typeof target === 'string' ? document.querySelector(target) : null;
                return !(element && element.matches(selector));
            };
            return result.violations
                .map((rule) => ({...rule, nodes: rule.nodes.filter((node) => kept(rule, node))}))
                .filter((rule) => rule.nodes.length);
        }""",
        [options, ignore or {}],
    )


def serious_violations(violations: list[dict]) -> list[str]:
    """One line per serious or critical finding: rule id, impact, help and the elements."""
    lines = []
    for rule in violations:
        if rule.get("impact") not in AXE_FAILING_IMPACTS:
            continue
        targets = ", ".join(" ".join(map(str, node["target"])) for node in rule["nodes"])
        lines.append(f"{rule['id']} [{rule['impact']}] {rule['help']}: {targets}")
    return lines


def assert_accessible(violations: list[dict], where: str = "") -> None:
    """Fail listing every serious or critical axe violation (id, help, target nodes)."""
    lines = serious_violations(violations)
    if lines:
        pytest.fail(
            f"{where}: {len(lines)} serious/critical accessibility violation(s):\n  "
            + "\n  ".join(lines),
            pytrace=False,
        )


@pytest.fixture
def axe(axe_script):
    """``axe(page, ignore=...)``: the page's axe violations (see ``axe_violations``)."""

    def run(page, **kwargs) -> list[dict]:
        return axe_violations(page, axe_script, **kwargs)

    return run


@pytest.fixture
def console_context(chromium_browser, live_server):
    """A factory of browser contexts for one view of the console:
    ``console_context(width=390, color_scheme="dark", language="zh-hans",
    storage_state=...)``. The language is chosen as a user does, with the ``django_language``
    cookie the header's switch sets, and asked for by the browser's locale as well. Every
    context it made is closed after the test."""
    contexts = []

    def make(
        *,
        width: int = 1280,
        color_scheme: str = "light",
        language: str = "en",
        storage_state: dict | str | None = None,
    ):
        context = chromium_browser.new_context(
            base_url=live_server.url,
            viewport={"width": width, "height": 900 if width >= 1024 else 844},
            color_scheme=color_scheme,
            locale=CONSOLE_LANGUAGES[language],
            storage_state=storage_state,
        )
        context.set_default_timeout(10_000)
        context.add_cookies(
            [{"name": "django_language", "value": language, "url": live_server.url}]
        )
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
