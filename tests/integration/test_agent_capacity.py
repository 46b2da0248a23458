"""The outbound side of agent capacity, on both presence stores: a reservation is the inbound claim
with a time to live (so the two never get the same agent), and a count of who is free now or soon."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from contact_center.routing.claim import FreeCount, free_agents, reserve_for_outbound
from contact_center.routing.presence import AgentState, MemoryPresenceStore, Presence, PresenceStore
from contact_center.routing.redis_presence import RedisPresenceStore
from tests.conftest import RUN_ID

T0 = datetime(2025, 3, 3, 9, 0, 0, 123456, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class Stores:
    """Two handles on one presence (two instances in Redis; the same store in memory)."""

    one: PresenceStore
    two: PresenceStore
    clock: FakeClock


@pytest_asyncio.fixture(
    loop_scope="session", params=["memory", pytest.param("redis", marks=pytest.mark.needs_redis)]
)
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    clock = FakeClock()
    if request.param == "memory":
        store = MemoryPresenceStore(clock)
        yield Stores(store, store, clock)
        return
    url = os.environ["REDIS_URL"]
    first = Redis.from_url(url, decode_responses=True)
    second = Redis.from_url(url)
    prefix = f"cc-test-{RUN_ID}:{secrets.token_hex(3)}:"
    try:
        yield Stores(
            RedisPresenceStore(first, prefix, clock), RedisPresenceStore(second, prefix, clock), clock
        )
    finally:
        keys = [k async for k in first.scan_iter(match=f"{prefix}*")]
        if keys:
            await first.delete(*keys)
        await first.aclose()
        await second.aclose()


async def available(stores: Stores, *agent_ids: int) -> None:
    """Make the agents available one second apart: the first has waited longest."""
    for agent_id in agent_ids:
        await stores.one.set(agent_id, AgentState.AVAILABLE)
        stores.clock.advance(1)


async def test_a_reservation_takes_the_longest_idle_and_rings_them_for_its_key(stores: Stores) -> None:
    await available(stores, 3, 1, 2)
    now = stores.clock.now
    assert await reserve_for_outbound(stores.one, [1, 2, 3, 4], "campaign-7:call-1", 30) == 3
    assert await stores.two.get(3) == Presence(
        3, AgentState.RINGING, now, now + timedelta(seconds=30), "campaign-7:call-1"
    )
    assert await reserve_for_outbound(stores.two, [1, 2], "campaign-7:call-2", 30) == 1
    assert await reserve_for_outbound(stores.one, [3, 1], "campaign-7:call-3", 30) is None
    with pytest.raises(ValueError, match="time to live"):
        await reserve_for_outbound(stores.one, [2], "campaign-7:call-4", 0)
    assert (await stores.one.get(2)).state is AgentState.AVAILABLE


async def test_a_reserved_agent_is_not_claimed_by_an_inbound_call_nor_the_other_way(stores: Stores) -> None:
    await available(stores, 1, 2)
    assert await reserve_for_outbound(stores.one, [1, 2], "out-1", 30) == 1
    # The caller's owner is reserved: the inbound call gets the other agent.
    assert await stores.two.claim(preferred=1, eligible=[1, 2], call_sid="CA-in") == 2
    assert await reserve_for_outbound(stores.two, [1, 2], "out-2", 30) is None
    assert await stores.one.claim(preferred=None, eligible=[1, 2], call_sid="CA-in-2") is None


async def test_reservations_and_inbound_claims_at_once_never_share_an_agent(stores: Stores) -> None:
    agents = list(range(1, 21))
    await available(stores, *agents)

    async def inbound(n: int) -> int | None:
        store = stores.one if n % 2 else stores.two
        return await store.claim(preferred=None, eligible=agents, call_sid=f"CA{n}")

    async def outbound(n: int) -> int | None:
        store = stores.two if n % 2 else stores.one
        return await reserve_for_outbound(store, agents, f"out-{n}", 30)

    won = await asyncio.gather(*(inbound(n) for n in range(15)), *(outbound(n) for n in range(15)))
    taken = [agent for agent in won if agent is not None]
    assert sorted(taken) == agents  # every agent once, ten of the thirty found nobody
    assert won.count(None) == 10


async def test_a_reservation_not_taken_in_time_ends_by_itself(stores: Stores) -> None:
    await available(stores, 1, 2)
    assert await reserve_for_outbound(stores.one, [1], "out-1", 30) == 1
    end = stores.clock.advance(30)
    assert await stores.two.get(1) == Presence(1, AgentState.AVAILABLE, end)
    # Too late to answer, release or wrap up: the agent is free again.
    assert await stores.one.answer(1, "out-1") is None
    assert await stores.one.release(1, "out-1") is False
    assert await stores.one.wrap_up(1, "out-1", 10) is None
    assert await stores.two.get(1) == Presence(1, AgentState.AVAILABLE, end)
    # Claimed in their place in the line: they became free at the reservation's end, after agent 2.
    assert await stores.two.claim(preferred=None, eligible=[1, 2], call_sid="CA1") == 2
    assert await stores.two.claim(preferred=None, eligible=[1, 2], call_sid="CA2") == 1
    # Pressing "available" again keeps the time they became free.
    await stores.one.release(1, "CA2")
    assert (await stores.one.set(1, AgentState.AVAILABLE)).since == end


async def test_a_reservation_is_answered_or_released_like_a_call(stores: Stores) -> None:
    await available(stores, 1, 2)
    assert await reserve_for_outbound(stores.one, [1, 2], "out-1", 30) == 1
    assert await reserve_for_outbound(stores.one, [1, 2], "out-2", 30) == 2
    answered_at = stores.clock.advance(5)
    assert await stores.two.answer(1, "out-1") == Presence(
        1, AgentState.ON_CALL, answered_at, call_sid="out-1"
    )
    assert await stores.two.release(2, "out-2") is True
    stores.clock.advance(60)  # past the reservations' end: the answered call is not undone
    assert (await stores.one.get(1)).state is AgentState.ON_CALL
    released = await stores.one.get(2)
    assert released == Presence(2, AgentState.AVAILABLE, T0 + timedelta(seconds=1))  # their idle since
    wrapped = await stores.one.wrap_up(1, "out-1", 10)
    assert wrapped is not None and wrapped.was is AgentState.ON_CALL


async def test_free_agents_counts_who_is_free_now_and_whose_wrap_up_ends_soon(stores: Stores) -> None:
    await available(stores, 1, 2, 3, 4, 5, 6)
    await stores.one.set(2, AgentState.WRAP_UP, call_sid="CA2", wrap_up_seconds=5)
    await stores.one.set(3, AgentState.WRAP_UP, call_sid="CA3", wrap_up_seconds=60)
    await stores.one.set(4, AgentState.AWAY)
    await stores.one.set(5, AgentState.ON_CALL, call_sid="CA5")
    assert await reserve_for_outbound(stores.one, [6], "out-6", 30) == 6
    eligible = [1, 2, 3, 4, 5, 6, 7]
    clock = stores.clock
    assert await free_agents(stores.two, eligible, soon_seconds=10, clock=clock) == FreeCount(now=1, soon=1)
    assert await free_agents(stores.two, eligible, soon_seconds=90, clock=clock) == FreeCount(now=1, soon=2)
    assert await free_agents(stores.two, [3, 4], soon_seconds=90, clock=clock) == FreeCount(now=0, soon=1)
    clock.advance(6)  # agent 2's wrap-up is over: free now
    assert await free_agents(stores.two, eligible, soon_seconds=10, clock=clock) == FreeCount(now=2, soon=0)
    clock.advance(30)  # so is agent 6's reservation
    assert await free_agents(stores.one, eligible, soon_seconds=30, clock=clock) == FreeCount(now=3, soon=1)
    assert await free_agents(stores.one, [], clock=clock) == FreeCount(now=0, soon=0)
