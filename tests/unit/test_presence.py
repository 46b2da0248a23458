"""Presence in memory: states, lazy wrap-up expiry, who a claim picks, release, no double claim."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from contact_center.events import PRESENCE_CHANGED
from contact_center.routing.presence import (
    EPOCH,
    AgentState,
    MemoryPresenceStore,
    Presence,
    presence_changed,
)
from contact_center.routing.redis_presence import presence_store
from crm_core.events import DomainEvent

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemoryPresenceStore:
    return MemoryPresenceStore(clock)


async def test_never_seen_is_offline_since_the_epoch(store: MemoryPresenceStore) -> None:
    assert await store.get(7) == Presence(7, AgentState.OFFLINE, EPOCH)
    assert await store.get_many([7, 8]) == {
        7: Presence(7, AgentState.OFFLINE, EPOCH),
        8: Presence(8, AgentState.OFFLINE, EPOCH),
    }
    assert await store.get_many([]) == {}


async def test_set_records_state_and_since(store: MemoryPresenceStore, clock: FakeClock) -> None:
    assert await store.set(1, AgentState.AVAILABLE) == Presence(1, AgentState.AVAILABLE, T0)
    later = clock.advance(5)
    on_call = await store.set(1, AgentState.ON_CALL, call_sid="CA1")
    assert on_call == Presence(1, AgentState.ON_CALL, later, call_sid="CA1")
    assert await store.get(1) == on_call
    assert (await store.get_many([1, 2]))[1] == on_call


async def test_setting_the_same_passive_state_keeps_since(
    store: MemoryPresenceStore, clock: FakeClock
) -> None:
    await store.set(1, AgentState.AVAILABLE)
    clock.advance(30)
    assert (await store.set(1, AgentState.AVAILABLE)).since == T0
    moved = clock.advance(1)
    assert (await store.set(1, AgentState.AWAY)).since == moved
    clock.advance(1)
    assert (await store.set(1, AgentState.AWAY)).since == moved


async def test_wrap_up_needs_seconds_and_ends_by_itself(store: MemoryPresenceStore, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="wrap_up_seconds"):
        await store.set(1, AgentState.WRAP_UP, call_sid="CA1")
    wrap = await store.set(1, AgentState.WRAP_UP, call_sid="CA1", wrap_up_seconds=30)
    assert wrap == Presence(1, AgentState.WRAP_UP, T0, T0 + timedelta(seconds=30), "CA1")
    clock.advance(29)
    assert (await store.get(1)).state is AgentState.WRAP_UP
    clock.advance(1)
    ended = Presence(1, AgentState.AVAILABLE, T0 + timedelta(seconds=30))
    assert await store.get(1) == ended
    clock.advance(100)
    assert await store.get_many([1]) == {1: ended}
    # Pressing "available" after the wrap-up ended on its own keeps the place in line.
    assert (await store.set(1, AgentState.AVAILABLE)).since == ended.since


async def test_available_ends_wrap_up_early(store: MemoryPresenceStore, clock: FakeClock) -> None:
    await store.set(1, AgentState.WRAP_UP, wrap_up_seconds=30)
    now = clock.advance(10)
    assert await store.set(1, AgentState.AVAILABLE) == Presence(1, AgentState.AVAILABLE, now)


async def test_claim_prefers_the_owner_when_available(store: MemoryPresenceStore, clock: FakeClock) -> None:
    await store.set(1, AgentState.AVAILABLE)
    clock.advance(10)
    await store.set(2, AgentState.AVAILABLE)
    clock.advance(1)
    assert await store.claim(preferred=2, eligible=[1, 2], call_sid="CA1") == 2
    # The owner need not be among the eligible agents (the owner lacks the skill, say).
    await store.set(3, AgentState.AVAILABLE)
    assert await store.claim(preferred=3, eligible=[1], call_sid="CA2") == 3


async def test_claim_falls_back_to_the_longest_idle(store: MemoryPresenceStore, clock: FakeClock) -> None:
    await store.set(1, AgentState.AVAILABLE)  # idle since T0
    clock.advance(10)
    await store.set(2, AgentState.AVAILABLE)  # idle since T0+10
    await store.set(3, AgentState.AWAY)
    assert await store.claim(preferred=3, eligible=[2, 1, 3], call_sid="CA1") == 1
    assert await store.claim(preferred=None, eligible=[2, 1, 3], call_sid="CA2") == 2
    assert await store.claim(preferred=None, eligible=[2, 1, 3], call_sid="CA3") is None
    assert await store.claim(preferred=None, eligible=[], call_sid="CA4") is None


async def test_claim_counts_an_ended_wrap_up_from_its_end(
    store: MemoryPresenceStore, clock: FakeClock
) -> None:
    await store.set(1, AgentState.WRAP_UP, wrap_up_seconds=5)  # available from T0+5
    clock.advance(8)
    await store.set(2, AgentState.AVAILABLE)  # available from T0+8
    await store.set(3, AgentState.WRAP_UP, wrap_up_seconds=30)  # still wrapping up
    clock.advance(1)
    assert await store.claim(preferred=3, eligible=[2, 1, 3], call_sid="CA1") == 1


async def test_claim_ties_go_to_the_smaller_id(store: MemoryPresenceStore) -> None:
    for agent_id in (5, 4, 6):
        await store.set(agent_id, AgentState.AVAILABLE)
    assert await store.claim(preferred=None, eligible=[6, 5, 4], call_sid="CA1") == 4


async def test_claimed_agent_is_ringing_and_not_claimed_again(
    store: MemoryPresenceStore, clock: FakeClock
) -> None:
    await store.set(1, AgentState.AVAILABLE)
    now = clock.advance(3)
    assert await store.claim(preferred=1, eligible=[1], call_sid="CA1") == 1
    assert await store.get(1) == Presence(1, AgentState.RINGING, now, call_sid="CA1")
    assert await store.claim(preferred=1, eligible=[1], call_sid="CA2") is None


async def test_release_keeps_the_idle_since(store: MemoryPresenceStore, clock: FakeClock) -> None:
    await store.set(1, AgentState.AVAILABLE)  # idle since T0
    clock.advance(10)
    await store.set(2, AgentState.AVAILABLE)
    assert await store.claim(preferred=None, eligible=[1, 2], call_sid="CA1") == 1
    clock.advance(20)
    assert await store.release(1, "CA-other") is False
    assert (await store.get(1)).state is AgentState.RINGING
    assert await store.release(1, "CA1") is True
    assert await store.get(1) == Presence(1, AgentState.AVAILABLE, T0)
    assert await store.release(1, "CA1") is False  # only once
    # Still first in line.
    assert await store.claim(preferred=None, eligible=[2, 1], call_sid="CA2") == 1


async def test_release_does_not_undo_a_taken_call(store: MemoryPresenceStore) -> None:
    await store.set(1, AgentState.AVAILABLE)
    assert await store.claim(preferred=1, eligible=[], call_sid="CA1") == 1
    await store.set(1, AgentState.ON_CALL, call_sid="CA1")
    assert await store.release(1, "CA1") is False
    assert (await store.get(1)).state is AgentState.ON_CALL
    assert await store.release(2, "CA1") is False  # never seen


async def test_forget(store: MemoryPresenceStore) -> None:
    await store.set(1, AgentState.AVAILABLE)
    await store.forget(1)
    await store.forget(1)
    assert (await store.get(1)).state is AgentState.OFFLINE


async def test_concurrent_claims_never_share_an_agent(store: MemoryPresenceStore, clock: FakeClock) -> None:
    agents = list(range(1, 11))
    for agent_id in agents:
        await store.set(agent_id, AgentState.AVAILABLE)
        clock.advance(1)
    results = await asyncio.gather(
        *(store.claim(preferred=(i % 3) + 1, eligible=agents, call_sid=f"CA{i}") for i in range(50))
    )
    winners = [r for r in results if r is not None]
    assert sorted(winners) == agents
    for call, winner in enumerate(results):
        if winner is not None:
            presence = await store.get(winner)
            assert presence.state is AgentState.RINGING and presence.call_sid == f"CA{call}"


def test_presence_changed_event_is_json_ready() -> None:
    until = T0 + timedelta(seconds=30)
    event = presence_changed(Presence(3, AgentState.WRAP_UP, T0, until, "CA1"))
    assert event.name == PRESENCE_CHANGED == "presence.changed"
    assert event.payload == {
        "agent_id": 3,
        "state": "wrap-up",
        "since": T0.isoformat(),
        "until": until.isoformat(),
        "call_sid": "CA1",
    }
    assert presence_changed(Presence(3, AgentState.AWAY, T0)).payload["until"] is None


def test_factory_without_redis_keeps_presence_in_memory() -> None:
    assert isinstance(presence_store(None, "cc:"), MemoryPresenceStore)


async def test_changes_announced_with_the_events_given(store: MemoryPresenceStore, clock: FakeClock) -> None:
    announced: list[list[DomainEvent]] = []

    async def announce(events: Sequence[DomainEvent]) -> None:
        announced.append(list(events))

    answered = DomainEvent("call.updated", {"agent_id": 1, "state": "answered"})
    on_call = await store.set(
        1, AgentState.ON_CALL, call_sid="CA1", announce=announce, with_events=[answered]
    )
    await store.set(2, AgentState.RINGING, call_sid="CA2")
    assert await store.wrap_up(1, "CA9", 0, announce=announce) is None
    ringing = await store.wrap_up(2, "CA2", 0, announce=announce, if_was=AgentState.ON_CALL)
    assert ringing is not None and ringing.was is AgentState.RINGING and not ringing.announced
    wrapped = await store.wrap_up(1, "CA1", 30, announce=announce, if_was=AgentState.ON_CALL)
    assert wrapped is not None and wrapped.announced
    assert wrapped.presence == Presence(1, AgentState.WRAP_UP, T0, T0 + timedelta(seconds=30), "CA1")
    assert [[(e.name, e.payload) for e in batch] for batch in announced] == [
        [(answered.name, answered.payload), (PRESENCE_CHANGED, presence_changed(on_call).payload)],
        [(PRESENCE_CHANGED, presence_changed(wrapped.presence).payload)],
    ]
