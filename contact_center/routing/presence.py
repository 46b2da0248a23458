"""Agent presence: who can take a call now, kept in memory (here) or in Redis
(:mod:`contact_center.routing.redis_presence`, shared by every instance).

The database says who the agents are; this says what they are doing. It is short-lived state:
losing it sends everybody back to OFFLINE (they set themselves available again), nothing more.

- A wrap-up carries its end (``until``). Once that has passed the agent reads as AVAILABLE since
  ``until``: evaluated on every read and inside the claim, so no timer runs and any instance sees
  the same thing.
- :meth:`PresenceStore.claim` picks an agent and marks them RINGING in one atomic step (a lock in
  memory, one Lua script in Redis): two calls, on one instance or several, never get the same agent.
  It is the only claim of an agent: inbound calls and outbound reservations
  (:func:`contact_center.routing.claim.reserve_for_outbound`) both go through it. A claim may carry
  a time to live: a reservation not taken by then reads as AVAILABLE since its end, like a wrap-up.
- An agent who was rung but did not take the call is :meth:`~PresenceStore.release`\\d back to
  AVAILABLE with the idle ``since`` they had before the claim, so they keep their place at the
  head of the line (the call was not their fault, and resetting it would push the most idle
  agent to the back every time a caller hangs up while it rings).
- Setting an agent to the passive state they are already in (available, away, offline) keeps
  ``since``: pressing "available" twice does not cost an agent their place in the line.

Times are taken from this process's clock (instances are expected to run NTP) and kept in Redis
as integer microseconds since the epoch, so the Lua script compares them without rounding.
The stores publish nothing unless asked: the caller announces changes with :func:`presence_changed`,
or passes ``announce`` to :meth:`~PresenceStore.set` and :meth:`~PresenceStore.wrap_up` (the call's
hot path), which publish the change with it: in the same round trip as the change in Redis when the
store knows the bus's channel, else through ``announce``.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from contact_center import events
from crm_core.events import DomainEvent
from crm_core.models.base import utcnow

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class AgentState(enum.StrEnum):
    AVAILABLE = "available"
    RINGING = "ringing"  # a call is being offered to the agent
    ON_CALL = "on-call"
    WRAP_UP = "wrap-up"
    AWAY = "away"
    OFFLINE = "offline"


# States that end by themselves at ``until``: a wrap-up, and a claim made with a time to live.
EXPIRING = frozenset({AgentState.WRAP_UP, AgentState.RINGING})
# What a claim may find available: the agent is, or was until a moment ago.
_CLAIMABLE = frozenset({AgentState.AVAILABLE, *EXPIRING})

# States an agent stays in until told otherwise; setting one of them again keeps ``since``.
PASSIVE_STATES = frozenset({AgentState.AVAILABLE, AgentState.AWAY, AgentState.OFFLINE})


@dataclass(frozen=True, slots=True)
class Presence:
    agent_id: int
    state: AgentState
    since: datetime
    until: datetime | None = None  # end of a wrap-up, or of a claim with a time to live
    call_sid: str | None = None  # the call (or the reservation's key) the agent is claimed for

    def at(self, now: datetime) -> Presence:
        """What this presence reads as at ``now``: an ended wrap-up (or a claim that outlived its
        time to live) is AVAILABLE since its end."""
        if self.until is not None and self.until <= now and self.state in EXPIRING:
            return Presence(self.agent_id, AgentState.AVAILABLE, self.until)
        return self

    def seconds_in_state(self, now: datetime) -> float:
        return max(0.0, (now - self.since).total_seconds())


@dataclass(frozen=True, slots=True)
class WrappedUp:
    was: AgentState  # RINGING or ON_CALL
    presence: Presence  # the wrap-up
    announced: bool = False  # its presence.changed is published already


Publish = Callable[[Sequence[DomainEvent]], Awaitable[None]]


WRAPPABLE = frozenset({AgentState.RINGING, AgentState.ON_CALL})


def presence_changed(presence: Presence) -> DomainEvent:
    """The ``presence.changed`` event for wallboards (JSON-safe payload, same on every bus)."""
    return events.presence_changed(
        {
            "agent_id": presence.agent_id,
            "state": presence.state.value,
            "since": presence.since.isoformat(),
            "until": presence.until.isoformat() if presence.until else None,
            "call_sid": presence.call_sid,
        }
    )


class PresenceStore(Protocol):
    async def get(self, agent_id: int) -> Presence:
        """The agent's presence; one never seen is OFFLINE since the epoch."""
        ...

    async def get_many(self, agent_ids: Sequence[int]) -> dict[int, Presence]: ...

    async def set(
        self,
        agent_id: int,
        state: AgentState,
        *,
        call_sid: str | None = None,
        wrap_up_seconds: float | None = None,
        announce: Publish | None = None,
        with_events: Sequence[DomainEvent] = (),
    ) -> Presence:
        """Put the agent in ``state``; WRAP_UP needs ``wrap_up_seconds`` (it sets ``until``).

        With ``announce``, ``with_events`` and then the change's ``presence.changed`` are published.
        """
        ...

    async def claim(
        self,
        *,
        preferred: int | None,
        eligible: Sequence[int],
        call_sid: str,
        ttl_seconds: float | None = None,
    ) -> int | None:
        """Atomically pick an AVAILABLE agent and mark them RINGING for ``call_sid``.

        ``preferred`` wins if available; otherwise the agent of ``eligible`` available the
        longest (smallest ``since``, ties to the smaller id). None when nobody is available.
        With ``ttl_seconds`` the claim ends by itself then (the agent reads as AVAILABLE again).
        """
        ...

    async def release(self, agent_id: int, call_sid: str) -> bool:
        """Undo a claim the agent did not take: back to AVAILABLE with their idle ``since``.

        Applies (and returns True) only while the agent is still RINGING for ``call_sid``.
        """
        ...

    async def answer(
        self,
        agent_id: int,
        call_sid: str,
        *,
        announce: Publish | None = None,
        with_events: Sequence[DomainEvent] = (),
    ) -> Presence | None:
        """The agent picked up ``call_sid``: ON_CALL, in one atomic step.

        Applies only while the agent is RINGING for ``call_sid``; None otherwise. Callbacks may
        arrive out of order: a late "answered" after the agent's leg ended (wrap-up, or free again,
        or ringing for another call) must not put them back on a call that is over. With
        ``announce``, ``with_events`` are published either way, with the change when it applies.
        """
        ...

    async def wrap_up(
        self,
        agent_id: int,
        call_sid: str,
        wrap_up_seconds: float,
        *,
        announce: Publish | None = None,
        if_was: AgentState | None = None,
    ) -> WrappedUp | None:
        """The agent's part of ``call_sid`` is over: WRAP_UP, in one atomic step.

        Applies only while the agent is RINGING or ON_CALL for ``call_sid``; None otherwise (another
        call, or they moved on already). With ``announce`` the wrap-up's ``presence.changed`` is
        published when it applies (and the agent was ``if_was``, when given): ``announced`` says so.
        """
        ...

    async def forget(self, agent_id: int) -> None: ...


