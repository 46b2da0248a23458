"""Signing in and out in a real Chromium: after signing in the login page goes to its `next` only
when that is a page of this site, whatever way the link was written (the browser's rule agrees with
the server's); an open console whose session is ended elsewhere goes back to the login page."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from contact_center.web_setup import same_site_path
from tests.browser import VIEWPORT, LiveService, signed_in_page
from tests.conftest import PASSWORD, Staff
from tests.support.login_next import HOSTILE_QUERIES, NEXT_VALUES


def _landing(url: str) -> str:
    """Where a sign-in arrived: origin, path and the ``view`` it was sent to (the tickets page may
    already have written its own filters into the address when the test reads it)."""
    parts = urlsplit(url)
    view = parse_qs(parts.query).get("view")
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?view={view[0]}" if view else "")


async def test_the_browser_rule_agrees_with_the_server(live: LiveService, chromium: Any) -> None:
    context = await chromium.new_context(viewport=VIEWPORT, base_url=live.base)
    try:
        page = await context.new_page()
        await page.goto("/login")
        targets = [t.replace("http://127.0.0.1:8080", live.base) for t in NEXT_VALUES]
        in_browser = await page.evaluate(
            """async (targets) => {
                const { sameSitePath } = await import("/static/js/paths.js");
                return targets.map((t) => sameSitePath(t));
            }""",
            targets,
        )
        expected = [same_site_path(t, live.base) for t in targets]
        assert dict(zip(targets, in_browser, strict=True)) == dict(zip(targets, expected, strict=True))
    finally:
        await context.close()


async def test_signing_in_never_leaves_the_site(live: LiveService, chromium: Any, staff: Staff) -> None:
    context = await chromium.new_context(viewport=VIEWPORT, base_url=live.base)
    phished: list[str] = []

    async def phishing_site(route: Any) -> None:
        phished.append(route.request.url)
        await route.fulfill(status=200, content_type="text/html", body="<p>phished</p>")

    await context.route(re.compile(r"^https?://evil\.example(/.*)?$"), phishing_site)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        await page.goto("/login")
        cases = [(query, "/console") for query in HOSTILE_QUERIES]
        cases.append(("next=%2Ftickets%3Fview%3Dunassigned", "/tickets?view=unassigned"))
        arrived = {}
        for query, _ in cases:
            # The query is put in place by the page itself, as a crafted link would have it, so the
            # script's own check is what decides (the server refuses these links before).
            await page.goto("/login")
            await page.evaluate("(search) => history.replaceState(null, '', `/login?${search}`)", query)
            await page.fill("#login", staff.red_1.login)
            await page.fill("#password", PASSWORD)
            await page.click("#login-form button[type=submit]")
            await page.wait_for_url(lambda url: not url.startswith(f"{live.base}/login"))
            await page.wait_for_load_state()
            arrived[query] = _landing(page.url)
        assert arrived == {query: f"{live.base}{path}" for query, path in cases}
        assert phished == []
        assert errors == []
    finally:
        await context.close()


async def test_an_open_console_goes_to_sign_in_when_the_password_changes(
    live: LiveService, chromium: Any, staff: Staff
) -> None:
    page = await signed_in_page(chromium, live.base, staff.red_1.login, "/console")
    try:
        admin = await live.api("admin")
        try:
            status, body = await admin.call(
                "PATCH", f"/agents/{staff.red_1.id}", {"password": "a brand new passphrase"}
            )
            assert status == 200, body
        finally:
            await admin.close()
        # Its live socket is closed; the page finds the session gone and asks to sign in again.
        await page.wait_for_url(re.compile(r"/login\?next=%2Fconsole$"), timeout=10_000)
        assert page.script_errors == []
    finally:
        await page.context.close()
