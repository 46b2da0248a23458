"""Web chat without a browser: the visitor socket and the agents' REST and socket side.

Origin check, visitor token and resume, identity and screen-pop, routing (owner first, least busy,
capacity, queue), idempotent messages, typing and read both ways, leave-a-message tickets,
rate limits, size limits, blocking (visitors and, for a while, their addresses), visibility and
the transcript email outbox.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update

from contact_center.app import create_app
from contact_center.appkeys import RUNTIME
from contact_center.chat.routes import CHAT_DESK
from contact_center.events import VISITOR_BACK
from contact_center.routing.chat_load import reconcile_load
from contact_center.routing.presence import AgentState
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.events import DomainEvent
from crm_core.models import (
    Agent,
    AuditEntry,
    ChatBlockedAddress,
    ChatConversation,
    ChatMessage,
    ChatTranscriptEmail,
    Customer,
    Interaction,
    Ticket,
    utcnow,
)
from crm_core.services.chat_blocks import address_key
from crm_core.services.chat_queue import active_chats_per_agent
from crm_core.services.customers import create_customer
from crm_core.types import Channel
from tests.conftest import Session, Staff
from tests.support.agent_socket import agent_socket, next_of, nothing_of
from tests.support.agents import available
from tests.support.chat_visitor import ORIGIN, VisitorSocket, chat_settings
from tests.support.clock import FakeClock
from tests.support.sessions import signed_in
from tests.support.waiting import until

# On Linux every 127.x.y.z is this host: a client bound to another one is a visitor from elsewhere.
OTHER_ADDRESS = "127.0.0.2"
Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
FromAddress = Callable[[Client, str], Awaitable[Client]]


@pytest_asyncio.fixture(loop_scope="session")
async def make_client(
    settings: Settings, uow_factory: UnitOfWorkFactory, rate_clock: FakeClock
) -> AsyncIterator[MakeClient]:
    clients: list[Client] = []

    async def make(*, base: Settings | None = None, **webchat: Any) -> Client:
        app = create_app(base or chat_settings(settings, **webchat), rate_clock=rate_clock)
        test_client: Client = TestClient(TestServer(app))
        await test_client.start_server()
        clients.append(test_client)
        return test_client

    yield make
    for test_client in clients:
        await test_client.close()


@pytest_asyncio.fixture(loop_scope="session")
async def chat_client(make_client: MakeClient) -> Client:
    return await make_client()


@pytest_asyncio.fixture(loop_scope="session")
async def from_address() -> AsyncIterator[FromAddress]:
    """Another client of a running app, whose connections come from ``address`` (the server sees
    it as the peer address, as it would a visitor on another network)."""
    others: list[Client] = []

    async def make(client: Client, address: str) -> Client:
        connector = aiohttp.TCPConnector(local_addr=(address, 0))
        other: Client = TestClient(client.server, connector=connector)
        others.append(other)
        return other

    yield make
    for other in others:
        await other.session.close()  # not other.close(): the server is the first client's to stop


async def count(uow_factory: UnitOfWorkFactory, model: Any) -> int:
    async with uow_factory() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model)) or 0)


async def customer_owned_by(uow_factory: UnitOfWorkFactory, owner: Agent | None, email: str) -> int:
    async with uow_factory() as uow:
        customer = await create_customer(
            uow,
            None,
            region="US",
            display_name="Grace Hopper",
            emails=[email],
            owner_id=owner.id if owner else None,
        )
        await uow.commit()
    return customer.id


# --- handshake, token, resume ------------------------------------------------------------------


async def test_foreign_or_missing_origin_is_refused_at_the_handshake(
    chat_client: Client, uow_factory: UnitOfWorkFactory
) -> None:
    for headers in ({"Origin": "http://evil.example"}, {"Origin": ORIGIN + ".evil.example"}, {}):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await chat_client.ws_connect("/ws/chat", headers=headers)
        assert refused.value.status == 403
    assert await count(uow_factory, ChatConversation) == 0


async def test_the_widget_is_served_to_any_page(chat_client: Client) -> None:
    resp = await chat_client.get("/chat/widget.js")
    assert resp.status == 200
    assert "javascript" in resp.content_type
    text = await resp.text()
    assert "textContent" in text and "innerHTML" not in text
    assert (await chat_client.get("/chat/widget.css")).status == 200


async def test_conversation_both_ways_lands_on_the_known_customer(
    chat_client: Client, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    customer_id = await customer_owned_by(uow_factory, staff.red_1, "grace@example.com")
    await available(chat_client, staff.red_1, staff.red_2)
    agent = await agent_socket(chat_client, staff.red_1.login)
    visitor = await VisitorSocket.open(chat_client)
    assert visitor.welcome["mode"] == "online" and visitor.welcome["conversation"] is None
    started = await visitor.start(name="Grace", email="Grace@Example.com")
    chat_id = started["conversation"]["id"]

    assigned = await next_of(agent, "chat.assigned")
    assert assigned["conversation_id"] == chat_id
    assert assigned["card"]["customer_id"] == customer_id
    assert assigned["card"]["display_name"] == "Grace Hopper"
    assert (await visitor.next("assigned"))["agent_name"] == "Red-1"

    ack = await visitor.say("Hello, my order is late", "v-1")
    assert ack["type"] == "ack"
    got = await next_of(agent, "chat.message")
    assert got["message"]["text"] == "Hello, my order is late" and got["message"]["from"] == "visitor"

    session = await signed_in(chat_client, staff.red_1)
    resp = await session.post(f"/api/v1/chats/{chat_id}/messages", json={"text": "Let me check."})
    assert resp.status == 201, await resp.text()
    reply = await visitor.from_agent()
    assert reply["from"] == "agent" and reply["text"] == "Let me check." and reply["agent_name"] == "Red-1"

    # Typing and read state, both ways.
    await agent.send_json({"type": "chat.typing", "conversation_id": chat_id, "typing": True})
    assert (await visitor.next("typing"))["typing"] is True
    await visitor.send(type="typing", typing=True)
    typing = await next_of(agent, "chat.typing")
    assert typing["conversation_id"] == chat_id and typing["typing"] is True
    await visitor.send(type="read", up_to=reply["message_id"])
    read = await next_of(agent, "chat.read")
    assert read["reader"] == "visitor" and read["up_to"] == reply["message_id"]
    resp = await session.post(f"/api/v1/chats/{chat_id}/read", json={"up_to": ack["message_id"]})
    assert (await resp.json())["agent_read_id"] == ack["message_id"]
    assert (await visitor.next("read"))["up_to"] == ack["message_id"]

    # The agent's socket refuses typing into a chat that is not theirs.
    await agent.send_json({"type": "chat.typing", "conversation_id": chat_id + 999, "typing": True})
    assert (await next_of(agent, "error"))["for"] == "chat.typing"

    mine = await (await session.get("/api/v1/chats")).json()
    assert [c["id"] for c in mine["items"]] == [chat_id]
    transcript = await (await session.get(f"/api/v1/chats/{chat_id}/transcript")).json()
    assert [(m["sender"], m["body"]) for m in transcript["messages"]] == [
        ("visitor", "Hello, my order is late"),
        ("agent", "Let me check."),
    ]
    assert transcript["chat"]["customer_id"] == customer_id

    closed = await session.post(f"/api/v1/chats/{chat_id}/close")
    assert (await closed.json())["status"] == "closed"
    assert (await visitor.next("closed"))["by"] == "agent"
    await next_of(agent, "chat.closed")
    async with uow_factory() as uow:
        interaction = await uow.session.scalar(select(Interaction).where(Interaction.channel == Channel.CHAT))
        assert interaction is not None
        assert interaction.customer_id == customer_id and interaction.agent_id == staff.red_1.id
        assert interaction.status == "closed" and interaction.ended_at is not None
    await visitor.close()
    await agent.close()


async def test_reconnect_resumes_and_a_resend_is_not_duplicated(
    chat_client: Client, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await available(chat_client, staff.blue_1)
    visitor = await VisitorSocket.open(chat_client)
    await visitor.start()
    first = await visitor.say("first", "c-1")
    await visitor.close()

    again = await VisitorSocket.open(chat_client, token=visitor.token)
    assert again.token == visitor.token
    assert again.welcome["conversation"]["id"] is not None
    assert [m["text"] for m in again.welcome["history"]] == ["first"]
    resent = await again.say("first", "c-1")
    assert resent["message_id"] == first["message_id"]
    assert await count(uow_factory, ChatMessage) == 1

    forged = await VisitorSocket.open(chat_client, token=visitor.token[:-2] + "xx")
    assert forged.token != visitor.token and forged.welcome["conversation"] is None
    await again.close()
    await forged.close()


# --- routing -----------------------------------------------------------------------------------


async def test_owner_first_then_the_least_busy(
    chat_client: Client, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await customer_owned_by(uow_factory, staff.red_2, "owned@example.com")
    await available(chat_client, staff.red_1, staff.red_2)
    red_1 = await agent_socket(chat_client, staff.red_1.login)
    red_2 = await agent_socket(chat_client, staff.red_2.login)
    owned = await VisitorSocket.open(chat_client)
    await owned.start(email="owned@example.com")
    assert (await next_of(red_2, "chat.assigned"))["card"]["owner"]["id"] == staff.red_2.id
    # red_2 has one chat, red_1 none: the next anonymous chat goes to red_1.
    anon = await VisitorSocket.open(chat_client)
    await anon.start()
    await next_of(red_1, "chat.assigned")
    third = await VisitorSocket.open(chat_client)
    await third.start()
    assigned = await asyncio.wait_for(
        asyncio.wait(
            [asyncio.ensure_future(next_of(a, "chat.assigned")) for a in (red_1, red_2)],
            return_when=asyncio.FIRST_COMPLETED,
        ),
        5,
    )
    assert len(assigned[0]) == 1
    loads = await chat_client.app[RUNTIME].presence.get_many([staff.red_1.id, staff.red_2.id])
    # Chats do not touch presence: both stay available for calls.
    assert {p.state for p in loads.values()} == {AgentState.AVAILABLE}
    for ws in (owned, anon, third):
        await ws.close()
    for task in assigned[1]:
        task.cancel()
    await red_1.close()
    await red_2.close()


async def test_queue_position_then_assignment_when_capacity_frees(
    make_client: MakeClient, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    client = await make_client(max_chats_per_agent=1)
    await available(client, staff.red_1)
    agent = await agent_socket(client, staff.red_1.login)
    first = await VisitorSocket.open(client)
    chat_id = (await first.start())["conversation"]["id"]
    await first.next("assigned")
    second = await VisitorSocket.open(client)
    await second.start()
    assert (await second.next("queue"))["position"] == 1
    third = await VisitorSocket.open(client)
    started = await third.start()
    assert started["conversation"]["position"] == 2
    # Messages sent while waiting are kept and reach the agent with the assignment.
    await second.say("still there?", "w-1")

    await next_of(agent, "chat.assigned")
    assert (await client.post(f"/api/v1/chats/{chat_id}/close")).status == 401  # agents only
    # The agent closes it: the slot frees, the oldest waiting chat is assigned, the next moves up.
    session = await signed_in(client, staff.red_1)
    assert (await session.post(f"/api/v1/chats/{chat_id}/close")).status == 200
    assert (await second.next("assigned"))["agent_name"] == "Red-1"
    handed = await next_of(agent, "chat.assigned")
    assert [m["text"] for m in handed["history"]] == ["still there?"]
    await third.position(1)
    for ws in (first, second, third):
        await ws.close()
    await agent.close()


async def test_chat_counts_that_drifted_from_the_database_are_corrected(
    make_client: MakeClient, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    client = await make_client(max_chats_per_agent=1)
    await available(client, staff.red_1)
    first, _ = await assigned_chat(client)
    load = client.app[CHAT_DESK].get().queue.router.load
    async with uow_factory() as uow:
        truth = await active_chats_per_agent(uow.session)
    assert truth[staff.red_1.id] >= 1
    # Redis restarted empty (red_1 looks free though busy); a claim whose chat never came (blue_1).
    await load.reset({a: n for a, n in truth.items() if a != staff.red_1.id})
    await load.adjust({staff.blue_1.id: 2})
    corrections = await reconcile_load(uow_factory, load, settle_seconds=0.05)
    assert corrections == {staff.red_1.id: truth[staff.red_1.id], staff.blue_1.id: -2}
    counted = await load.loads([staff.red_1.id, staff.blue_1.id])
    assert counted == {staff.red_1.id: truth[staff.red_1.id], staff.blue_1.id: truth.get(staff.blue_1.id, 0)}
    # red_1 is full again: the next visitor waits.
    second = await VisitorSocket.open(client)
    await second.start()
    assert (await second.next("queue"))["position"] == 1
    # In agreement: nothing to correct, and no second look.
    assert await reconcile_load(uow_factory, load, settle_seconds=60) == {}
    for ws in (first, second):
        await ws.close()


async def test_a_waiting_visitor_who_left_leaves_the_queue(
    make_client: MakeClient, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    client = await make_client(max_chats_per_agent=1)
    await available(client, staff.red_1)
    first, _ = await assigned_chat(client)
    gone = await VisitorSocket.open(client)
    gone_id = (await gone.start())["conversation"]["id"]
    back = await VisitorSocket.open(client)
    back_id = (await back.start())["conversation"]["id"]
    client.app[CHAT_DESK].get().queue.abandon_after_seconds = 0.5
    await gone.close()
    await back.close()  # a reload: back before the grace period ends
    back = await VisitorSocket.open(client, token=back.token)
    await back.position(1)  # the one who left no longer counts
    async with uow_factory() as uow:
        left = await uow.session.get_one(ChatConversation, gone_id)
        stays = await uow.session.get_one(ChatConversation, back_id)
    assert (left.status.value, left.closed_by) == ("closed", "abandoned")
    assert stays.status.value == "waiting"
    await first.close()
    await back.close()


async def test_nobody_available_or_closed_hours_offer_to_leave_a_message(
    make_client: MakeClient, settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    client = await make_client()
    visitor = await VisitorSocket.open(client)
    assert visitor.welcome["mode"] == "offline"
    await visitor.send(type="start")
    await visitor.next("offline")
    await visitor.send(type="leave_message", text="Call me back please")
    assert (await visitor.next("error"))["field"] == "email"
    await visitor.send(type="leave_message", name="Ann", email="ann@example.com", text="Call me back please")
    left = await visitor.next("message_left")
    async with uow_factory() as uow:
        ticket = await uow.session.scalar(select(Ticket).where(Ticket.number == left["ticket_number"]))
        assert ticket is not None and ticket.source_channel is Channel.CHAT
        conversation = await uow.session.scalar(select(ChatConversation))
        assert conversation is not None and conversation.ticket_id == ticket.id
        customer = await uow.session.get_one(Customer, ticket.customer_id)
        assert customer.display_name == "Ann"
        interaction = await uow.session.get_one(Interaction, conversation.interaction_id)
        assert interaction.ticket_id == ticket.id and interaction.body == "Call me back please"
    # Back when someone is there: the chat joins the ticket of the message they left.
    await available(client, staff.red_1)
    await visitor.send(type="start")
    rejoined = (await visitor.next("started"))["conversation"]["id"]
    async with uow_factory() as uow:
        chat = await uow.session.get_one(ChatConversation, rejoined)
        assert chat.ticket_id == ticket.id and chat.customer_id == ticket.customer_id
        linked = await uow.session.get_one(Interaction, chat.interaction_id)
        assert linked.ticket_id == ticket.id
    await visitor.close()

    closed_hours = {day: "" for day in ("monday", "tuesday", "wednesday", "thursday", "friday")}
    closed_hours |= {"saturday": "", "sunday": ""}
    base = chat_settings(settings)
    hours = {**base.voice.hours.model_dump(), **closed_hours}
    shut = await make_client(base=base.with_overrides(voice={"hours": hours}))
    await available(shut, staff.red_1)
    late = await VisitorSocket.open(shut)
    assert late.welcome["mode"] == "offline"
    await late.close()


# --- hostile input -----------------------------------------------------------------------------


async def test_size_limit_and_control_characters(
    make_client: MakeClient, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    client = await make_client(max_message_chars=40)
    await available(client, staff.red_1)
    visitor = await VisitorSocket.open(client)
    await visitor.start()
    too_long = await visitor.say("x" * 41, "big")
    assert too_long["type"] == "error" and too_long["code"] == "invalid_input"
    empty = await visitor.say(" \x00\x07 ", "empty")
    assert empty["type"] == "error"
    ok = await visitor.say("<script>alert(1)</script>\x00", "html")
    assert ok["type"] == "ack"
    await visitor.ws.send_bytes(b"\x00\x01")
    assert (await visitor.next("error"))["code"] == "text_only"
    await visitor.ws.send_str("not json")
    assert (await visitor.next("error"))["code"] == "invalid_json"
    for deep in (
        "[" * 20_000 + "]" * 20_000,
        '{"type": "message", "id": "d", "text": ' + "[" * 40 + "]" * 40 + "}",
    ):
        await visitor.ws.send_str(deep)
        assert (await visitor.next("error"))["code"] == "invalid_json"
    await visitor.ws.send_str(json.dumps({"type": "read", "up_to": 2**70}))
    assert (await visitor.next("error"))["code"] == "invalid_json"
    await visitor.send(type="shout")
    assert (await visitor.next("error"))["code"] == "unknown_type"
    async with uow_factory() as uow:
        bodies = list(await uow.session.scalars(select(ChatMessage.body)))
    assert bodies == ["<script>alert(1)</script>"]
    await visitor.close()


async def test_rate_limits_per_visitor_and_per_address(
    make_client: MakeClient, staff: Staff, uow_factory: UnitOfWorkFactory, rate_clock: FakeClock
) -> None:
    client = await make_client(messages_per_minute_per_visitor=3, messages_per_minute_per_ip=5)
    await available(client, staff.red_1, staff.red_2)
    one = await VisitorSocket.open(client)
    await one.start()  # the start counts as one
    assert (await one.say("a", "1"))["type"] == "ack"
    assert (await one.say("b", "2"))["type"] == "ack"
    limited = await one.say("c", "3")
    assert limited["code"] == "rate_limited"
    # Another visitor behind the same address has their own budget, but the address runs out.
    two = await VisitorSocket.open(client)
    await two.start()
    assert (await two.say("d", "4"))["type"] == "ack"
    assert (await two.say("e", "5"))["code"] == "rate_limited"
    assert await count(uow_factory, ChatMessage) == 3
    rate_clock.advance(60)  # the next minute: both budgets are whole again
    assert (await one.say("f", "6"))["type"] == "ack"
    assert (await two.say("g", "7"))["type"] == "ack"
    assert await count(uow_factory, ChatMessage) == 5
    await one.close()
    await two.close()

    strict = await make_client(connections_per_minute_per_ip=2)
    await (await VisitorSocket.open(strict)).close()
    await (await VisitorSocket.open(strict)).close()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await VisitorSocket.open(strict)
    assert refused.value.status == 429
    rate_clock.advance(60)
    await (await VisitorSocket.open(strict)).close()


async def refused(client: Client, token: str | None = None) -> None:
    """Connecting as the visitor of ``token`` (None: a new visitor) is refused as blocked."""
    ws = await client.ws_connect("/ws/chat", headers={"Origin": ORIGIN})
    await ws.send_json({"type": "hello", "token": token})
    assert (await next_of(ws, "blocked"))["type"] == "blocked"
    closing = await ws.receive(timeout=5)
    assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 4403)


async def test_an_agent_blocks_a_visitor(
    chat_client: Client, staff: Staff, uow_factory: UnitOfWorkFactory, from_address: FromAddress
) -> None:
    await available(chat_client, staff.red_1)
    visitor = await VisitorSocket.open(chat_client)
    chat_id = (await visitor.start())["conversation"]["id"]
    await visitor.next("assigned")
    bystander = await VisitorSocket.open(await from_address(chat_client, OTHER_ADDRESS))
    session = await signed_in(chat_client, staff.red_1)
    resp = await session.post(f"/api/v1/chats/{chat_id}/block", json={"reason": "abuse"})
    assert resp.status == 200 and (await resp.json())["closed_by"] == "blocked"
    await visitor.next("blocked")
    closing = await visitor.ws.receive(timeout=5)
    assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 4403)

    # The same token is refused from now on, and so is a new one from the same address; visitors
    # from elsewhere are not affected.
    await refused(chat_client, visitor.token)
    await refused(chat_client)
    await bystander.start()
    await bystander.close()


# --- address blocks ----------------------------------------------------------------------------


async def address_blocks(uow_factory: UnitOfWorkFactory) -> list[ChatBlockedAddress]:
    async with uow_factory() as uow:
        return list(await uow.session.scalars(select(ChatBlockedAddress)))


def hours_left(block: ChatBlockedAddress) -> float:
    return (block.until - utcnow()).total_seconds() / 3600


async def assigned_chat(client: Client) -> tuple[VisitorSocket, int]:
    """A visitor whose chat an agent has taken, and the chat's id."""
    visitor = await VisitorSocket.open(client)
    chat_id: int = (await visitor.start())["conversation"]["id"]
    await visitor.next("assigned")
    return visitor, chat_id


