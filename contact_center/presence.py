"""Agent presence: who can take a call now, kept in memory or in Redis (shared by every instance).

The database says who the agents are; this says what they are doing. It is short-lived state:
losing it sends everybody back to OFFLINE (they set themselves available again), nothing more.

- A wrap-up carries its end (``until``). Once that has passed the agent reads as AVAILABLE since
  ``until``: evaluated on every read and inside the claim, so no timer runs and any instance sees
  the same thing.
- :meth:`PresenceStore.claim` picks an agent and marks them RINGING in one atomic step (a lock in
  memory, one Lua script in Redis): two calls, on one instance or several, never get the same agent.
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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from redis.asyncio import Redis

from contact_center.bus.redis_bus import channel_name, encode_events
from crm_core.events import DomainEvent
from crm_core.models.base import utcnow

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PRESENCE_CHANGED = "presence.changed"


class AgentState(enum.StrEnum):
    AVAILABLE = "available"
    RINGING = "ringing"  # a call is being offered to the agent
    ON_CALL = "on-call"
    WRAP_UP = "wrap-up"
    AWAY = "away"
    OFFLINE = "offline"


_CLAIMABLE = frozenset({AgentState.AVAILABLE, AgentState.WRAP_UP})

# States an agent stays in until told otherwise; setting one of them again keeps ``since``.
PASSIVE_STATES = frozenset({AgentState.AVAILABLE, AgentState.AWAY, AgentState.OFFLINE})


@dataclass(frozen=True, slots=True)
class Presence:
    agent_id: int
    state: AgentState
    since: datetime
    until: datetime | None = None  # end of a wrap-up
    call_sid: str | None = None

    def at(self, now: datetime) -> Presence:
        """What this presence reads as at ``now``: an ended wrap-up is AVAILABLE since its end."""
        if self.state is AgentState.WRAP_UP and self.until is not None and self.until <= now:
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
    return DomainEvent(
        PRESENCE_CHANGED,
        {
            "agent_id": presence.agent_id,
            "state": presence.state.value,
            "since": presence.since.isoformat(),
            "until": presence.until.isoformat() if presence.until else None,
            "call_sid": presence.call_sid,
        },
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

    async def claim(self, *, preferred: int | None, eligible: Sequence[int], call_sid: str) -> int | None:
        """Atomically pick an AVAILABLE agent and mark them RINGING for ``call_sid``.

        ``preferred`` wins if available; otherwise the agent of ``eligible`` available the
        longest (smallest ``since``, ties to the smaller id). None when nobody is available.
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


def _until(state: AgentState, now: datetime, wrap_up_seconds: float | None) -> datetime | None:
    if state is not AgentState.WRAP_UP:
        return None
    if wrap_up_seconds is None or wrap_up_seconds < 0:
        raise ValueError("wrap-up needs wrap_up_seconds (zero or more)")
    return now + timedelta(seconds=wrap_up_seconds)


def _candidates(preferred: int | None, eligible: Sequence[int]) -> list[int]:
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
        until = _until(state, now, wrap_up_seconds)
        async with self._lock:
            current = self._read(agent_id, now)
            since = current.since if state in PASSIVE_STATES and current.state is state else now
            presence = self._write(Presence(agent_id, state, since, until, call_sid))
        if announce is not None:
            await announce([*with_events, presence_changed(presence)])
        return presence

    async def claim(self, *, preferred: int | None, eligible: Sequence[int], call_sid: str) -> int | None:
        async with self._lock:
            now = self._clock()
            available = []
            for agent_id in _candidates(preferred, eligible):
                stored = self._presence.get(agent_id)
                # Only an available agent or an ended wrap-up can be claimed (this runs per call).
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
            self._write(Presence(chosen.agent_id, AgentState.RINGING, now, call_sid=call_sid))
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
        until = _until(AgentState.WRAP_UP, now, wrap_up_seconds)
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


# --- Redis (several instances) -----------------------------------------------------------------
#
# One hash per agent: state, since, until (wrap-up), call_sid, idle_since (while ringing).
# Times are integer microseconds since the epoch, copied as strings inside the scripts: Lua
# numbers would print large values in exponent form and lose digits.

