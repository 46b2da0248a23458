"""Presence in Redis: two instances (two connections) share it and never claim the same agent."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from contact_center.bus.redis_bus import RedisBus
from contact_center.routing.presence import (
    EPOCH,
    AgentState,
    Presence,
    presence_changed,
)
from contact_center.routing.redis_presence import RedisPresenceStore, presence_store
from crm_core.events import DomainEvent
from tests.conftest import RUN_ID
from tests.support.waiting import eventually, until

pytestmark = pytest.mark.needs_redis

BARRIER = "test.barrier"  # an event published after the steps a test checks (see its use)
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
class Instances:
    prefix: str
    one: RedisPresenceStore
    two: RedisPresenceStore
    redis: Redis
    clock: FakeClock


@pytest_asyncio.fixture(loop_scope="session")
async def instances() -> AsyncIterator[Instances]:
    """Two stores on their own connections under a prefix private to this test."""
    url = os.environ["REDIS_URL"]
    prefix = f"cc-test-{RUN_ID}:{secrets.token_hex(3)}:"
    first = Redis.from_url(url, decode_responses=True)
    second = Redis.from_url(url)  # bytes replies: the store must read both
    clock = FakeClock()
    try:
        yield Instances(
            prefix,
            RedisPresenceStore(first, prefix, clock),
            RedisPresenceStore(second, prefix, clock),
            first,
            clock,
        )
    finally:
        keys = [k async for k in first.scan_iter(match=f"{prefix}*")]
        if keys:
            await first.delete(*keys)
        assert [k async for k in first.scan_iter(match=f"{prefix}*")] == []
        await first.aclose()
        await second.aclose()


async def test_app_factory_picks_redis() -> None:
    redis = Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
    try:
        store = presence_store(redis, "cc:")
        assert isinstance(store, RedisPresenceStore)
        assert store.key(42) == "cc:presence:42"
    finally:
        await redis.aclose()


async def test_both_instances_read_what_one_wrote(instances: Instances) -> None:
    one, two = instances.one, instances.two
    assert await two.get(1) == Presence(1, AgentState.OFFLINE, EPOCH)
    written = await one.set(1, AgentState.ON_CALL, call_sid="CA1")
    assert written == Presence(1, AgentState.ON_CALL, T0, call_sid="CA1")
    assert await two.get(1) == written
    assert await two.get_many([1, 2]) == {1: written, 2: Presence(2, AgentState.OFFLINE, EPOCH)}
    assert await instances.redis.exists(f"{instances.prefix}presence:1") == 1


async def test_same_passive_state_keeps_since(instances: Instances) -> None:
    await instances.one.set(1, AgentState.AVAILABLE)
    instances.clock.advance(40)
    assert (await instances.two.set(1, AgentState.AVAILABLE)).since == T0
    moved = instances.clock.advance(1)
    assert (await instances.two.set(1, AgentState.AWAY)).since == moved


async def test_wrap_up_expires_lazily(instances: Instances) -> None:
    one, two, clock = instances.one, instances.two, instances.clock
    with pytest.raises(ValueError, match="wrap_up_seconds"):
        await one.set(1, AgentState.WRAP_UP)
    until = T0 + timedelta(seconds=30)
    assert await one.set(1, AgentState.WRAP_UP, call_sid="CA1", wrap_up_seconds=30) == Presence(
        1, AgentState.WRAP_UP, T0, until, "CA1"
    )
    clock.advance(20)
    await one.set(2, AgentState.AVAILABLE)  # since T0+20, during 1's wrap-up
    clock.advance(9.5)
    assert (await two.get(1)).state is AgentState.WRAP_UP
    assert await two.claim(preferred=1, eligible=[1], call_sid="CA2") is None
    clock.advance(0.5)
    assert await two.get(1) == Presence(1, AgentState.AVAILABLE, until)
    clock.advance(1)
    await one.set(3, AgentState.AVAILABLE)  # since T0+31
    clock.advance(10)
    # The ended wrap-up counts from its end (T0+30), not from when it is read (T0+41).
    assert await two.claim(preferred=None, eligible=[3, 1, 2], call_sid="CA3") == 2
    assert await one.claim(preferred=None, eligible=[3, 1, 2], call_sid="CA4") == 1
    assert await one.claim(preferred=None, eligible=[3, 1, 2], call_sid="CA5") == 3


async def test_wrap_up_ends_on_the_real_clock() -> None:
    url = os.environ["REDIS_URL"]
    prefix = f"cc-test-{RUN_ID}:{secrets.token_hex(3)}:"
    redis = Redis.from_url(url, decode_responses=True)
    try:
        store = RedisPresenceStore(redis, prefix)
        wrap = await store.set(9, AgentState.WRAP_UP, wrap_up_seconds=1)
        assert (await store.get(9)).state is AgentState.WRAP_UP
        ended = Presence(9, AgentState.AVAILABLE, wrap.until or EPOCH)

        async def wrap_up_over() -> bool:
            return await store.get(9) == ended

        await eventually(wrap_up_over, what="the wrap-up ends by itself")
        assert await store.claim(preferred=None, eligible=[9], call_sid="CA1") == 9
        await store.forget(9)
        assert await redis.exists(store.key(9)) == 0
    finally:
        await redis.aclose()


async def test_claim_order_and_release(instances: Instances) -> None:
    one, two, clock = instances.one, instances.two, instances.clock
    await one.set(1, AgentState.AVAILABLE)  # idle since T0
    clock.advance(10)
    await one.set(2, AgentState.AVAILABLE)
    await one.set(3, AgentState.AVAILABLE)
    clock.advance(1)
    assert await two.claim(preferred=3, eligible=[1, 2], call_sid="CA1") == 3  # sticky
    assert await two.claim(preferred=3, eligible=[2, 1, 3], call_sid="CA2") == 1  # longest idle
    ringing = await one.get(1)
    assert ringing == Presence(1, AgentState.RINGING, clock.now, call_sid="CA2")
    clock.advance(15)
    assert await one.release(1, "CA1") is False
    assert await one.release(1, "CA2") is True
    assert await two.get(1) == Presence(1, AgentState.AVAILABLE, T0)  # kept their place
    assert await two.release(1, "CA2") is False
    await one.set(3, AgentState.ON_CALL, call_sid="CA1")
    assert await two.release(3, "CA1") is False
    assert await one.claim(preferred=None, eligible=[2, 1], call_sid="CA3") == 1
    assert await one.claim(preferred=None, eligible=[2, 1], call_sid="CA4") == 2
    assert await one.claim(preferred=None, eligible=[2, 1], call_sid="CA5") is None
    assert await one.claim(preferred=None, eligible=[], call_sid="CA6") is None


async def test_fifty_concurrent_claims_on_two_instances(instances: Instances) -> None:
    agents = list(range(100, 120))
    for agent_id in agents:
        await instances.one.set(agent_id, AgentState.AVAILABLE)
        instances.clock.advance(0.001)
    stores = (instances.one, instances.two)
    results = await asyncio.gather(
        *(stores[i % 2].claim(preferred=agents[i % 7], eligible=agents, call_sid=f"CA{i}") for i in range(50))
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == len(set(winners)) == len(agents)
    assert set(winners) == set(agents)
    states = await instances.two.get_many(agents)
    for call, winner in enumerate(results):
        if winner is not None:
            assert states[winner].state is AgentState.RINGING
            assert states[winner].call_sid == f"CA{call}"


async def test_forget_removes_the_key(instances: Instances) -> None:
    await instances.one.set(5, AgentState.AWAY)
    await instances.two.forget(5)
    assert await instances.redis.exists(instances.one.key(5)) == 0
    assert (await instances.one.get(5)).since == EPOCH


async def test_changes_are_announced_on_the_bus_in_the_same_step() -> None:
    """A store that knows the bus's channel publishes the change from its script: another instance's
    bus delivers the events given with it, then the presence change, once; a wrap-up that does not
    apply (or whose agent was not ``if_was``) announces nothing from the script."""
    url = os.environ["REDIS_URL"]
    prefix = f"cc-test-{RUN_ID}:{secrets.token_hex(3)}:"
    redis = Redis.from_url(url, decode_responses=True)
    other = Redis.from_url(url, decode_responses=True)
    bus = RedisBus(other, prefix)  # another instance's bus
    received: list[DomainEvent] = []

    async def record(event: DomainEvent) -> None:
        received.append(event)

    fallback: list[list[DomainEvent]] = []

    async def announce(events: Sequence[DomainEvent]) -> None:
        fallback.append(list(events))

    bus.subscribe(record)
    await bus.start()
    try:
        store = presence_store(redis, prefix)
        answered = DomainEvent("call.updated", {"agent_id": 4, "call_sid": "CA1", "state": "answered"})
        on_call = await store.set(
            4, AgentState.ON_CALL, call_sid="CA1", announce=announce, with_events=[answered]
        )
        ringing_wrap = await store.set(5, AgentState.RINGING, call_sid="CA2")
        assert await store.wrap_up(4, "CA9", 0, announce=announce) is None  # another call
        skipped = await store.wrap_up(5, "CA2", 0, announce=announce, if_was=AgentState.ON_CALL)
        assert skipped is not None and skipped.was is AgentState.RINGING and not skipped.announced
        wrapped = await store.wrap_up(4, "CA1", 30, announce=announce, if_was=AgentState.ON_CALL)
        assert wrapped is not None and wrapped.was is AgentState.ON_CALL and wrapped.announced
        # Pub/sub keeps a channel's order: once an event published after the steps above arrives,
        # anything those steps published has arrived before it.
        await bus.publish([DomainEvent(BARRIER, {})])
        await until(lambda: any(e.name == BARRIER for e in received), what="the barrier event")
        received[:] = [e for e in received if e.name != BARRIER]
        assert fallback == []  # everything went through the scripts
        assert [(e.name, e.payload.get("state")) for e in received] == [
            ("call.updated", "answered"),
            ("presence.changed", "on-call"),
            ("presence.changed", "wrap-up"),
        ]
        assert received[1].payload == presence_changed(on_call).payload
        assert received[2].payload == presence_changed(wrapped.presence).payload
        assert ringing_wrap.state is AgentState.RINGING

        # Without the bus's channel (or for a passive state) the store announces through ``announce``.
        plain = RedisPresenceStore(redis, prefix)
        available = await plain.set(6, AgentState.AVAILABLE, announce=announce)
        assert [[e.payload for e in batch] for batch in fallback] == [[presence_changed(available).payload]]
        assert len(received) == 3
    finally:
        await bus.close()
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
        await other.aclose()
