"""Chat messages stored while the event bus is down reach the other end once it is back.

Two instances share the database and a Redis of the test's own. The agent's socket is on one, the
visitor's on the other. Redis stops (or one instance loses it, so that its publishes fail after
their commit); the visitor keeps writing (each message is acknowledged, or resent as the widget
does after an error) and the agent answers. Within ten seconds of Redis coming back every message
is on the other end's socket, each once.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from contact_center.app import create_app
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import ChatConversation, ChatSender
from crm_core.services import chat
from tests.conftest import Staff
from tests.support.agent_socket import agent_socket, next_of
from tests.support.agents import available
from tests.support.chat_visitor import VisitorSocket, chat_settings
from tests.support.sessions import Session, signed_in
from tests.support.spare_redis import SpareRedis
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually, until

Client = TestClient[Any, Any]
# How soon after Redis is back every message must be on the other end.
RECOVERY_SECONDS = 10.0
MESSAGES = 12


@pytest_asyncio.fixture(loop_scope="session")
async def own_redis() -> AsyncIterator[SpareRedis]:
    redis = SpareRedis()
    await redis.start()
    try:
        yield redis
    finally:
        await redis.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def make_instance(
    settings: Settings, uow_factory: UnitOfWorkFactory
) -> AsyncIterator[Callable[[str | None], Awaitable[Client]]]:
    """An instance of the service on the test's database and the Redis at the URL given."""
    clients: list[Client] = []
    prefix = f"{settings.redis.key_prefix}outage:"

    async def make(redis_url: str | None) -> Client:
        shared = chat_settings(settings)
        if redis_url is not None:
            shared = shared.with_overrides(redis={"url": redis_url, "key_prefix": prefix})
        client: Client = TestClient(TestServer(create_app(shared)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@dataclass
class Frames:
    """What a socket receives, read in the background."""

    ws: ClientWebSocketResponse
    frames: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self) -> Frames:
        self.task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is WSMsgType.TEXT and message.data != "pong":
                self.frames.append(json.loads(message.data))

    def message_ids(self, kind: str, sender: str | None = None) -> Counter[int]:
        """How many times each message id came in frames of type ``kind``."""
        found: Counter[int] = Counter()
        for frame in self.frames:
            if frame.get("type") != kind:
                continue
            line = frame.get("message", frame)
            if sender is None or line.get("from") == sender:
                found[int(line["message_id"])] += 1
        return found

    async def stop(self) -> None:
        await self.ws.close()
        if self.task is not None:
            await self.task


async def _chat(
    agent_side: Client, visitor_side: Client, staff: Staff
) -> tuple[ClientWebSocketResponse, Session, VisitorSocket, int]:
    """Red-1's socket and session on ``agent_side``, and a visitor on ``visitor_side`` whose chat
    Red-1 has taken."""
    await available(agent_side, staff.red_1)
    agent = await agent_socket(agent_side, staff.red_1.login)
    session = await signed_in(agent_side, staff.red_1)
    visitor = await VisitorSocket.open(visitor_side)
    chat_id = (await visitor.start())["conversation"]["id"]
    await next_of(agent, "chat.assigned", conversation_id=chat_id)
    await visitor.next("assigned")
    return agent, session, visitor, chat_id


async def _say(visitor: VisitorSocket, frames: Frames, text: str, client_id: str) -> dict[str, Any]:
    """Send a message as the widget does; the service's answer to it (an ack or an error)."""
    seen = len(frames.frames)
    await visitor.send(type="message", id=client_id, text=text)

    def answer() -> dict[str, Any] | None:
        for frame in frames.frames[seen:]:
            if frame.get("type") in ("ack", "error") and frame.get("id") == client_id:
                return frame
        return None

    found: dict[str, Any] = await until(answer, 5, f"an answer to {client_id}")
    return found


async def _write_through_outage(
    visitor: VisitorSocket, frames: Frames, session: Session, chat_id: int
) -> tuple[dict[str, int], list[int], list[str]]:
    """The visitor's messages and the agent's replies while the bus is down: the stored visitor
    messages (client id to message id), the agent's message ids, and the visitor's messages the
    service could not take (to send again)."""
    stored: dict[str, int] = {}
    refused: list[str] = []
    for i in range(MESSAGES):
        client_id = f"outage-{i}"
        answer = await _say(visitor, frames, f"message {i}", client_id)
        if answer["type"] == "ack":
            stored[client_id] = answer["message_id"]
        else:
            assert answer["code"] == "unavailable", answer
            refused.append(client_id)
    replies = []
    for i in range(2):
        resp = await session.post(f"/api/v1/chats/{chat_id}/messages", json={"text": f"reply {i}"})
        assert resp.status == 201, await resp.text()
        replies.append((await resp.json())["id"])
    return stored, replies, refused


async def _resend(visitor: VisitorSocket, frames: Frames, refused: list[str], stored: dict[str, int]) -> None:
    """What the widget does with the messages the service could not take: send them again."""

    async def taken() -> bool:
        for client_id in list(refused):
            answer = await _say(visitor, frames, f"message {client_id.removeprefix('outage-')}", client_id)
            if answer["type"] == "ack":
                stored[client_id] = answer["message_id"]
                refused.remove(client_id)
        return not refused

    await eventually(taken, RECOVERY_SECONDS, "the visitor's messages are taken again")


async def _every_message_once(
    agent: Frames, visitor: VisitorSocket, visitor_frames: Frames, stored: dict[str, int], replies: list[int]
) -> None:
    wanted = set(stored.values())
    await until(
        lambda: wanted <= set(agent.message_ids("chat.message", "visitor")),
        RECOVERY_SECONDS,
        "every visitor message reaches the agent's socket",
    )
    await until(
        lambda: set(replies) <= set(visitor_frames.message_ids("message", "agent")),
        RECOVERY_SECONDS,
        "the agent's replies reach the visitor's socket",
    )
    # Anything sent twice would be on its way by now: a last message, sent live, comes after it.
    last = await _say(visitor, visitor_frames, "all good now", "after")
    await until(lambda: last["message_id"] in agent.message_ids("chat.message"), 5, "the last message")
    await asyncio.sleep(0.5)
    seen = agent.message_ids("chat.message", "visitor")
    assert {message_id: seen[message_id] for message_id in wanted} == dict.fromkeys(wanted, 1)
    answers = visitor_frames.message_ids("message", "agent")
    assert dict(answers) == dict.fromkeys(replies, 1)


async def test_messages_written_while_redis_is_down_reach_the_other_end_once_it_is_back(
    own_redis: SpareRedis, make_instance: Callable[[str | None], Awaitable[Client]], staff: Staff
) -> None:
    one, two = await make_instance(own_redis.url), await make_instance(own_redis.url)
    ws, session, visitor, chat_id = await _chat(one, two, staff)
    agent, heard = Frames(ws).start(), Frames(visitor.ws).start()

    await own_redis.stop()
    stored, replies, refused = await _write_through_outage(visitor, heard, session, chat_id)
    assert not set(agent.message_ids("chat.message")) & set(stored.values())  # nothing got through
    await own_redis.start()

    await _resend(visitor, heard, refused, stored)
    assert len(stored) == MESSAGES
    await _every_message_once(agent, visitor, heard, stored, replies)
    await agent.stop()
    await heard.stop()


async def test_messages_whose_publish_failed_on_one_instance_reach_the_agent_on_another(
    own_redis: SpareRedis, make_instance: Callable[[str | None], Awaitable[Client]], staff: Staff
) -> None:
    proxy = TcpProxy("127.0.0.1", own_redis.port)  # instance two's way to Redis, and only its
    await proxy.start()
    one = await make_instance(own_redis.url)
    two = await make_instance(f"redis://127.0.0.1:{proxy.port}/0")
    try:
        ws, session, visitor, chat_id = await _chat(one, two, staff)
        agent, heard = Frames(ws).start(), Frames(visitor.ws).start()

        await proxy.stop()  # the visitor's instance can publish nothing; the agent's hears Redis
        stored, replies, refused = await _write_through_outage(visitor, heard, session, chat_id)
        assert stored, "the visitor's instance stored messages it could not publish"
        await asyncio.sleep(0.5)
        assert not set(agent.message_ids("chat.message")) & set(stored.values())
        await proxy.start()

        await _resend(visitor, heard, refused, stored)
        await _every_message_once(agent, visitor, heard, stored, replies)
        await agent.stop()
        await heard.stop()
    finally:
        await proxy.stop()


async def test_a_resent_message_whose_announcement_was_lost_reaches_the_agent_once(
    make_instance: Callable[[str | None], Awaitable[Client]], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    """The message was stored but never announced (its instance went away before publishing):
    the widget, seeing no "ack", sends it again; the agent is shown it then, and only once."""
    client = await make_instance(None)
    ws, _, visitor, chat_id = await _chat(client, client, staff)
    agent = Frames(ws).start()
    async with uow_factory() as uow:  # stored, announced to nobody
        conversation = await uow.session.get_one(ChatConversation, chat_id)
        message, _ = await chat.add_message(
            uow, conversation, sender=ChatSender.VISITOR, body="are you there?", client_id="lost-1"
        )
        await uow.commit()
    heard = Frames(visitor.ws).start()
    for _ in range(2):
        answer = await _say(visitor, heard, "are you there?", "lost-1")
        assert answer["type"] == "ack" and answer["message_id"] == message.id
    await until(lambda: message.id in agent.message_ids("chat.message"), 5, "the resent message")
    last = await _say(visitor, heard, "hello?", "lost-2")
    await until(lambda: last["message_id"] in agent.message_ids("chat.message"), 5, "the next message")
    assert agent.message_ids("chat.message")[message.id] == 1
    await agent.stop()
    await heard.stop()