_SET = """
local h = redis.call('HMGET', KEYS[1], 'state', 'since', 'until')
local now = tonumber(ARGV[2])
local state, since = h[1], h[2]
if state == 'wrap-up' and h[3] and tonumber(h[3]) <= now then
  state, since = 'available', h[3]
end
local passive = ARGV[1] == 'available' or ARGV[1] == 'away' or ARGV[1] == 'offline'
if not (passive and state == ARGV[1] and since) then
  since = ARGV[2]
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'since', since)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'until', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'call_sid', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return since
"""

# ARGV: now, call_sid, has_preferred ('1': the first candidate is the preferred agent), the key
# prefix, then the candidates' ids joined by commas. The hashes are named here rather than passed
# as KEYS: one argument instead of one per agent keeps the client's cost per call flat (this runs
# for every call; a single Redis, not a cluster, holds presence).
_CLAIM = """
local now = tonumber(ARGV[1])
local best, best_key, best_since, best_num, best_id
local i = 0
for id in string.gmatch(ARGV[5], '[^,]+') do
  i = i + 1
  local key = ARGV[4] .. id
  local h = redis.call('HMGET', key, 'state', 'since', 'until')
  local since
  if h[1] == 'available' then
    since = h[2]
  elseif h[1] == 'wrap-up' and h[3] and tonumber(h[3]) <= now then
    since = h[3]
  end
  if since then
    local num, num_id = tonumber(since), tonumber(id)
    if i == 1 and ARGV[3] == '1' then
      best, best_key, best_since = id, key, since
      break
    end
    if best == nil or num < best_num or (num == best_num and num_id < best_id) then
      best, best_key, best_since, best_num, best_id = id, key, since, num, num_id
    end
  end
end
if best == nil then
  return false
end
redis.call('DEL', best_key)
redis.call('HSET', best_key, 'state', 'ringing', 'since', ARGV[1], 'call_sid', ARGV[2],
  'idle_since', best_since)
return best
"""

_RELEASE = """
local h = redis.call('HMGET', KEYS[1], 'state', 'call_sid', 'idle_since')
if h[1] ~= 'ringing' or h[2] ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'available', 'since', h[3] or ARGV[2])
return 1
"""


# ARGV: call_sid, now, the bus channel and message announcing the answer ('' for none). Returns
# 1 when the agent was ringing for the call (now on it), 0 otherwise.
_ANSWER = """
local h = redis.call('HMGET', KEYS[1], 'state', 'call_sid')
if h[1] ~= 'ringing' or h[2] ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'on-call', 'since', ARGV[2], 'call_sid', ARGV[1])
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return 1
"""


# ARGV: call_sid, now, until, the bus channel and message announcing the wrap-up ('' for none),
# the state the agent must have been in for the announcement ('' for any). Returns the state the
# agent was in, with '+' appended when announced, or false when it did not apply.
_WRAP_UP = """
local h = redis.call('HMGET', KEYS[1], 'state', 'call_sid')
if (h[1] ~= 'ringing' and h[1] ~= 'on-call') or h[2] ~= ARGV[1] then
  return false
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'wrap-up', 'since', ARGV[2], 'until', ARGV[3], 'call_sid', ARGV[1])
if ARGV[4] ~= '' and (ARGV[6] == '' or ARGV[6] == h[1]) then
  redis.call('PUBLISH', ARGV[4], ARGV[5])
  return h[1] .. '+'
end
return h[1]
"""


