"""Agent presence in Redis, shared by every instance: one hash per agent, changed by Lua scripts.

The states and their rules are those of :mod:`contact_center.routing.presence` (the in-memory twin);
the scripts here apply them atomically. ``_CLAIM`` is the one claim of an agent on Redis.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from contact_center.bus.redis_bus import channel_name, encode_events
from contact_center.routing.presence import (
    EPOCH,
    PASSIVE_STATES,
    AgentState,
    Clock,
    MemoryPresenceStore,
    Presence,
    PresenceStore,
    Publish,
    WrappedUp,
    claim_until,
    preferred_first,
    presence_changed,
    until_of,
)
from crm_core.events import DomainEvent
from crm_core.models.base import utcnow

# One hash per agent: state, since, until (end of a wrap-up or of a claim with a time to live),
# call_sid, idle_since (while ringing). Times are integer microseconds since the epoch, copied as
# strings inside the scripts: Lua numbers would print large values in exponent form and lose digits.

# What an agent's stored state, since and until read as at ``now`` (Presence.at): a wrap-up or a
# claim whose ``until`` has passed is available since then. Every script starts with it.
_READ = """
local function read(state, since, ends, now)
  if ends and (state == 'wrap-up' or state == 'ringing') and tonumber(ends) <= now then
    return 'available', ends
  end
  return state, since
end
"""

_SET = (
    _READ
    + """
local h = redis.call('HMGET', KEYS[1], 'state', 'since', 'until')
local now = tonumber(ARGV[2])
local state, since = read(h[1], h[2], h[3], now)
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
)

# ARGV: now, call_sid, has_preferred ('1': the first candidate is the preferred agent), the key
# prefix, the candidates' ids joined by commas, and the claim's end ('' when it has no time to
# live). The hashes are named here rather than passed as KEYS: one argument instead of one per
# agent keeps the client's cost per call flat (this runs for every call; a single Redis, not a
# cluster, holds presence).
_CLAIM = (
    _READ
    + """
local now = tonumber(ARGV[1])
local best, best_key, best_since, best_num, best_id
local i = 0
for id in string.gmatch(ARGV[5], '[^,]+') do
  i = i + 1
  local key = ARGV[4] .. id
  local h = redis.call('HMGET', key, 'state', 'since', 'until')
  local state, since = read(h[1], h[2], h[3], now)
  if state == 'available' and since then
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
if ARGV[6] ~= '' then redis.call('HSET', best_key, 'until', ARGV[6]) end
return best
"""
)

# ARGV: call_sid, now. Returns 1 when the agent was ringing for the call (now available), else 0.
_RELEASE = (
    _READ
    + """
local h = redis.call('HMGET', KEYS[1], 'state', 'call_sid', 'idle_since', 'since', 'until')
if read(h[1], h[4], h[5], tonumber(ARGV[2])) ~= 'ringing' or h[2] ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'available', 'since', h[3] or ARGV[2])
return 1
"""
)


# ARGV: call_sid, now, the bus channel and message announcing the answer ('' for none). Returns
# 1 when the agent was ringing for the call (now on it), 0 otherwise.
_ANSWER = (
    _READ
    + """
local h = redis.call('HMGET', KEYS[1], 'state', 'call_sid', 'since', 'until')
if read(h[1], h[3], h[4], tonumber(ARGV[2])) ~= 'ringing' or h[2] ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'on-call', 'since', ARGV[2], 'call_sid', ARGV[1])
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return 1
"""
)


# ARGV: call_sid, now, until, the bus channel and message announcing the wrap-up ('' for none),
# the state the agent must have been in for the announcement ('' for any). Returns the state the
# agent was in, with '+' appended when announced, or false when it did not apply.
_WRAP_UP = (
    _READ
    + """
local h = redis.call('HMGET', KEYS[1], 'state', 'call_sid', 'since', 'until')
local state = read(h[1], h[3], h[4], tonumber(ARGV[2]))
if (state ~= 'ringing' and state ~= 'on-call') or h[2] ~= ARGV[1] then
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
)


# ARGV: state, since, until, call_sid ('' for none). Writes the agent's hash only when it has none
# (presence rebuilt after Redis lost it must not undo a change made since). Returns 1 if written.
_RESTORE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'since', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'until', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'call_sid', ARGV[4]) end
return 1
"""

# The marker of presence's generation: set when missing (ARGV[1], a new token), then read. A
# Redis emptied or restarted without its data comes back without it, so the token changes.
_GENERATION = """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
"""

# Told of the passive state an agent is put in (available, away, offline), to keep it elsewhere.
Chosen = Callable[[Presence], Awaitable[None]]


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
        self._restore = redis.register_script(_RESTORE)
        self._generation = redis.register_script(_GENERATION)
        # Told of every passive state set (see :mod:`contact_center.routing.recovery`).
        self.chosen: Chosen | None = None

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
        until = until_of(state, now, wrap_up_seconds)
        args = [state.value, _micros(now), _micros(until) if until else "", call_sid or "", "", ""]
        # An active state starts now: its announcement is known before the script runs.
        in_script = announce is not None and self._bus_channel is not None and state not in PASSIVE_STATES
        if in_script:
            expected = Presence(agent_id, state, now, until, call_sid or None)
            args[4:] = [str(self._bus_channel), encode_events([*with_events, presence_changed(expected)])]
        since = await self._set(keys=[self.key(agent_id)], args=args)
        presence = Presence(agent_id, state, _moment(_text(since)), until, call_sid or None)
        if self.chosen is not None and state in PASSIVE_STATES:
            await self.chosen(presence)
        if announce is not None and not in_script:
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
        ordered = preferred_first(preferred, eligible)
        if not ordered:
            return None
        now = self._clock()
        until = claim_until(now, ttl_seconds)
        ids = ",".join(map(str, ordered))
        has_preferred = "1" if preferred is not None else "0"
        args = [_micros(now), call_sid, has_preferred, self._prefix, ids, _micros(until) if until else ""]
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
        until = until_of(AgentState.WRAP_UP, now, wrap_up_seconds)
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

    async def generation(self) -> str:
        """A token that stays the same while Redis keeps presence, and changes once it lost it
        (emptied, or restarted without its data)."""
        marker = f"{self._prefix}generation"
        return _text(await self._generation(keys=[marker], args=[secrets.token_hex(8)]))

    async def missing(self, agent_ids: Sequence[int]) -> list[int]:
        """The agents of whom Redis holds no presence at all."""
        ids = list(dict.fromkeys(agent_ids))
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for agent_id in ids:
                pipe.exists(self.key(agent_id))
            found = await pipe.execute()
        return [agent_id for agent_id, exists in zip(ids, found, strict=True) if not int(exists)]

    async def restore(self, presence: Presence) -> bool:
        """Write ``presence`` back unless the agent has one already; True when written."""
        args = [
            presence.state.value,
            _micros(presence.since),
            _micros(presence.until) if presence.until else "",
            presence.call_sid or "",
        ]
        return bool(int(await self._restore(keys=[self.key(presence.agent_id)], args=args)))


def presence_store(redis: Redis | None, key_prefix: str, clock: Clock = utcnow) -> PresenceStore:
    """Redis when configured (several instances share it), else this process's memory.

    In Redis, announcements go straight to the channel of the :class:`RedisBus` under ``key_prefix``.
    Both take their times from ``clock`` (the Lua scripts compare the times they are given; no key
    expires on the server's own time), so a simulated clock holds for either.
    """
    if redis is None:
        return MemoryPresenceStore(clock)
    return RedisPresenceStore(redis, key_prefix, clock, bus_channel=channel_name(key_prefix))