async def block(session: Session, chat_id: int, **body: Any) -> None:
    resp = await session.post(f"/api/v1/chats/{chat_id}/block", json=body)
    assert resp.status == 200, await resp.text()


async def let_in(client: Client) -> VisitorSocket:
    """A new visitor, let in: welcomed, and their chat started."""
    visitor = await VisitorSocket.open(client)
    assert visitor.welcome["conversation"] is None
    await visitor.start()
    return visitor


def test_an_address_is_blocked_as_itself_or_its_ipv6_network() -> None:
    assert address_key("203.0.113.9") == "203.0.113.9"
    assert address_key("::ffff:203.0.113.9") == "203.0.113.9"
    assert address_key("2001:db8:1:2:aaaa::5") == address_key("2001:db8:1:2::ffff") == "2001:db8:1:2::"
    assert address_key("2001:db8:1:3::5") == "2001:db8:1:3::"
    assert address_key("fe80::1%eth0") == "fe80::"
    for not_an_address in ("", None, "localhost", "203.0.113.300", "127.0.0.1/8"):
        assert address_key(not_an_address) is None


async def test_a_blocked_address_refuses_new_visitors_until_the_block_ends(
    chat_client: Client, staff: Staff, uow_factory: UnitOfWorkFactory, from_address: FromAddress
) -> None:
    await available(chat_client, staff.red_1)
    visitor, chat_id = await assigned_chat(chat_client)
    await block(await signed_in(chat_client, staff.red_1), chat_id, reason="abuse")

    [row] = await address_blocks(uow_factory)
    assert (row.ip, row.reason, row.blocked_by_id, row.conversation_id) == (
        "127.0.0.1",
        "abuse",
        staff.red_1.id,
        chat_id,
    )
    assert 23.9 < hours_left(row) <= 24  # webchat.block_address_hours
    # The visitor clears their browser and comes back with a new token: refused all the same.
    await refused(chat_client)
    elsewhere = await let_in(await from_address(chat_client, OTHER_ADDRESS))
    async with uow_factory() as uow:
        assert set(await uow.session.scalars(select(ChatConversation.ip))) == {"127.0.0.1", OTHER_ADDRESS}

    # An expired block is ignored: a new visitor gets in, the blocked token still does not.
    async with uow_factory() as uow:
        await uow.session.execute(update(ChatBlockedAddress).values(until=utcnow() - timedelta(minutes=1)))
        await uow.commit()
    newcomer = await let_in(chat_client)
    await refused(chat_client, visitor.token)
    lead = await signed_in(chat_client, staff.red_lead)
    assert (await (await lead.get("/api/v1/chat-blocks")).json())["items"] == []
    assert (await lead.delete("/api/v1/chat-blocks/127.0.0.1")).status == 404
    await newcomer.close()
    await elsewhere.close()


