"""Time passed in: routing runs on a simulated clock, without sleeping.

A wrap-up ends when the simulated clock passes ``wrap_up_seconds``, and the agent is then offered
to the waiting caller, exactly as on real time (the memory presence store, the one listener to
"an agent is free" and its timers all read the clock they are given).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contact_center.routing.claim import FreeCount, free_agents, reserve_for_outbound
from contact_center.routing.free_agents import INBOUND_CALLS, FreeAgents, Freed
from contact_center.routing.presence import AgentState, MemoryPresenceStore
from crm_core.clock import SIMULATION_START, FakeClock, SystemClock

WRAP_UP_SECONDS = 30.0


class Spawner:
    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any]] = []

    def __call__(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(work, name=name)
        self.tasks.append(task)
        return task

    async def settled(self) -> None:
        await asyncio.gather(*self.tasks)


def test_the_fake_clock_moves_only_when_told_and_fires_its_timers_in_order() -> None:
    clock = FakeClock()
    assert clock.now() == SIMULATION_START and clock.monotonic() == 0.0
    assert clock.now() == clock.now()  # frozen
    fired: list[tuple[str, datetime]] = []
    clock.call_later(10, lambda: fired.append(("ten", clock.now())))
    clock.call_later(5, lambda: fired.append(("five", clock.now())))
    cancelled = clock.call_later(7, lambda: fired.append(("seven", clock.now())))
    cancelled.cancel()
    assert clock.pending == 2
    clock.advance(4)
    assert fired == []
    assert clock.advance(8) == SIMULATION_START + timedelta(seconds=12)
    assert fired == [
        ("five", SIMULATION_START + timedelta(seconds=5)),
        ("ten", SIMULATION_START + timedelta(seconds=10)),
    ]
    assert clock.monotonic() == 12.0 and clock.pending == 0
    assert clock.timestamp() == (SIMULATION_START + timedelta(seconds=12)).timestamp()
    clock.set(SIMULATION_START + timedelta(minutes=1))
    assert clock.monotonic() == 60.0
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        FakeClock(datetime(2027, 1, 1))  # naive


def test_the_system_clock_tells_the_real_time() -> None:
    clock = SystemClock()
    before = datetime.now(UTC)
    assert before <= clock.now() <= datetime.now(UTC)
    assert clock.now().tzinfo is not None
    first = clock.monotonic()
    assert clock.monotonic() >= first


async def test_a_wrap_up_ends_on_the_simulated_clock_and_the_waiting_caller_is_offered() -> None:
    clock = FakeClock()
    store = MemoryPresenceStore(clock.now)
    spawn = Spawner()
    routing = FreeAgents(spawn, clock.now, call_later=clock.call_later)
    waiting = ["CA-waiting"]
    offered: list[tuple[str, int]] = []

    async def offer_to_waiting_callers(freed: frozenset[Freed]) -> None:
        while waiting:
            agent_id = await store.claim(preferred=None, eligible=[7], call_sid=waiting[0])
            if agent_id is None:
                return
            offered.append((waiting.pop(0), agent_id))

    routing.register("inbound calls", INBOUND_CALLS, offer_to_waiting_callers)
    # Agent 7 takes a call and hangs up: wrap-up for WRAP_UP_SECONDS on the simulated clock.
    await store.set(7, AgentState.AVAILABLE)
    assert await store.claim(preferred=None, eligible=[7], call_sid="CA-first") == 7
    assert await store.answer(7, "CA-first") is not None
    clock.advance(120)  # a two-minute call, in no time
    wrapped = await store.wrap_up(7, "CA-first", WRAP_UP_SECONDS)
    assert wrapped is not None and wrapped.presence.until == clock.now() + timedelta(seconds=30)
    routing.free_at(wrapped.presence.until)
    await offer_to_waiting_callers(frozenset())  # nobody free: the caller waits
    assert offered == []
    assert await free_agents(store, [7], soon_seconds=10, clock=clock.now) == FreeCount(now=0, soon=0)

    clock.advance(WRAP_UP_SECONDS - 10)
    assert await free_agents(store, [7], soon_seconds=10, clock=clock.now) == FreeCount(now=0, soon=1)
    assert (await store.get(7)).state is AgentState.WRAP_UP
    await spawn.settled()
    assert spawn.tasks == [] and offered == []  # no round before the wrap-up ends

    clock.advance(10.1)  # past the wrap-up's end (and routing's margin): its timer fires
    await spawn.settled()
    assert [t.get_name() for t in spawn.tasks] == ["free-agents"]
    assert offered == [("CA-waiting", 7)]
    ringing = await store.get(7)
    assert (ringing.state, ringing.call_sid) == (AgentState.RINGING, "CA-waiting")
    routing.close()


async def test_a_reservation_ends_by_itself_when_the_simulated_clock_passes_its_time_to_live() -> None:
    clock = FakeClock()
    store = MemoryPresenceStore(clock.now)
    await store.set(3, AgentState.AVAILABLE)
    assert await reserve_for_outbound(store, [3], "campaign-1", ttl_seconds=15) == 3
    assert await reserve_for_outbound(store, [3], "campaign-2", ttl_seconds=15) is None
    clock.advance(14.9)
    assert (await store.get(3)).state is AgentState.RINGING
    clock.advance(0.1)
    assert (await store.get(3)).state is AgentState.AVAILABLE
    assert await reserve_for_outbound(store, [3], "campaign-2", ttl_seconds=15) == 3
