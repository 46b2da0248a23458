"""Routing: the customer's owner if free, else the longest idle active agent with the skill."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import update

from contact_center.routing.claim import route_call
from contact_center.routing.presence import (
    AgentState,
    MemoryPresenceStore,
    PresenceStore,
)
from contact_center.routing.redis_presence import RedisPresenceStore
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Agent
from tests.conftest import RUN_ID, Staff


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> None:
        self.now += timedelta(seconds=1)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture(
    loop_scope="session", params=["memory", pytest.param("redis", marks=pytest.mark.needs_redis)]
)
async def presence(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[PresenceStore]:
    if request.param == "memory":
        yield MemoryPresenceStore(clock)
        return
    url = os.environ["REDIS_URL"]
    redis = Redis.from_url(url, decode_responses=True)
    prefix = f"cc-test-{RUN_ID}:{secrets.token_hex(3)}:"
    try:
        yield RedisPresenceStore(redis, prefix, clock)
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def available(presence: PresenceStore, clock: FakeClock, *agents: Agent) -> None:
    """Make ``agents`` available one second apart: the first one has waited longest."""
    for agent in agents:
        await presence.set(agent.id, AgentState.AVAILABLE)
        clock.tick()


async def change(uow_factory: UnitOfWorkFactory, agent: Agent, **values: object) -> None:
    async with uow_factory() as uow:
        await uow.session.execute(update(Agent).where(Agent.id == agent.id).values(**values))
        await uow.commit()


async def route(
    presence: PresenceStore,
    uow_factory: UnitOfWorkFactory,
    *,
    owner: Agent | None = None,
    skill: str | None = None,
    call_sid: str | None = None,
) -> int | None:
    async with uow_factory() as uow:
        return await route_call(
            presence,
            uow.session,
            owner_id=owner.id if owner else None,
            skill=skill,
            call_sid=call_sid or f"CA{secrets.token_hex(8)}",
        )


async def test_nobody_available(
    presence: PresenceStore, uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    assert await route(presence, uow_factory) is None
    await presence.set(staff.red_1.id, AgentState.AWAY)
    assert await route(presence, uow_factory, owner=staff.red_1) is None


async def test_longest_idle_of_every_role(
    presence: PresenceStore, clock: FakeClock, uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    await available(presence, clock, staff.admin, staff.red_1, staff.blue_lead)
    assert await route(presence, uow_factory, call_sid="CA1") == staff.admin.id
    ringing = await presence.get(staff.admin.id)
    assert ringing.state is AgentState.RINGING and ringing.call_sid == "CA1"
    assert await route(presence, uow_factory) == staff.red_1.id
    assert await route(presence, uow_factory) == staff.blue_lead.id
    assert await route(presence, uow_factory) is None


async def test_skill_is_required(
    presence: PresenceStore, clock: FakeClock, uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    await change(uow_factory, staff.red_2, skills=["Spanish", "billing"])
    await change(uow_factory, staff.blue_1, skills=["billing"])
    await available(presence, clock, staff.red_1, staff.blue_1, staff.red_2)
    assert await route(presence, uow_factory, skill="spanish") == staff.red_2.id
    assert await route(presence, uow_factory, skill="billing") == staff.blue_1.id
    assert await route(presence, uow_factory, skill="billing") is None
    assert await route(presence, uow_factory, skill="french") is None
    assert await route(presence, uow_factory) == staff.red_1.id


async def test_inactive_agents_are_never_routed_to(
    presence: PresenceStore, clock: FakeClock, uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    await change(uow_factory, staff.red_1, active=False)
    await available(presence, clock, staff.red_1, staff.red_2)
    assert await route(presence, uow_factory, owner=staff.red_1) == staff.red_2.id
    assert await route(presence, uow_factory, owner=staff.red_1) is None
    assert (await presence.get(staff.red_1.id)).state is AgentState.AVAILABLE


async def test_sticky_owner(
    presence: PresenceStore, clock: FakeClock, uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    await change(uow_factory, staff.red_1, skills=["billing"])
    await available(presence, clock, staff.red_1, staff.blue_1)
    # The owner wins over an agent idle for longer, even without the skill asked for.
    assert await route(presence, uow_factory, owner=staff.blue_1, skill="billing") == staff.blue_1.id
    # The owner is busy now: the longest idle with the skill takes the call.
    assert await route(presence, uow_factory, owner=staff.blue_1, skill="billing") == staff.red_1.id
