"""Where the login page goes after signing in: a page of this site, never another one.

The server sends ``/login?next=<another site>`` back to a plain ``/login``; the page's script applies
the same rule (tests/e2e/test_login_next.py runs it in Chromium against the cases below).
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from contact_center.web_setup import same_site_path

ORIGIN = "http://127.0.0.1:8080"

# `next` as a browser reads it from the query (decoded) -> where the login page may go.
NEXT_VALUES: dict[str, str | None] = {
    "/console": "/console",
    "/tickets?view=unassigned#top": "/tickets?view=unassigned#top",
    "/customers/12": "/customers/12",
    "tickets": "/tickets",
    "/%5Cevil.example/phish": "/%5Cevil.example/phish",  # a literal "%5C" stays in the path
    "/%2F%2Fevil.example": "/%2F%2Fevil.example",
    f"{ORIGIN}/tickets": "/tickets",
    "/\\evil.example/phish": None,
    "/\t/evil.example/phish": None,
    "/\n/evil.example": None,
    "/\\/evil.example": None,
    "\\\\evil.example": None,
    "//evil.example": None,
    "///evil.example": None,
    " //evil.example": None,
    "https://evil.example": None,
    "http://evil.example/console": None,
    "http:///evil.example": None,
    "http:\\\\evil.example": None,
    "https:evil.example": None,
    f"{ORIGIN}@evil.example/": None,
    f"{ORIGIN}//evil.example": None,
    "/.//evil.example": None,
    "//[::1": None,
    "javascript:alert(document.domain)": None,
    "data:text/html,<script>alert(1)</script>": None,
}

# The query strings of the finding, as an attacker writes them in a link.
HOSTILE_QUERIES = [
    "next=/%5Cevil.example/phish",
    "next=/%09/evil.example/phish",
    "next=/%5C/evil.example/phish",
    "next=//evil.example",
    "next=https://evil.example",
    "next=/%2F%2Fevil.example",
    "next=%2F%2Fevil.example",
    "next=%20%2F%2Fevil.example",
    "next=javascript:alert(1)",
]


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