def _micros(moment: datetime) -> str:
    delta = moment - EPOCH
    return str((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def _moment(raw: Any) -> datetime:
    return EPOCH + timedelta(microseconds=int(raw))


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class RedisPresenceStore:
    """Presence in Redis. With ``bus_channel`` (the Redis bus's channel: every instance listens to
    it) announcements are published by the scripts that make the changes, in the same round trip."""

    def __init__(
        self, redis: Redis, key_prefix: str, clock: Clock = utcnow, *, bus_channel: str | None = None
    ) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}presence:"
        self._clock = clock
        self._bus_channel = bus_channel
        self._set = redis.register_script(_SET)
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._wrap_up = redis.register_script(_WRAP_UP)
        self._answer = redis.register_script(_ANSWER)

    def key(self, agent_id: int) -> str:
        return f"{self._prefix}{agent_id}"

    def _decode(self, agent_id: int, fields: Mapping[Any, Any], now: datetime) -> Presence:
        data = {_text(k): _text(v) for k, v in fields.items()}
        if "state" not in data or "since" not in data:
            return Presence(agent_id, AgentState.OFFLINE, EPOCH)
        try:
            state = AgentState(data["state"])
        except ValueError:
            return Presence(agent_id, AgentState.OFFLINE, EPOCH)
        until = _moment(data["until"]) if data.get("until") else None
        presence = Presence(agent_id, state, _moment(data["since"]), until, data.get("call_sid") or None)
        return presence.at(now)

    async def get(self, agent_id: int) -> Presence:
        fields = await self._redis.hgetall(self.key(agent_id))
        return self._decode(agent_id, fields, self._clock())

    async def get_many(self, agent_ids: Sequence[int]) -> dict[int, Presence]:
        ids = list(dict.fromkeys(agent_ids))
        if not ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for agent_id in ids:
                pipe.hgetall(self.key(agent_id))
            rows = await pipe.execute()
        now = self._clock()
        return {agent_id: self._decode(agent_id, row, now) for agent_id, row in zip(ids, rows, strict=True)}

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
        until = _until(state, now, wrap_up_seconds)
        args = [state.value, _micros(now), _micros(until) if until else "", call_sid or "", "", ""]
        # An active state starts now: its announcement is known before the script runs.
        in_script = announce is not None and self._bus_channel is not None and state not in PASSIVE_STATES
        if in_script:
            expected = Presence(agent_id, state, now, until, call_sid or None)
            args[4:] = [str(self._bus_channel), encode_events([*with_events, presence_changed(expected)])]
        since = await self._set(keys=[self.key(agent_id)], args=args)
        presence = Presence(agent_id, state, _moment(_text(since)), until, call_sid or None)
        if announce is not None and not in_script:
            await announce([*with_events, presence_changed(presence)])
        return presence

    async def claim(self, *, preferred: int | None, eligible: Sequence[int], call_sid: str) -> int | None:
        candidates = _candidates(preferred, eligible)
        if not candidates:
            return None
        ids = ",".join(map(str, candidates))
        args = [_micros(self._clock()), call_sid, "1" if preferred is not None else "0", self._prefix, ids]
        winner = await self._claim(keys=[], args=args)
        return None if winner is None else int(_text(winner))

    async def release(self, agent_id: int, call_sid: str) -> bool:
        applied = await self._release(keys=[self.key(agent_id)], args=[call_sid, _micros(self._clock())])
        return bool(int(applied))

    async def answer(
        self,
        agent_id: int,
        call_sid: str,
        *,
        announce: Publish | None = None,
        with_events: Sequence[DomainEvent] = (),
    ) -> Presence | None:
        now = self._clock()
        expected = Presence(agent_id, AgentState.ON_CALL, now, call_sid=call_sid)
        args = [call_sid, _micros(now), "", ""]
        in_script = announce is not None and self._bus_channel is not None
        if in_script:
            args[2:] = [str(self._bus_channel), encode_events([*with_events, presence_changed(expected)])]
        applied = bool(int(await self._answer(keys=[self.key(agent_id)], args=args)))
        if announce is not None and not (applied and in_script):
            events = [*with_events, *([presence_changed(expected)] if applied else [])]
            if events:
                await announce(events)
        return expected if applied else None

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
        until = _until(AgentState.WRAP_UP, now, wrap_up_seconds)
        assert until is not None
        wrap = Presence(agent_id, AgentState.WRAP_UP, now, until, call_sid)
        args = [call_sid, _micros(now), _micros(until), "", "", if_was.value if if_was else ""]
        if announce is not None and self._bus_channel is not None:
            args[3:5] = [self._bus_channel, encode_events([presence_changed(wrap)])]
        raw = await self._wrap_up(keys=[self.key(agent_id)], args=args)
        if raw is None:
            return None
        was_text = _text(raw)
        announced = was_text.endswith("+")
        was = AgentState(was_text.removesuffix("+"))
        if announce is not None and not announced and (if_was is None or was is if_was):
            await announce([presence_changed(wrap)])
            announced = True
        return WrappedUp(was, wrap, announced)

    async def forget(self, agent_id: int) -> None:
        await self._redis.delete(self.key(agent_id))


def presence_store(redis: Redis | None, key_prefix: str) -> PresenceStore:
    """Redis when configured (several instances share it), else this process's memory.

    In Redis, announcements go straight to the channel of the :class:`RedisBus` under ``key_prefix``.
    """
    if redis is None:
        return MemoryPresenceStore()
    return RedisPresenceStore(redis, key_prefix, bus_channel=channel_name(key_prefix))
