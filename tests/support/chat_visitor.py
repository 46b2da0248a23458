"""A web-chat visitor as the widget speaks to the service: the chat settings the tests run with
(an allowed origin, two chats per agent, a fast queue poll) and the visitor's socket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import ClientWebSocketResponse
from aiohttp.test_utils import TestClient

from contact_center.settings import Settings
from tests.conftest import isolated_settings
from tests.support.agent_socket import next_of

Client = TestClient[Any, Any]

ORIGIN = "http://shop.example"


def chat_settings(settings: Settings, **webchat: Any) -> Settings:
    values = {"allowed_origins": [ORIGIN], "max_chats_per_agent": 2, "queue_poll_seconds": 0.2, **webchat}
    return isolated_settings(settings).with_overrides(webchat=values)


class VisitorSocket:
    """A visitor's socket speaking the widget's protocol."""

    def __init__(self, ws: ClientWebSocketResponse, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.welcome = welcome
        self.token: str = welcome["token"]

    @classmethod
    async def open(
        cls, client: Client, token: str | None = None, origin: str = ORIGIN, **headers: str
    ) -> VisitorSocket:
        ws = await client.ws_connect("/ws/chat", headers={"Origin": origin, **headers})
        await ws.send_json({"type": "hello", "token": token})
        welcome = await next_of(ws, "welcome")
        return cls(ws, welcome)

    async def send(self, **frame: Any) -> None:
        await self.ws.send_json(frame)

    async def next(self, kind: str, timeout: float = 5) -> dict[str, Any]:
        return await next_of(self.ws, kind, timeout)

    async def start(self, **prechat: Any) -> dict[str, Any]:
        await self.send(type="start", **prechat)
        return await self.next("started")

    async def say(self, text: str, client_id: str) -> dict[str, Any]:
        await self.send(type="message", id=client_id, text=text)
        async with asyncio.timeout(5):
            while True:
                frame = json.loads((await self.ws.receive()).data)
                if frame["type"] in ("ack", "error") and frame.get("id") == client_id:
                    return frame

    async def position(self, expected: int, timeout: float = 5) -> None:
        """Wait until the queue position told is ``expected`` (the poller repeats it meanwhile)."""
        async with asyncio.timeout(timeout):
            while (await self.next("queue"))["position"] != expected:
                pass

    async def from_agent(self, timeout: float = 5) -> dict[str, Any]:
        """The next message an agent wrote (the echo of the visitor's own is skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.next("message")
                if frame["from"] == "agent":
                    return frame

    async def close(self) -> None:
        await self.ws.close()