@pytest.mark.parametrize(
    ("webchat", "body", "address_hours"),
    [
        ({}, {"address_hours": 0}, None),
        ({"block_address_hours": 0}, {}, None),
        ({"block_address_hours": 0}, {"address_hours": 2.5}, 2.5),
        ({"block_address_hours": 1}, {"address_hours": 24 * 365}, 24 * 365),
    ],
)
async def test_how_long_an_address_is_blocked_is_a_setting_and_a_choice_per_block(
    make_client: MakeClient,
    staff: Staff,
    uow_factory: UnitOfWorkFactory,
    webchat: dict[str, Any],
    body: dict[str, Any],
    address_hours: float | None,
) -> None:
    client = await make_client(**webchat)
    await available(client, staff.red_1)
    visitor, chat_id = await assigned_chat(client)
    await block(await signed_in(client, staff.red_1), chat_id, **body)

    await refused(client, visitor.token)
    blocks = await address_blocks(uow_factory)
    if address_hours is None:  # the visitor's token only: a new one from the same address gets in
        assert blocks == []
        await (await let_in(client)).close()
    else:
        assert [b.ip for b in blocks] == ["127.0.0.1"]
        assert address_hours - 0.1 < hours_left(blocks[0]) <= address_hours
        await refused(client)


async def test_bad_address_hours_are_refused(
    chat_client: Client, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await available(chat_client, staff.red_1)
    visitor, chat_id = await assigned_chat(chat_client)
    session = await signed_in(chat_client, staff.red_1)
    for raw in ("-1", "8760.5", "NaN", "Infinity", '"forever"'):
        resp = await session.post(
            f"/api/v1/chats/{chat_id}/block",
            data=f'{{"address_hours": {raw}}}',
            headers={"Content-Type": "application/json"},
        )
        assert resp.status == 422, raw
        assert "address_hours" in (await resp.json())["error"]["fields"], raw
    assert await address_blocks(uow_factory) == []
    assert (await visitor.say("still here", "m-1"))["type"] == "ack"


async def test_blocking_an_address_again_extends_the_block_and_never_shortens_it(
    make_client: MakeClient, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    client = await make_client(max_chats_per_agent=3)
    await available(client, staff.red_1)
    (_, first), (_, second), (third_visitor, third) = [await assigned_chat(client) for _ in range(3)]
    agent = await signed_in(client, staff.red_1)

    await block(agent, first, address_hours=1, reason="a")
    [row] = await address_blocks(uow_factory)
    assert 0.9 < hours_left(row) <= 1
    # Chats under way from that address go on: the address is checked when a visitor connects
    # or starts a chat, not per message.
    assert (await third_visitor.say("meanwhile", "m-1"))["type"] == "ack"

    await block(agent, second, address_hours=48, reason="b")
    [row] = await address_blocks(uow_factory)
    assert 47.9 < hours_left(row) <= 48
    assert (row.reason, row.conversation_id) == ("b", second)

    await block(agent, third, address_hours=2, reason="c")
    [row] = await address_blocks(uow_factory)
    assert 47.9 < hours_left(row) <= 48
    assert (row.reason, row.conversation_id) == ("b", second)
    async with uow_factory() as uow:
        audited = await uow.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "address-blocked").order_by(AuditEntry.id)
        )
        entries = [(a.entity_id, a.actor_id, a.changes["ip"], a.changes["reason"]) for a in audited]
    assert entries == [
        (first, staff.red_1.id, "127.0.0.1", "a"),
        (second, staff.red_1.id, "127.0.0.1", "b"),
        (third, staff.red_1.id, "127.0.0.1", "c"),
    ]


