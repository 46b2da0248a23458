"""The one listener to "an agent is free": takers in order of priority, one round at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contact_center.routing.free_agents import CHATS, INBOUND_CALLS, OUTBOUND_CALLS, FreeAgents, Freed
from contact_center.routing.presence import AgentState, Presence, presence_changed
from crm_core.events import DomainEvent
from tests.support.waiting import until

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


class Spawner:
    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any]] = []

    def __call__(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(work, name=name)
        self.tasks.append(task)
        return task

    async def settled(self) -> None:
        await asyncio.gather(*self.tasks)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, frozenset[Freed]]] = []

    def taker(self, name: str, *, fail: bool = False, gate: asyncio.Event | None = None) -> Any:
        async def take(freed: frozenset[Freed]) -> None:
            self.calls.append((name, freed))
            if gate is not None:
                await gate.wait()
            if fail:
                raise RuntimeError(f"{name} failed")

        return take


def available(agent_id: int) -> DomainEvent:
    return presence_changed(Presence(agent_id, AgentState.AVAILABLE, T0))


async def test_takers_are_offered_free_agents_in_order_of_priority() -> None:
    spawn, seen = Spawner(), Recorder()
    free = FreeAgents(spawn)
    free.register("dialer", OUTBOUND_CALLS, seen.taker("dialer"))
    free.register("chats", CHATS, seen.taker("chats"))
    free.register("inbound calls", INBOUND_CALLS, seen.taker("inbound calls"))
    assert free.takers == ["inbound calls", "chats", "dialer"]
    await free.on_event(available(1))
    await spawn.settled()
    assert seen.calls == [
        (name, frozenset({Freed.AVAILABLE})) for name in ("inbound calls", "chats", "dialer")
    ]


async def test_only_an_agent_set_available_starts_a_round() -> None:
    spawn, seen = Spawner(), Recorder()
    free = FreeAgents(spawn)
    free.register("chats", CHATS, seen.taker("chats"))
    await free.on_event(presence_changed(Presence(1, AgentState.AWAY, T0)))
    await free.on_event(presence_changed(Presence(1, AgentState.RINGING, T0, call_sid="CA1")))
    await free.on_event(DomainEvent("chat.closed", {"state": "available"}))
    assert spawn.tasks == [] and seen.calls == []


async def test_what_frees_up_during_a_round_is_offered_in_one_more_round() -> None:
    spawn, seen = Spawner(), Recorder()
    gate = asyncio.Event()
    free = FreeAgents(spawn)
    free.register("inbound calls", INBOUND_CALLS, seen.taker("inbound calls", gate=gate))
    free.register("chats", CHATS, seen.taker("chats"))
    free.freed(Freed.AVAILABLE)
    await until(lambda: len(seen.calls) == 1)
    for agent_id in (2, 3, 4):
        await free.on_event(available(agent_id))
    free.freed(Freed.WRAP_UP_ENDED)
    gate.set()
    await spawn.settled()
    assert len(spawn.tasks) == 1
    assert seen.calls == [
        ("inbound calls", frozenset({Freed.AVAILABLE})),
        ("chats", frozenset({Freed.AVAILABLE})),
        ("inbound calls", frozenset({Freed.AVAILABLE, Freed.WRAP_UP_ENDED})),
        ("chats", frozenset({Freed.AVAILABLE, Freed.WRAP_UP_ENDED})),
    ]


async def test_a_failing_taker_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    spawn, seen = Spawner(), Recorder()
    free = FreeAgents(spawn)
    free.register("inbound calls", INBOUND_CALLS, seen.taker("inbound calls", fail=True))
    free.register("chats", CHATS, seen.taker("chats"))
    free.freed(Freed.AVAILABLE)
    await spawn.settled()
    assert [name for name, _ in seen.calls] == ["inbound calls", "chats"]
    assert "offering free agents to inbound calls failed" in caplog.text


async def test_a_taker_taken_off_is_offered_nothing_and_no_taker_means_no_round() -> None:
    spawn, seen = Spawner(), Recorder()
    free = FreeAgents(spawn)
    unregister = free.register("chats", CHATS, seen.taker("chats"))
    unregister()
    unregister()  # twice is harmless
    free.freed(Freed.AVAILABLE)
    assert spawn.tasks == [] and free.takers == []


async def test_a_wrap_up_end_starts_a_round_then_and_closing_cancels_it() -> None:
    spawn, seen = Spawner(), Recorder()
    clock = [T0]
    free = FreeAgents(spawn, clock=lambda: clock[0])
    free.register("inbound calls", INBOUND_CALLS, seen.taker("inbound calls"))
    free.free_at(T0 + timedelta(seconds=0.05))
    free.free_at(T0 - timedelta(seconds=5))  # ended already: at once
    await until(lambda: len(seen.calls) >= 1)
    await spawn.settled()
    assert seen.calls == [("inbound calls", frozenset({Freed.WRAP_UP_ENDED}))]
    await until(lambda: len(seen.calls) == 2)
    await spawn.settled()
    free.free_at(T0 + timedelta(seconds=0.05))
    free.close()
    await asyncio.sleep(0.2)
    free.freed(Freed.AVAILABLE)
    await free.on_event(available(1))
    assert len(seen.calls) == 2
