"""Where the login page goes after signing in: a page of this site, never another one.

The server sends ``/login?next=<another site>`` back to a plain ``/login``; the page's script applies
the same rule (tests/e2e/test_login_next.py runs it in Chromium against the same cases, in
tests/support/login_next.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from contact_center.web_setup import same_site_path
from tests.support.login_next import HOSTILE_QUERIES, NEXT_VALUES, ORIGIN


@pytest.mark.parametrize(("target", "expected"), list(NEXT_VALUES.items()))
def test_same_site_path(target: str, expected: str | None) -> None:
    assert same_site_path(target, ORIGIN) == expected


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
async def test_login_page_drops_a_next_of_another_site(client: TestClient[Any, Any], query: str) -> None:
    resp = await client.get(URL(f"/login?{query}", encoded=True), allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/login"


@pytest.mark.parametrize("query", ["", "next=/tickets%3Fview%3Dmine", "next=/customers/12"])
async def test_login_page_keeps_a_next_of_this_site(client: TestClient[Any, Any], query: str) -> None:
    resp = await client.get(URL(f"/login?{query}", encoded=True), allow_redirects=False)
    assert resp.status == 200
    assert 'id="login-form"' in await resp.text()
