"""Presence comes back by itself after Redis lost it: two instances share a Redis of the test's
own, which is emptied or restarted; the agents connected are made what they were again (available,
away, on their call), the consoles are told, and a new call is offered without a button pressed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientWebSocketResponse
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from contact_center.app import create_app
from contact_center.appkeys import RUNTIME
from contact_center.routing import recovery
from contact_center.routing.presence import AgentState, Presence
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Agent, AgentPresenceChoice, Interaction
from tests.conftest import Staff, isolated_settings
from tests.support.agent_socket import agent_socket, next_of
from tests.support.sessions import signed_in
from tests.support.spare_redis import SpareRedis
from tests.support.voice_calls import CALLER, FakeTwilioRest, Twilio, call_sid, dialed_identity
from tests.support.waiting import eventually

API = "/api/v1"
Client = TestClient[Any, Any]


@dataclass
class Instances:
    one: Client
    two: Client
    redis: SpareRedis
    settings: Settings

    async def presence(self, agent: Agent) -> Presence:
        presence: Presence = await self.one.app[RUNTIME].presence.get(agent.id)
        return presence


@pytest_asyncio.fixture(loop_scope="session")
async def instances(
    settings: Settings, uow_factory: UnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Instances]:
    monkeypatch.setattr(recovery, "PRESENCE_CHECK_SECONDS", 0.1)
    redis = SpareRedis()
    await redis.start()
    rest = FakeTwilioRest()
    try:
        async with TestServer(rest.app) as rest_server:
            configured = isolated_settings(settings).with_overrides(
                redis={"url": redis.url, "key_prefix": "cc-recovery:"},
                twilio={"api_base_url": str(rest_server.make_url("")).rstrip("/")},
            )
            async with (
                TestClient(TestServer(create_app(configured))) as one,
                TestClient(TestServer(create_app(configured))) as two,
            ):
                yield Instances(one, two, redis, configured)
    finally:
        await redis.stop()


async def choose(client: Client, agent: Agent, state: str) -> None:
    session = await signed_in(client, agent)
    response = await session.put(f"{API}/presence/me", json={"state": state})
    assert response.status == 200, await response.text()


async def changed(ws: ClientWebSocketResponse, agent: Agent, state: str) -> dict[str, Any]:
    return await next_of(ws, "presence.changed", timeout=10, agent_id=agent.id, state=state)


async def all_changed(ws: ClientWebSocketResponse, *expected: tuple[Agent, str]) -> None:
    """Each of ``expected`` (agent, state) told on ``ws``, in any order."""
    waiting = {(agent.id, state) for agent, state in expected}
    while waiting:
        frame = await next_of(ws, "presence.changed", timeout=10)
        waiting.discard((frame["agent_id"], frame["state"]))


@pytest.mark.parametrize("outage", ["emptied", "restarted"])
async def test_presence_comes_back_after_redis_loses_it(
    instances: Instances, staff: Staff, uow_factory: UnitOfWorkFactory, outage: str
) -> None:
    one, two = instances.one, instances.two
    # red-1 on the first instance, red-2 and blue-1 on the second; red-lead watches on the first.
    lead = await agent_socket(one, "red-lead")
    red_1 = await agent_socket(one, "red-1")
    red_2 = await agent_socket(two, "red-2")
    await agent_socket(two, "blue-1")
    await choose(one, staff.red_1, "available")
    await choose(two, staff.red_2, "available")
    await choose(two, staff.blue_1, "away")
    await all_changed(lead, (staff.red_1, "available"), (staff.red_2, "available"))
    await changed(red_1, staff.red_1, "available")
    await changed(red_2, staff.red_2, "available")
    before = await instances.presence(staff.red_2)
    async with uow_factory() as uow:
        kept = {c.agent_id: c.state for c in await uow.session.scalars(select(AgentPresenceChoice))}
    assert kept == {staff.red_1.id: "available", staff.red_2.id: "available", staff.blue_1.id: "away"}

    # red-1 takes a call (the longest available: chosen first).
    twilio = Twilio(one, instances.settings)
    first = call_sid()
    assert dialed_identity(await twilio.incoming(first)) == f"agent-{staff.red_1.id}"
    await twilio.agent_answers(first, staff.red_1.id)
    await changed(lead, staff.red_1, "on-call")

    if outage == "emptied":
        await instances.redis.flushall()
    else:
        await instances.redis.restart()

    async def back() -> bool:
        try:
            states = {agent.id: await instances.presence(agent) for agent in (staff.red_1, staff.red_2)}
        except (OSError, ConnectionError):
            return False
        return states[staff.red_2.id].state is AgentState.AVAILABLE and (
            states[staff.red_1.id].state is AgentState.ON_CALL
        )

    await eventually(back, 20, "presence rebuilt")
    assert (await instances.presence(staff.red_2)).since == before.since  # their place in the line
    assert (await instances.presence(staff.red_1)).call_sid == first
    assert (await instances.presence(staff.blue_1)).state is AgentState.AWAY
    # The consoles are told, on both instances.
    await all_changed(lead, (staff.red_2, "available"), (staff.red_1, "on-call"))
    await changed(red_2, staff.red_2, "available")

    # A new caller is offered to the free agent, nobody having pressed anything.
    second = call_sid()
    twiml = await twilio.incoming(second, caller=CALLER.replace("43", "44"))

    async def offered() -> int | None:
        async with uow_factory() as uow:
            routed: int | None = await uow.session.scalar(
                select(Interaction.routed_agent_id).where(Interaction.external_id == second)
            )
        return routed

    identity = dialed_identity(twiml)
    routed = f"agent-{await eventually(offered, 10, 'the call offered')}"
    assert identity in (None, routed)  # offered at once, or from the queue
    assert routed == f"agent-{staff.red_2.id}"