Clock = Callable[[], datetime]


def claim_until(now: datetime, ttl_seconds: float | None) -> datetime | None:
    """When a claim made ``now`` ends by itself (None: it lasts until released, answered or wrapped up)."""
    if ttl_seconds is None:
        return None
    if ttl_seconds <= 0:
        raise ValueError("a claim's time to live must be positive")
    return now + timedelta(seconds=ttl_seconds)


def until_of(state: AgentState, now: datetime, wrap_up_seconds: float | None) -> datetime | None:
    if state is not AgentState.WRAP_UP:
        return None
    if wrap_up_seconds is None or wrap_up_seconds < 0:
        raise ValueError("wrap-up needs wrap_up_seconds (zero or more)")
    return now + timedelta(seconds=wrap_up_seconds)


def preferred_first(preferred: int | None, eligible: Sequence[int]) -> list[int]:
    """The preferred agent first, then the eligible ones, each once."""
    return list(dict.fromkeys([*([preferred] if preferred is not None else []), *eligible]))


# --- in memory (one instance) ------------------------------------------------------------------


class MemoryPresenceStore:
    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock
        self._presence: dict[int, Presence] = {}
        self._idle_since: dict[int, datetime] = {}  # RINGING agents: when they became available
        self._lock = asyncio.Lock()

    def _read(self, agent_id: int, now: datetime) -> Presence:
        stored = self._presence.get(agent_id)
        return stored.at(now) if stored else Presence(agent_id, AgentState.OFFLINE, EPOCH)

    def _write(self, presence: Presence) -> Presence:
        self._presence[presence.agent_id] = presence
        self._idle_since.pop(presence.agent_id, None)
        return presence

    async def get(self, agent_id: int) -> Presence:
        return self._read(agent_id, self._clock())

    async def get_many(self, agent_ids: Sequence[int]) -> dict[int, Presence]:
        now = self._clock()
        return {agent_id: self._read(agent_id, now) for agent_id in agent_ids}

    async def set(
        self,
        agent_id: int,
        state: AgentState,
        *,
        call_sid: str | None = None,
        wrap_up_seconds: float | None = None,
        announce: Publish | None = None,
        with_events: Sequence[DomainEvent] = (),
    ) -> Presence:
        now = self._clock()
        until = until_of(state, now, wrap_up_seconds)
        async with self._lock:
            current = self._read(agent_id, now)
            since = current.since if state in PASSIVE_STATES and current.state is state else now
            presence = self._write(Presence(agent_id, state, since, until, call_sid))
        if announce is not None:
            await announce([*with_events, presence_changed(presence)])
        return presence

    async def claim(
        self,
        *,
        preferred: int | None,
        eligible: Sequence[int],
        call_sid: str,
        ttl_seconds: float | None = None,
    ) -> int | None:
        async with self._lock:
            now = self._clock()
            until = claim_until(now, ttl_seconds)
            available = []
            for agent_id in preferred_first(preferred, eligible):
                stored = self._presence.get(agent_id)
                # Only an available agent, an ended wrap-up or an expired claim can be claimed (this
                # runs per call: the others are skipped without a look at the time).
                if stored is not None and stored.state in _CLAIMABLE:
                    current = stored.at(now)
                    if current.state is AgentState.AVAILABLE:
                        available.append(current)
            if not available:
                return None
            if available[0].agent_id == preferred:
                chosen = available[0]
            else:
                chosen = min(available, key=lambda p: (p.since, p.agent_id))
            self._write(Presence(chosen.agent_id, AgentState.RINGING, now, until, call_sid))
            self._idle_since[chosen.agent_id] = chosen.since
            return chosen.agent_id

    async def release(self, agent_id: int, call_sid: str) -> bool:
        async with self._lock:
            now = self._clock()
            current = self._read(agent_id, now)
            if current.state is not AgentState.RINGING or current.call_sid != call_sid:
                return False
            since = self._idle_since.get(agent_id, now)
            self._write(Presence(agent_id, AgentState.AVAILABLE, since))
            return True

    async def answer(
        self,
        agent_id: int,
        call_sid: str,
        *,
        announce: Publish | None = None,
        with_events: Sequence[DomainEvent] = (),
    ) -> Presence | None:
        now = self._clock()
        async with self._lock:
            current = self._read(agent_id, now)
            answered = None
            if current.state is AgentState.RINGING and current.call_sid == call_sid:
                answered = self._write(Presence(agent_id, AgentState.ON_CALL, now, call_sid=call_sid))
        events = [*with_events, *([presence_changed(answered)] if answered else [])]
        if announce is not None and events:
            await announce(events)
        return answered

    async def wrap_up(
        self,
        agent_id: int,
        call_sid: str,
        wrap_up_seconds: float,
        *,
        announce: Publish | None = None,
        if_was: AgentState | None = None,
    ) -> WrappedUp | None:
        now = self._clock()
        until = until_of(AgentState.WRAP_UP, now, wrap_up_seconds)
        async with self._lock:
            current = self._read(agent_id, now)
            if current.call_sid != call_sid or current.state not in WRAPPABLE:
                return None
            wrap = self._write(Presence(agent_id, AgentState.WRAP_UP, now, until, call_sid))
        if announce is None or (if_was is not None and current.state is not if_was):
            return WrappedUp(current.state, wrap)
        await announce([presence_changed(wrap)])
        return WrappedUp(current.state, wrap, announced=True)

    async def forget(self, agent_id: int) -> None:
        async with self._lock:
            self._presence.pop(agent_id, None)
            self._idle_since.pop(agent_id, None)
