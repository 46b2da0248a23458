"""The console's chat panel in Chromium: while the agent types a reply the visitor sees them
typing, and stops seeing it once the reply is sent."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from contact_center.routing.presence import AgentState
from tests.browser import LiveService, signed_in_page
from tests.conftest import Staff


async def next_frame(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 10) -> dict[str, Any]:
    while True:
        frame = json.loads((await ws.receive(timeout=timeout)).data)
        if frame["type"] == kind:
            return frame  # type: ignore[no-any-return]


async def test_the_visitor_sees_the_agent_typing(live: LiveService, chromium: Any, staff: Staff) -> None:
    page = await signed_in_page(chromium, live.base, staff.red_1.login)
    agent = await live.api(staff.red_1.login)
    try:
        status, _ = await agent.call("PUT", "/presence/me", {"state": AgentState.AVAILABLE.value})
        assert status == 200
    finally:
        await agent.close()
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(live.base + "/ws/chat", headers={"Origin": live.base}) as visitor,
    ):
        await visitor.send_json({"type": "hello", "token": None})
        await next_frame(visitor, "welcome")
        await visitor.send_json({"type": "start", "name": "Grace"})
        await next_frame(visitor, "assigned")

        reply = page.get_by_label("Reply to the visitor")
        await reply.press_sequentially("Let me check")
        assert (await next_frame(visitor, "typing"))["typing"] is True
        await reply.press("Enter")
        assert (await next_frame(visitor, "typing"))["typing"] is False
        said = await next_frame(visitor, "message")
        assert (said["from"], said["text"]) == ("agent", "Let me check")
    assert page.script_errors == []