async def test_supervisors_list_and_lift_address_blocks(
    chat_client: Client, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await available(chat_client, staff.red_1)
    visitor, chat_id = await assigned_chat(chat_client)
    agent = await signed_in(chat_client, staff.red_1)
    await block(agent, chat_id, reason="spam")

    assert (await agent.get("/api/v1/chat-blocks")).status == 403
    assert (await agent.delete("/api/v1/chat-blocks/127.0.0.1")).status == 403
    assert (await chat_client.get("/api/v1/chat-blocks")).status == 401
    for supervisor in (staff.admin, staff.blue_lead):
        listed = await (await signed_in(chat_client, supervisor)).get("/api/v1/chat-blocks")
        assert listed.status == 200
        [item] = (await listed.json())["items"]
        assert item | {"until": None, "blocked_at": None} == {
            "ip": "127.0.0.1",
            "until": None,
            "blocked_at": None,
            "reason": "spam",
            "blocked_by_id": staff.red_1.id,
            "blocked_by_name": staff.red_1.display_name,
            "conversation_id": chat_id,
        }
    await refused(chat_client)

    lead = await signed_in(chat_client, staff.red_lead)
    lifted = await lead.delete("/api/v1/chat-blocks/127.0.0.1")
    assert lifted.status == 200 and (await lifted.json())["ip"] == "127.0.0.1"
    assert (await (await lead.get("/api/v1/chat-blocks")).json())["items"] == []
    assert (await lead.delete("/api/v1/chat-blocks/127.0.0.1")).status == 404
    assert (await lead.delete("/api/v1/chat-blocks/not-an-address")).status == 404
    async with uow_factory() as uow:
        lift = await uow.session.scalar(select(AuditEntry).where(AuditEntry.action == "address-unblocked"))
    assert lift is not None
    assert (lift.entity_id, lift.actor_id, lift.changes["ip"]) == (chat_id, staff.red_lead.id, "127.0.0.1")

    # A new visitor from that address gets in again; the blocked visitor's token stays blocked.
    await (await let_in(chat_client)).close()
    await refused(chat_client, visitor.token)


async def test_transcripts_follow_visibility(
    chat_client: Client, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await customer_owned_by(uow_factory, staff.red_1, "private@example.com")
    await available(chat_client, staff.red_1)
    visitor = await VisitorSocket.open(chat_client)
    chat_id = (await visitor.start(email="private@example.com"))["conversation"]["id"]
    await visitor.next("assigned")
    await visitor.say("secret", "s-1")
    for agent, status in (
        (staff.red_1, 200),
        (staff.red_lead, 200),
        (staff.admin, 200),
        (staff.blue_1, 404),
        (staff.blue_lead, 404),
    ):
        session = await signed_in(chat_client, agent)
        resp = await session.get(f"/api/v1/chats/{chat_id}/transcript")
        assert resp.status == status, agent.login
    blue = await signed_in(chat_client, staff.blue_1)
    assert (await blue.post(f"/api/v1/chats/{chat_id}/messages", json={"text": "hi"})).status == 404
    assert (await blue.post(f"/api/v1/chats/{chat_id}/block", json={})).status == 404
    red_2 = await signed_in(chat_client, staff.red_2)  # a teammate does not see red_1's own customer
    assert (await red_2.get(f"/api/v1/chats/{chat_id}/transcript")).status == 404
    assert (await chat_client.get(f"/api/v1/chats/{chat_id}/transcript")).status == 401
    await visitor.close()


async def test_the_transcript_is_queued_for_email_once_the_chat_ends(
    chat_client: Client, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await available(chat_client, staff.red_1)
    visitor = await VisitorSocket.open(chat_client)
    chat_id = (await visitor.start(name="Lin", email="lin@example.com", transcript=True))["conversation"][
        "id"
    ]
    await visitor.next("assigned")
    await visitor.say("Where is my parcel?", "t-1")
    session = await signed_in(chat_client, staff.red_1)
    await session.post(f"/api/v1/chats/{chat_id}/messages", json={"text": "On its way."})
    assert await count(uow_factory, ChatTranscriptEmail) == 0
    await visitor.send(type="close")
    await visitor.next("closed")
    await session.post(f"/api/v1/chats/{chat_id}/close")
    async with uow_factory() as uow:
        emails = list(await uow.session.scalars(select(ChatTranscriptEmail)))
    assert len(emails) == 1
    assert emails[0].to_address == "lin@example.com" and emails[0].status == "pending"
    assert "Lin: Where is my parcel?" in emails[0].body and "Red-1: On its way." in emails[0].body
    # Asking again after the chat changes nothing (one email per conversation).
    await visitor.send(type="transcript", email="lin@example.com")
    assert (await visitor.next("transcript"))["queued"] is False
    await visitor.close()


# --- several instances -------------------------------------------------------------------------


@pytest.mark.needs_redis
async def test_agent_on_one_instance_visitor_on_another(
    make_client: MakeClient, settings: Settings, staff: Staff
) -> None:
    shared = chat_settings(settings)
    one = await make_client(base=shared)
    two = await make_client(base=shared)
    await available(one, staff.red_1)
    agent = await agent_socket(one, staff.red_1.login)
    visitor = await VisitorSocket.open(two)
    chat_id = (await visitor.start())["conversation"]["id"]
    await next_of(agent, "chat.assigned")
    await visitor.say("from instance two", "x-1")
    assert (await next_of(agent, "chat.message"))["message"]["text"] == "from instance two"
    await agent.send_json({"type": "chat.typing", "conversation_id": chat_id, "typing": True})
    assert (await visitor.next("typing"))["typing"] is True
    await nothing_of(agent, "error")
    await visitor.close()
    await agent.close()


@pytest.mark.needs_redis
async def test_a_waiting_visitor_who_moved_to_another_instance_keeps_their_place(
    make_client: MakeClient, settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    shared = chat_settings(settings, max_chats_per_agent=1)
    one = await make_client(base=shared)
    two = await make_client(base=shared)
    await available(one, staff.red_1)
    first, _ = await assigned_chat(one)
    moving = await VisitorSocket.open(one)
    moving_id = (await moving.start())["conversation"]["id"]
    assert (await moving.next("queue"))["position"] == 1
    async with uow_factory() as uow:
        visitor_id = (await uow.session.get_one(ChatConversation, moving_id)).visitor_id
    queue = one.app[CHAT_DESK].get().queue
    heard_by_one: list[DomainEvent] = []

    async def record(event: DomainEvent) -> None:
        heard_by_one.append(event)

    one.app[RUNTIME].bus.subscribe(record)  # after the desk's own subscriber
    await moving.close()  # left instance one...
    await until(lambda: not queue.connected(visitor_id), what="instance one sees the visitor leave")
    moved = await VisitorSocket.open(two, token=moving.token)  # ...and came back on instance two
    assert moved.welcome["conversation"]["id"] == moving_id
    await until(
        lambda: any(e.name == VISITOR_BACK and e.payload["visitor_id"] == visitor_id for e in heard_by_one),
        what="instance one hears the visitor is back",
    )
    queue.abandon_after_seconds = 0  # the grace period is over
    assert await queue.sweep_abandoned() == 0
    async with uow_factory() as uow:
        assert (await uow.session.get_one(ChatConversation, moving_id)).status.value == "waiting"
    await moved.position(1)
    for ws in (first, moved):
        await ws.close()


async def test_behind_a_trusted_proxy_the_forwarded_address_is_the_one_blocked(
    make_client: MakeClient, settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    proxied = chat_settings(settings).with_overrides(server={"trusted_proxies": ["127.0.0.1"]})
    client = await make_client(base=proxied)
    await available(client, staff.red_1)

    def via_proxy(address: str) -> dict[str, str]:
        return {"X-Forwarded-For": f"198.51.100.1, {address}"}  # the left one is the client's word

    visitor = await VisitorSocket.open(client, **via_proxy("203.0.113.9"))
    chat_id = (await visitor.start())["conversation"]["id"]
    await visitor.next("assigned")
    async with uow_factory() as uow:
        assert (await uow.session.get_one(ChatConversation, chat_id)).ip == "203.0.113.9"
    await block(await signed_in(client, staff.red_1), chat_id, reason="abuse")
    assert [b.ip for b in await address_blocks(uow_factory)] == ["203.0.113.9"]

    ws = await client.ws_connect("/ws/chat", headers={"Origin": ORIGIN, **via_proxy("203.0.113.9")})
    await ws.send_json({"type": "hello", "token": None})
    assert (await next_of(ws, "blocked"))["type"] == "blocked"
    await ws.close()
    # Other clients behind the same proxy, and the proxy's own address, are not affected.
    neighbour = await VisitorSocket.open(client, **via_proxy("203.0.113.10"))
    await neighbour.start()
    direct = await let_in(client)
    for ws_ in (neighbour, direct):
        await ws_.close()
