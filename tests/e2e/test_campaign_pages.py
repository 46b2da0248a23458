"""The supervisor's campaign pages in a real Chromium: a supervisor creates a campaign (a Chinese
name, a disposition, an agent), loads a CSV, starts it and follows its figures on the live page
and in the CSV export; an agent working it sees it read-only; a hostile script shows as text."""

from __future__ import annotations

import csv
import io
from typing import Any

from tests.browser import LiveService, signed_in_page
from tests.conftest import Staff
from tests.integration.campaign_support import new_york
from tests.support.waiting import eventually

CALLER_ID = "+15005550006"  # the sandbox account's number
NAME = "春季回访 Spring follow-up"
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> 您好'


async def test_a_supervisor_creates_loads_starts_and_follows_a_campaign(
    live: LiveService, chromium: Any, staff: Staff
) -> None:
    page = await signed_in_page(chromium, live.base, staff.red_lead.login, "/campaigns")
    await page.click("#new-campaign")
    await page.wait_for_selector("#editor:not([hidden])")
    await page.fill("#f-name", NAME)
    await page.fill("#f-caller-id", CALLER_ID)
    await page.select_option("#f-mode", "progressive")
    await page.fill("#f-script", HOSTILE)
    await page.fill("#f-price", "0.02")
    await page.check(f"#member-boxes input[value='{staff.red_1.id}']")
    await page.click("#add-disposition")
    row = page.locator("#disposition-rows tr").last
    await row.locator("[name=code]").fill("sale")
    await row.locator("[name=label]").fill("成交 Sale")
    await row.locator("[name=converted]").check()
    await row.locator("[name=value]").fill("120")
    busy = page.locator("#retry-rows tr[data-outcome=busy]")
    await busy.locator("[name=delay_minutes]").fill("30")
    await busy.locator("[name=max_per_day]").fill("2")
    await busy.locator("[name=max_total]").fill("5")
    await page.click("#save-campaign")
    await page.wait_for_selector("#loader:not([hidden])")
    # The name round-trips through the API into the editor and the list.
    assert await page.input_value("#f-name") == NAME
    assert await page.locator("#campaign-rows .campaign-name").inner_text() == NAME

    # Edited again: a new name and hours, the disposition kept.
    renamed = NAME + " 第二轮"
    await page.fill("#f-name", renamed)
    await page.fill("#f-daily-start", "09:30")
    await page.fill("#f-daily-end", "18:00")
    await page.click("#save-campaign")
    await page.wait_for_selector(f"#editor-title:has-text('{renamed}')")
    assert await page.input_value("#f-daily-start") == "09:30"
    assert await page.locator("#disposition-rows [name=code]").input_value() == "sale"
    await page.fill("#f-name", NAME)
    await page.click("#save-campaign")
    await page.wait_for_selector(f"#editor-title:text-is('Edit {NAME}')")

    lead = await live.api(staff.red_lead.login)
    status, found = await lead.call("GET", "/campaigns")
    assert status == 200 and [c["name"] for c in found["items"]] == [NAME]
    campaign = found["items"][0]
    assert campaign["mode"] == "progressive" and campaign["agent_ids"] == [staff.red_1.id]
    status, rules = await lead.call("GET", f"/campaigns/{campaign['id']}/retry-rules")
    assert [(r["outcome"], r["delay_seconds"], r["max_per_day"], r["max_total"]) for r in rules["items"]] == [
        ("busy", 1800, 2, 5)
    ]

    table = f"display_name,phones,consent_voice\n王芳,{new_york(201)},true\nJo Doe,{new_york(202)},true\n"
    await page.set_input_files(
        "#csv-file", {"name": "list.csv", "mimeType": "text/csv", "buffer": table.encode("utf-8")}
    )
    await page.click("#load-csv button[type=submit]")
    await page.wait_for_selector("#load-report:has-text('2 added')")

    await page.click(f"#campaign-rows tr[data-campaign='{campaign['id']}'] button[data-action=start]")
    await page.wait_for_selector(f"#campaign-rows tr[data-campaign='{campaign['id']}'][data-status=running]")

    await page.click(f"#campaign-rows a[href='/campaigns/{campaign['id']}']")
    await page.wait_for_selector("body[data-ready=true] #campaign-page:not([hidden])")
    assert await page.locator("#campaign-name").inner_text() == NAME
    assert await page.locator("#campaign-status .badge").inner_text() == "running"
    assert await page.locator("#kpi-dials").inner_text() == "0"
    assert await page.locator("#abandon-rows tr").count() == 2
    assert await page.locator("#kpi-in-flight").inner_text() == "0"
    assert await page.locator("#agent-rows .empty").count() == 1
    assert "2" in await page.locator("#outcome-rows").inner_text()
    assert await page.locator("#campaign-script").inner_text() == HOSTILE
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("#campaign-script script, #campaign-script img").count() == 0

    # Pause from the live page; the figures keep refreshing.
    await page.click("#status-actions button[data-action=pause]")
    await page.wait_for_selector("#campaign-status .badge:has-text('paused')")

    async with lead.http.get(f"{live.base}/api/v1/campaigns/{campaign['id']}/results.csv") as resp:
        assert resp.status == 200 and resp.content_type == "text/csv"
        rows = dict(csv.reader(io.StringIO(await resp.text())))
    assert rows["metric"] == "value" and rows["dials"] == "0" and rows["contacts"] == "2"
    status, activity = await lead.call("GET", f"/campaigns/{campaign['id']}/activity")
    assert status == 200 and len(activity["dials_per_minute"]) == 60 and activity["dials_last_hour"] == 0
    assert activity["abandonment_30d"]["limit"] == 0.03
    async with lead.http.get(f"{live.base}/api/openapi.json") as resp:
        paths = (await resp.json())["paths"]
    assert "/api/v1/campaigns/{id}/results.csv" in paths and "/api/v1/campaigns/{id}/activity" in paths
    await lead.close()
    assert page.script_errors == []
    await page.context.close()


