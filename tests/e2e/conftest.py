"""End-to-end fixtures: the live service (tests/browser.py) and Chromium (tests/browser_support.py)."""

from tests.browser import live
from tests.browser_support import chromium

__all__ = ["chromium", "live"]
