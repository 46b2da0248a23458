"""One webhook delivered to two instances at once (Twilio retrying on another instance behind the
load balancer while the first is still at it): two apps on one database (and one Redis when
REDIS_URL is set) each get the same signed request at the same moment; it is stored once and
both answer as one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from xml.etree import ElementTree

import pytest_asyncio
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from contact_center.app import create_app
from contact_center.appkeys import RUNTIME
from contact_center.routing.presence import AgentState
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Customer, Interaction, SmsMessage, Ticket
from crm_core.services.customers import create_customer
from crm_core.types import Channel
from tests.conftest import PASSWORD, Staff, isolated_settings
from tests.support.twilio_webhooks import call_sid, inbound_call, inbound_text, message_sid, post_signed
from tests.support.waiting import eventually

Client = TestClient[Any, Any]
KNOWN = "+12025550143"


@pytest_asyncio.fixture(loop_scope="session")
async def instances(
    settings: Settings, uow_factory: UnitOfWorkFactory
) -> AsyncIterator[tuple[Client, Client]]:
    shared = isolated_settings(settings)  # one key prefix for both: one Redis "cluster"
    async with (
        TestClient(TestServer(create_app(shared))) as one,
        TestClient(TestServer(create_app(shared))) as two,
    ):
        yield one, two


async def both(instances: tuple[Client, Client], path: str, params: dict[str, str]) -> list[ClientResponse]:
    """The same signed request to both instances at once."""
    return list(await asyncio.gather(*(post_signed(app, path, params) for app in instances)))


async def count(uow_factory: UnitOfWorkFactory, model: Any, *where: Any) -> int:
    async with uow_factory() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def known_customer(uow_factory: UnitOfWorkFactory) -> int:
    async with uow_factory() as uow:
        customer = await create_customer(uow, None, region="US", display_name="Ada Lovelace", phones=[KNOWN])
        await uow.commit()
    return customer.id


async def test_a_text_delivered_to_both_instances_is_stored_once(
    instances: tuple[Client, Client], uow_factory: UnitOfWorkFactory
) -> None:
    customer_id = await known_customer(uow_factory)
    texts = [inbound_text(message_sid(), KNOWN, f"Where is order {n}?") for n in range(5)]
    texts.append(inbound_text(message_sid(), "+12025550177", "Hello, new here"))  # a number not on file
    for text in texts:  # each text to both instances at once, one text after another
        pair = await both(instances, "/twilio/sms/inbound", text)
        assert [r.status for r in pair] == [200, 200], [await r.text() for r in pair]

    assert await count(uow_factory, SmsMessage) == len(texts)
    async with uow_factory() as uow:
        stored = list(await uow.session.scalars(select(SmsMessage.message_sid)))
    assert sorted(stored) == sorted(t["MessageSid"] for t in texts)
    assert await count(uow_factory, Interaction, Interaction.channel == Channel.SMS) == len(texts)
    assert await count(uow_factory, Customer) == 2  # the new number became one customer
    # One open SMS ticket per customer, whichever instance stored each text.
    assert await count(uow_factory, Ticket, Ticket.customer_id == customer_id) == 1
    assert await count(uow_factory, Ticket) == 2


async def test_a_call_delivered_to_both_instances_is_logged_and_routed_once(
    instances: tuple[Client, Client], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await known_customer(uow_factory)
    for app in instances:  # with Redis one presence for both; without, each instance its own
        login = await app.post("/api/v1/auth/login", json={"login": staff.red_1.login, "password": PASSWORD})
        assert login.status == 200
        csrf = {"X-CSRF-Token": (await login.json())["csrf_token"]}
        resp = await app.put("/api/v1/presence/me", json={"state": "available"}, headers=csrf)
        assert resp.status == 200
    sid = call_sid()
    answers = await both(instances, "/twilio/voice/inbound", inbound_call(sid, KNOWN))
    documents = [await r.text() for r in answers]
    assert [r.status for r in answers] == [200, 200], documents
    assert documents[0] == documents[1]  # both answer with the one decision
    decision = ElementTree.fromstring(documents[0])
    # The agent is rung, or (when the other instance's claim came first and the loser's row won) the
    # caller waits in the queue for them: either way once.
    assert (
        decision.findtext("./Dial/Client") == f"agent-{staff.red_1.id}"
        or decision.find("./Enqueue") is not None
    )

    async with uow_factory() as uow:
        calls = list(
            await uow.session.scalars(select(Interaction).where(Interaction.channel == Channel.VOICE))
        )
    assert [c.external_id for c in calls] == [sid]

    async def nobody_rings_for_nothing() -> bool:
        """An agent left ringing rings for this call, offered to them (at once or from the queue)."""
        async with uow_factory() as uow:
            row = await uow.session.get_one(Interaction, calls[0].id)
        for app in instances:
            presence = await app.app[RUNTIME].presence.get(staff.red_1.id)
            ringing = presence.state is AgentState.RINGING
            if ringing and not (presence.call_sid == sid and row.agent_id == staff.red_1.id):
                return False
        return row.agent_id in (staff.red_1.id, None)

    await eventually(nobody_rings_for_nothing, what="the claim of the instance that lost is given back")
