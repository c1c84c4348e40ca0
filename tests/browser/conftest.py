"""What every browser test shares: Debian's Chromium under playwright, one per session.

Playwright drives /usr/bin/chromium (``make system-deps``) and never downloads
a browser of its own. One browser serves the whole session (each test opens
its own pages or contexts), which saves a start of Chromium per module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (Debian package chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def sign_in(page, site, user: str = "shifter") -> None:
    """Sign in through the login form; the page ends on the run list."""
    page.goto(site.url + "/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", site.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/runs")
