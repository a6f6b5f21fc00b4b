"""Browser tests: Debian's Chromium, driven by pytest-playwright, against pytest-django's live server.

Playwright's sync API keeps an event loop running in the test thread, so Django would refuse ORM calls there as
"async unsafe"; the tests use the ORM only between browser calls, never concurrently with them."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

# The e2e worker: a real Celery worker reaching the company (tests/conftest.py) on the live server.
from tests.agent.e2e.conftest import worker  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "pass-word-123"
VIEWPORT = {"width": 1280, "height": 800}
# When set, the tests save screenshots of the pages they reach there (scripts/screenshots.py sets it).
SCREENSHOTS_DIR = os.environ.get("SCREENSHOTS_DIR", "")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    # Debian's Chromium, never a downloaded browser: `playwright install` cannot reach its CDN on our machines.
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (make test does it)")
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def base_url(live_server) -> str:
    # Replaces pytest-playwright's fallback fixture (a deprecated instance-method fixture that warns).
    return live_server.url


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": VIEWPORT}


@pytest.fixture(autouse=True)
def csp_violations(page: Page):
    """Every browser test runs under the Content-Security-Policy and fails on any violation Chromium reports."""
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text) if "Content Security Policy" in message.text else None)
    yield seen
    assert seen == []


@pytest.fixture
def login(live_server, page: Page):
    """Log in through the real login form, as a user with that password."""

    def log_in(username: str, *, path: str = "/") -> Page:
        page.goto(f"{live_server.url}/accounts/login/?next={path}")
        screenshot(page, "login", full_page=False)
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        return page

    return log_in


def screenshot(page: Page, name: str, *, full_page: bool = True) -> None:
    """Save the page as <SCREENSHOTS_DIR>/<name>.png when SCREENSHOTS_DIR is set; otherwise do nothing."""
    if SCREENSHOTS_DIR:
        Path(SCREENSHOTS_DIR).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS_DIR) / f"{name}.png"), full_page=full_page)