async def test_an_agent_sees_the_campaigns_they_work_read_only(
    live: LiveService, chromium: Any, staff: Staff
) -> None:
    lead = await live.api(staff.red_lead.login)
    status, campaign = await lead.call(
        "POST", "/campaigns", {"name": NAME, "caller_id": CALLER_ID, "script_template": HOSTILE}
    )
    assert status == 201, campaign
    status, _ = await lead.call(
        "PUT", f"/campaigns/{campaign['id']}/members", {"agent_ids": [staff.red_1.id]}
    )
    assert status == 200
    await lead.close()

    page = await signed_in_page(chromium, live.base, staff.red_1.login, "/campaigns")
    await page.wait_for_selector(f"#campaign-rows tr[data-campaign='{campaign['id']}']")
    assert await page.locator("#campaign-rows .campaign-name").inner_text() == NAME
    assert await page.locator("#new-campaign, #editor, #loader, button[data-action]").count() == 0
    assert await page.locator("nav a[href='/campaigns'][aria-current=page]").count() == 1
    await page.click(f"#campaign-rows a[href='/campaigns/{campaign['id']}']")
    await page.wait_for_selector("body[data-ready=true] #campaign-page:not([hidden])")
    await eventually(lambda: _text_is(page.locator("#kpi-dials"), "0"), timeout=10)
    assert await page.locator("#status-actions button").count() == 0
    assert await page.locator("#campaign-script").inner_text() == HOSTILE
    assert await page.evaluate("window.__pwned") is None

    agent = await live.api(staff.red_1.login)
    status, _ = await agent.call("PATCH", f"/campaigns/{campaign['id']}", {"name": "x"})
    assert status == 403
    status, _ = await agent.call("POST", f"/campaigns/{campaign['id']}/start")
    assert status == 403
    await agent.close()

    # Someone else's team's agent does not find it at all.
    other = await signed_in_page(chromium, live.base, staff.blue_1.login, f"/campaigns/{campaign['id']}")
    await other.wait_for_selector(".refusal[role=alert]")
    assert page.script_errors == [] and other.script_errors == []
    await page.context.close()
    await other.context.close()


async def _text_is(locator: Any, expected: str) -> bool:
    return bool(await locator.inner_text() == expected)
