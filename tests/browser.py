"""Debian's Chromium driven by Playwright: the launch flags, the shared browser, signing in."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.seed import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def launch_browser() -> AsyncIterator[Browser]:
    """Chromium for a test session; outside CI a missing Chromium skips, in CI it fails."""
    if not CHROMIUM.exists():
        missing = f"Chromium is missing at {CHROMIUM} (Debian package 'chromium')"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


async def sign_in(page: Page, base: str, username: str, password: str = PASSWORD) -> None:
    await page.goto(f"{base}/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
