"""Headless Chromium for browser tests: the system's Debian build, driven by Playwright.

Use the ``chromium`` fixture (one browser per test session; open a new context per test)::

    from tests import browser_support

    chromium = browser_support.chromium

Tests using it skip with a clear reason when Playwright's package or the browser is missing.
The browser is never downloaded: ``CHROMIUM_PATH`` (default /usr/bin/chromium) is launched.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def missing_browser_reason() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM_PATH).is_file() or not os.access(CHROMIUM_PATH, os.X_OK):
        return f"no Chromium at {CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)"
    return None


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium() -> AsyncIterator[Browser]:
    reason = missing_browser_reason()
    if reason is not None:
        pytest.skip(f"browser tests skipped: {reason}")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()
