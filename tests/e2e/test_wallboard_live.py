"""The supervisors' wallboard in a real Chromium: an agent's presence change shows at once, the
supervisor changes an agent's presence, and only the supervisor's own team is on the board."""

from __future__ import annotations

from typing import Any

from tests.browser import LiveService, signed_in_page
from tests.conftest import Staff
from tests.support.waiting import eventually


async def test_the_wallboard_follows_presence_live_and_the_supervisor_can_change_it(
    live: LiveService,
    chromium: Any,
    staff: Staff,
) -> None:
    board = await signed_in_page(chromium, live.base, staff.red_lead.login, "/wallboard")
    await board.wait_for_selector("#connection.online")
    red_1_row = board.locator(f"#agent-rows tr[data-agent='{staff.red_1.id}']")
    assert await red_1_row.get_attribute("data-state") == "offline"
    assert await board.locator(f"#agent-rows tr[data-agent='{staff.blue_1.id}']").count() == 0
    assert await board.locator(".kpi #kpi-offered").inner_text() == "0"

    # The agent changes presence in their own console; the board follows without a reload.
    console = await signed_in_page(chromium, live.base, staff.red_1.login)
    await console.get_by_label("Away").check()
    await board.wait_for_selector(
        f"#agent-rows tr[data-agent='{staff.red_1.id}'][data-state=away]", timeout=15_000
    )
    await console.get_by_label("Available").check()
    await board.wait_for_selector(
        f"#agent-rows tr[data-agent='{staff.red_1.id}'][data-state=available]", timeout=15_000
    )

    # The supervisor puts the agent away; the agent's console shows it.
    await board.select_option(f"#agent-rows select[data-agent='{staff.red_1.id}']", "away")
    await console.wait_for_selector("#presence-state .badge-away", timeout=15_000)
    red = await live.api(staff.red_1.login)
    status, presence = await red.call("GET", "/presence/me")
    await red.close()
    assert (status, presence["state"]) == (200, "away")

    # A caller nobody can take waits in the queue, and the board shows it.
    await live.sandbox_call("+12025550190")
    queued = board.locator("#queue-rows tr td:first-child")
    await queued.first.wait_for()
    await eventually(lambda: _text_is(board.locator("#kpi-queued"), "1"), timeout=5)
    await eventually(lambda: _text_is(board.locator("#kpi-offered"), "1"), timeout=25)
    assert board.script_errors == [] and console.script_errors == []
    await board.context.close()
    await console.context.close()


async def _text_is(locator: Any, expected: str) -> bool:
    return bool(await locator.inner_text() == expected)


async def test_the_wallboard_is_refused_to_agents(
    live: LiveService,
    chromium: Any,
    staff: Staff,
) -> None:
    page = await signed_in_page(chromium, live.base, staff.red_1.login, "/wallboard")
    await page.wait_for_selector(".refusal[role=alert]")
    assert await page.locator("nav a[href='/wallboard']").count() == 0
    await page.context.close()
