"""The console's refusals and recovery: another team's customer is refused on the page and by the
API, and the console comes back by itself after the service restarts on the same port."""

from __future__ import annotations

from typing import Any

from tests.browser import LiveService, signed_in_page
from tests.conftest import Staff

CALLER = "+12025550161"


async def test_an_agent_is_refused_another_teams_customer_on_the_page_and_by_the_api(
    live: LiveService,
    chromium: Any,
    staff: Staff,
) -> None:
    admin = await live.api("admin")
    status, customer = await admin.call(
        "POST", "/customers", {"display_name": "Blue Team Client", "owner_id": staff.blue_1.id}
    )
    await admin.close()
    assert status == 201, customer

    red = await live.api(staff.red_1.login)
    status, body = await red.call("GET", f"/customers/{customer['id']}")
    await red.close()
    assert status in (403, 404) and body["error"]["code"] in ("forbidden", "not_found")

    page = await signed_in_page(chromium, live.base, staff.red_1.login, f"/customers/{customer['id']}")
    refusal = page.locator(".refusal[role=alert]")
    await refusal.wait_for()
    assert await refusal.locator("h1").inner_text() == "You cannot open this customer"
    assert "Blue Team Client" not in await page.content()
    assert page.script_errors == []
    await page.context.close()

    blue = await signed_in_page(chromium, live.base, staff.blue_1.login, f"/customers/{customer['id']}")
    assert await blue.locator("#customer-name").inner_text() == "Blue Team Client"
    await blue.context.close()


async def test_the_console_shows_it_is_offline_and_recovers_after_a_restart(
    live: LiveService,
    chromium: Any,
    staff: Staff,
) -> None:
    page = await signed_in_page(chromium, live.base, staff.red_2.login)
    await page.wait_for_selector("#connection.online")
    assert await page.locator("#offline-banner").is_hidden()

    await live.stop()
    await page.wait_for_selector("#offline-banner:not([hidden])", timeout=5000)
    assert "Offline" in await page.locator("#offline-banner").inner_text()
    assert await page.locator("#connection").inner_text() == "Offline"

    await live.start()
    await page.wait_for_selector("#connection.online", timeout=20000)
    assert await page.locator("#offline-banner").is_hidden()

    # Fully working again, without a reload: go available and take a call.
    await page.get_by_label("Available").check()
    await page.wait_for_selector("#presence-state .badge-available")
    await live.sandbox_call(CALLER)
    await page.wait_for_selector(f"form.new-customer .number:has-text('{CALLER}')", timeout=5000)
    assert page.script_errors == []
    await page.context.close()
