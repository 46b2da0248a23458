"""The one listener to "an agent is free", which decides who gets them.

An agent frees up when they set themselves available (``presence.changed`` to available, from any
instance: it comes over the bus) or when a wrap-up ends (it ends by itself, without an event: the
instance that began it is told by :meth:`FreeAgents.free_at`, and the capabilities' timers cover
an instance that stops meanwhile). :class:`FreeAgents` then offers the agents to the takers the
capabilities registered, one after the other in order of priority: the inbound call queue first
(:data:`INBOUND_CALLS`), then the chats (:data:`CHATS`), then the dialer (:data:`OUTBOUND_CALLS`).
Each taker claims whom it can (:mod:`contact_center.routing.claim`); whoever is still free when
the next one's turn comes is theirs.

One round runs at a time: what frees up during a round is offered in one more round after it. A
taker is told why the round runs (:class:`Freed`), so it may skip a look it knows is useless. A
taker that fails is logged and the others still get their turn.

A chat slot freed is not an agent freed (chats do not change presence: an agent with chats takes
calls all the same), so the chat queue moves on it by itself.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contact_center.events import PRESENCE_CHANGED
from contact_center.routing.presence import AgentState, Clock
from crm_core.events import DomainEvent
from crm_core.models.base import utcnow
from crm_core.ports import Timer

log = logging.getLogger(__name__)

# The takers' priorities: the lower goes first.
INBOUND_CALLS = 10
CHATS = 20
OUTBOUND_CALLS = 30

# How long after a wrap-up's end its round runs (the claim must see the agent free).
WRAP_UP_END_MARGIN_SECONDS = 0.05


class Freed(enum.StrEnum):
    """Why a round runs."""

    AVAILABLE = "available"  # an agent set themselves available (on any instance)
    WRAP_UP_ENDED = "wrap-up-ended"  # a wrap-up begun on this instance ended


Take = Callable[[frozenset[Freed]], Awaitable[object]]
Spawn = Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]
CallLater = Callable[[float, Callable[[], object]], Timer]


def _loop_call_later(delay: float, callback: Callable[[], object]) -> Timer:
    return asyncio.get_running_loop().call_later(delay, callback)


@dataclass(frozen=True, slots=True)
class Taker:
    name: str
    priority: int
    take: Take


class FreeAgents:
    """The registry of takers and the one subscriber that calls them (``on_event`` on the bus).

    ``spawn`` runs the rounds in the background (the runtime's jobs). ``clock`` is the time a
    wrap-up's end is measured from and ``call_later`` the timer it is awaited on (the running
    loop's by default; the runtime's clock's, so a simulated clock ends wrap-ups in simulated time).
    """

    def __init__(self, spawn: Spawn, clock: Clock = utcnow, *, call_later: CallLater | None = None) -> None:
        self._spawn = spawn
        self._clock = clock
        self._call_later = call_later or _loop_call_later
        self._takers: list[Taker] = []
        self._pending: set[Freed] = set()
        self._round: asyncio.Task[None] | None = None
        self._timers: set[Timer] = set()
        self._closing = False

    @property
    def takers(self) -> list[str]:
        """The takers' names in the order they are offered free agents."""
        return [t.name for t in self._takers]

    def register(self, name: str, priority: int, take: Take) -> Callable[[], None]:
        """Offer free agents to ``take`` in order of ``priority`` (after the takers of the same
        priority registered before it); returns the function that takes it off again."""
        taker = Taker(name, priority, take)
        self._takers.append(taker)
        self._takers.sort(key=lambda t: t.priority)

        def unregister() -> None:
            if taker in self._takers:
                self._takers.remove(taker)

        return unregister

    async def on_event(self, event: DomainEvent) -> None:
        """The bus subscriber: an agent set available anywhere starts a round."""
        if event.name == PRESENCE_CHANGED and event.payload.get("state") == AgentState.AVAILABLE.value:
            self.freed(Freed.AVAILABLE)

    def freed(self, why: Freed) -> None:
        """An agent is free: a round starts in the background (or runs once more after the one
        under way)."""
        if self._closing or not self._takers:
            return
        self._pending.add(why)
        if self._round is None or self._round.done():
            self._round = self._spawn(self._rounds(), "free-agents")

    def free_at(self, moment: datetime) -> None:
        """A wrap-up begun here ends at ``moment``: a round runs then."""
        if self._closing:
            return
        delay = max(0.0, (moment - self._clock()).total_seconds()) + WRAP_UP_END_MARGIN_SECONDS
        timer: Timer | None = None

        def ended() -> None:
            if timer is not None:
                self._timers.discard(timer)
            self.freed(Freed.WRAP_UP_ENDED)

        timer = self._call_later(delay, ended)
        self._timers.add(timer)

    async def _rounds(self) -> None:
        while self._pending and not self._closing:
            why = frozenset(self._pending)
            self._pending.clear()
            for taker in list(self._takers):
                try:
                    await taker.take(why)
                except Exception:
                    log.exception("offering free agents to %s failed", taker.name)

    def close(self) -> None:
        """No more rounds nor timers (a round under way is the runtime's jobs' to end)."""
        self._closing = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
