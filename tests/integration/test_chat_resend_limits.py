"""A widget resending after an outage: messages already stored (same client id) are acknowledged
again and cost the visitor nothing of their rate limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from contact_center.app import create_app
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import ChatMessage
from tests.conftest import Staff
from tests.support.agents import available
from tests.support.chat_visitor import VisitorSocket, chat_settings
from tests.support.clock import FakeClock

Client = TestClient[Any, Any]
LIMIT = 4


@pytest_asyncio.fixture(loop_scope="session")
async def limited_client(
    settings: Settings, uow_factory: UnitOfWorkFactory, rate_clock: FakeClock
) -> AsyncIterator[Client]:
    limits = {"messages_per_minute_per_visitor": LIMIT, "messages_per_minute_per_ip": 100}
    app = create_app(chat_settings(settings, **limits), rate_clock=rate_clock)
    async with TestClient(TestServer(app)) as client:
        yield client


async def stored(uow_factory: UnitOfWorkFactory) -> int:
    async with uow_factory() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(ChatMessage)) or 0)


async def test_resends_at_the_limit_are_acknowledged(
    limited_client: Client, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await available(limited_client, staff.red_1)
    visitor = await VisitorSocket.open(limited_client)
    await visitor.start()  # the start counts as one
    sent = {f"m{n}": await visitor.say(f"text {n}", f"m{n}") for n in range(LIMIT - 1)}
    assert all(frame["type"] == "ack" for frame in sent.values())
    # The widget lost its acknowledgements and sends everything again, twice.
    for _ in range(2):
        for client_id, first in sent.items():
            again = await visitor.say(f"text {client_id[1:]}", client_id)
            assert again["type"] == "ack", again
            assert again["message_id"] == first["message_id"]
    assert await stored(uow_factory) == LIMIT - 1
    # The resends cost nothing: a new message over the limit is still refused.
    assert (await visitor.say("one more", "m-new"))["code"] == "rate_limited"
    await visitor.close()


async def test_resends_below_the_limit_leave_the_budget_whole(
    limited_client: Client, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await available(limited_client, staff.red_1)
    visitor = await VisitorSocket.open(limited_client)
    await visitor.start()
    assert (await visitor.say("first", "a"))["type"] == "ack"
    for _ in range(LIMIT * 2):
        assert (await visitor.say("first", "a"))["type"] == "ack"
    # start + "a" spent two of the budget: two new messages still go through.
    assert (await visitor.say("second", "b"))["type"] == "ack"
    assert (await visitor.say("third", "c"))["type"] == "ack"
    assert (await visitor.say("fourth", "d"))["code"] == "rate_limited"
    assert await stored(uow_factory) == 3
    await visitor.close()
