"""Tickets in a real Chromium: the inbox's views, filters and search, "next ticket" by keyboard,
and the ticket page's notes and status changes; customer data is shown as text, never run."""

from __future__ import annotations

import re
from typing import Any

from tests.browser import LiveService, signed_in_page
from tests.conftest import Staff
from tests.support.waiting import eventually

HOSTILE_NAME = '<img src=x onerror="window.pwned=1">Eve'


async def test_inbox_next_ticket_notes_and_status(live: LiveService, chromium: Any, staff: Staff) -> None:
    admin = await live.api("admin")
    try:
        status, customer = await admin.call(
            "POST", "/customers", {"display_name": HOSTILE_NAME, "owner_id": staff.red_1.id}
        )
        assert status == 201, customer
        tickets = {}
        for subject, priority, assignee in [
            ("Router keeps rebooting", "urgent", staff.red_1.id),
            ("Update billing address", "low", staff.red_1.id),
            ("Waiting in the queue", "normal", None),
        ]:
            status, ticket = await admin.call(
                "POST",
                "/tickets",
                {
                    "customer_id": customer["id"],
                    "subject": subject,
                    "priority": priority,
                    "assignee_id": assignee,
                },
            )
            assert status == 201, ticket
            tickets[subject] = ticket
    finally:
        await admin.close()

    page = await signed_in_page(chromium, live.base, staff.red_1.login, "/tickets")
    rows = page.locator("#ticket-rows tr[data-ticket]")
    await rows.first.wait_for()
    assert await rows.count() == 2
    await page.keyboard.press("/")
    await page.keyboard.type("rebooting")
    await eventually(lambda: _count_is(rows, 1), timeout=5)
    assert "Router keeps rebooting" in await rows.first.inner_text()
    await page.fill("#filter-q", "")
    await page.click(".tabs button[data-view=unassigned]")
    await page.wait_for_selector("#ticket-rows tr:has-text('Waiting in the queue')")
    assert "view=unassigned" in page.url
    await page.select_option("#filter-priority", "urgent")
    await page.wait_for_selector("#ticket-rows td.empty")

    await page.locator("body").press("n")  # my most urgent ticket
    urgent = tickets["Router keeps rebooting"]
    await page.wait_for_url(re.compile(f"/tickets/{urgent['id']}$"))
    await page.wait_for_selector("body[data-ready=true]")
    link = page.locator(f"header a[href='/customers/{customer['id']}']")
    assert await link.inner_text() == HOSTILE_NAME  # shown as text ...
    assert await page.evaluate("window.pwned === undefined")  # ... never run
    assert await page.locator("main img").count() == 0

    await page.fill("#note-text", "Asked the customer for the router model")
    await page.click("form:has(#note-text) button[type=submit]")
    note = page.locator("#conversation li.internal")
    await note.wait_for()
    assert "Asked the customer for the router model" in await note.inner_text()
    await page.select_option("#ticket-status", "pending")
    await page.wait_for_selector("#notice:has-text('Status: pending')")
    red = await live.api(staff.red_1.login)
    status, saved = await red.call("GET", f"/tickets/{urgent['id']}")
    await red.close()
    assert (status, saved["status"]) == (200, "pending")

    await page.locator("body").press("n")  # the next one, not this one again
    await page.wait_for_url(re.compile(f"/tickets/{tickets['Update billing address']['id']}$"))
    assert page.script_errors == []
    await page.context.close()


async def _count_is(locator: Any, expected: int) -> bool:
    return bool(await locator.count() == expected)
