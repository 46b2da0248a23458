"""The agent console's socket (/ws/agent) as a signed-in agent holds it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import ClientWebSocketResponse
from aiohttp.test_utils import TestClient

from tests.support.sessions import signed_in


async def agent_socket(client: TestClient[Any, Any], login: str) -> ClientWebSocketResponse:
    """The socket of ``login``, signed in with the tests' password, past its hello."""
    session = await signed_in(client, login)
    ws = await client.ws_connect("/ws/agent", headers={"Cookie": f"cc_session={session.cookie}"})
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello"
    return ws


async def next_of(ws: ClientWebSocketResponse, kind: str, timeout: float = 5, **match: Any) -> dict[str, Any]:
    """The next message of type ``kind`` (with the fields of ``match``); others are passed over."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads((await ws.receive()).data)
            if message["type"] == kind and all(message.get(k) == v for k, v in match.items()):
                return message


async def nothing_of(ws: ClientWebSocketResponse, kind: str, wait: float = 0.3) -> None:
    """Fails if a message of type ``kind`` comes within ``wait`` seconds."""
    try:
        message = await next_of(ws, kind, timeout=wait)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected {kind}: {message}")
