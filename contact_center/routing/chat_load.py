"""Who takes a chat: an available agent with room (concurrent chats below the configured
capacity), the customer's owner first, then the least busy (ties to the longest available).

Presence says who is available (chats do not change it, so voice routing is untouched); the
chat load (open chats per agent) is kept here, in memory or in Redis, and a slot is taken
atomically (a lock in memory, one Lua script in Redis): two chats never take an agent's last free
slot twice. A slot is not a claim of the agent (that is the presence claim, for calls): an agent
with chats still takes calls, so a freed slot matters to the chat queue alone.
The database stays the source of truth: the in-memory load is rebuilt from it at start-up, and
:func:`reconcile_load` corrects counts that drift from it (periodically, on one instance at a time).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from redis.asyncio import Redis
from sqlalchemy import select

from contact_center.routing.presence import AgentState, PresenceStore, preferred_first
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Agent
from crm_core.services.chat_queue import active_chats_per_agent

log = logging.getLogger(__name__)

# How far apart the two looks of :func:`reconcile_load` are.
RECONCILE_SETTLE_SECONDS = 5.0


class ChatLoad(Protocol):
    async def claim(self, *, preferred: int | None, candidates: Sequence[int], capacity: int) -> int | None:
        """Take one chat slot: ``preferred`` if it has room, else the candidate with the fewest
        chats (earlier in ``candidates`` on a tie). None when nobody has room."""
        ...

    async def release(self, agent_id: int) -> None:
        """Give a slot back (a chat ended); never below zero."""
        ...

    async def loads(self, agent_ids: Sequence[int]) -> dict[int, int]: ...

    async def reset(self, loads: Mapping[int, int]) -> None:
        """Replace every count (rebuilding from the database)."""
        ...

    async def adjust(self, deltas: Mapping[int, int]) -> None:
        """Add to counts (a correction, see :func:`reconcile_load`); never below zero."""
        ...


class MemoryChatLoad:
    def __init__(self) -> None:
        self._load: dict[int, int] = {}
        self._lock = asyncio.Lock()

    async def claim(self, *, preferred: int | None, candidates: Sequence[int], capacity: int) -> int | None:
        async with self._lock:
            best: int | None = None
            for position, agent_id in enumerate(preferred_first(preferred, candidates)):
                load = self._load.get(agent_id, 0)
                if load >= capacity:
                    continue
                if position == 0 and preferred is not None:
                    best = agent_id
                    break
                if best is None or load < self._load.get(best, 0):
                    best = agent_id
            if best is not None:
                self._load[best] = self._load.get(best, 0) + 1
            return best

    async def release(self, agent_id: int) -> None:
        async with self._lock:
            if self._load.get(agent_id, 0) > 1:
                self._load[agent_id] -= 1
            else:
                self._load.pop(agent_id, None)

    async def loads(self, agent_ids: Sequence[int]) -> dict[int, int]:
        return {agent_id: self._load.get(agent_id, 0) for agent_id in agent_ids}

    async def reset(self, loads: Mapping[int, int]) -> None:
        async with self._lock:
            self._load = {a: n for a, n in loads.items() if n > 0}

    async def adjust(self, deltas: Mapping[int, int]) -> None:
        async with self._lock:
            for agent_id, delta in deltas.items():
                load = max(0, self._load.get(agent_id, 0) + delta)
                if load:
                    self._load[agent_id] = load
                else:
                    self._load.pop(agent_id, None)


# KEYS: the candidates' counters in order (the preferred agent's first when ARGV[2] == '1').
# ARGV: capacity, has_preferred. Returns the 1-based position taken, or false.
_CLAIM = """
local capacity = tonumber(ARGV[1])
local best, best_load
for i, key in ipairs(KEYS) do
  local load = tonumber(redis.call('GET', key) or '0')
  if load < capacity then
    if i == 1 and ARGV[2] == '1' then
      best = i
      break
    end
    if best == nil or load < best_load then
      best, best_load = i, load
    end
  end
end
if best == nil then
  return false
end
redis.call('INCR', KEYS[best])
return best
"""

_RELEASE = """
local load = tonumber(redis.call('GET', KEYS[1]) or '0')
if load > 1 then
  return redis.call('DECR', KEYS[1])
end
redis.call('DEL', KEYS[1])
return 0
"""


# KEYS: counters; ARGV: the delta of each. Never below zero (a counter at zero is deleted).
_ADJUST = """
for i, key in ipairs(KEYS) do
  local load = tonumber(redis.call('GET', key) or '0') + tonumber(ARGV[i])
  if load > 0 then
    redis.call('SET', key, load)
  else
    redis.call('DEL', key)
  end
end
return 0
"""


class RedisChatLoad:
    def __init__(self, redis: Redis, key_prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}chat-load:"
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._adjust = redis.register_script(_ADJUST)

    def key(self, agent_id: int) -> str:
        return f"{self._prefix}{agent_id}"

    async def claim(self, *, preferred: int | None, candidates: Sequence[int], capacity: int) -> int | None:
        ordered = preferred_first(preferred, candidates)
        if not ordered:
            return None
        args = [capacity, "1" if preferred is not None else "0"]
        position: Any = await self._claim(keys=[self.key(a) for a in ordered], args=args)
        return None if position is None else ordered[int(position) - 1]

    async def release(self, agent_id: int) -> None:
        await self._release(keys=[self.key(agent_id)], args=[])

    async def loads(self, agent_ids: Sequence[int]) -> dict[int, int]:
        ids = list(dict.fromkeys(agent_ids))
        if not ids:
            return {}
        values = await self._redis.mget([self.key(a) for a in ids])
        return {a: int(v or 0) for a, v in zip(ids, values, strict=True)}

    async def reset(self, loads: Mapping[int, int]) -> None:
        keys = [k async for k in self._redis.scan_iter(match=f"{self._prefix}*")]
        async with self._redis.pipeline(transaction=True) as pipe:
            if keys:
                pipe.delete(*keys)
            for agent_id, load in loads.items():
                if load > 0:
                    pipe.set(self.key(agent_id), load)
            await pipe.execute()

    async def adjust(self, deltas: Mapping[int, int]) -> None:
        if deltas:
            await self._adjust(keys=[self.key(a) for a in deltas], args=list(deltas.values()))


def chat_load_store(redis: Redis | None, key_prefix: str) -> ChatLoad:
    """Redis when configured (several instances share it), else this process's memory."""
    return MemoryChatLoad() if redis is None else RedisChatLoad(redis, key_prefix)


class ChatRouter:
    """Picks agents for chats from presence and chat load."""

    def __init__(
        self, uow: UnitOfWorkFactory, presence: PresenceStore, load: ChatLoad, capacity: int
    ) -> None:
        self._uow = uow
        self._presence = presence
        self.load = load
        self.capacity = capacity

    async def available_agents(self) -> list[int]:
        """Active agents who are available now, the longest available first."""
        async with self._uow() as uow:
            ids = list(await uow.session.scalars(select(Agent.id).where(Agent.active.is_(True))))
        states = await self._presence.get_many(ids)
        ready = [p for p in states.values() if p.state is AgentState.AVAILABLE]
        return [p.agent_id for p in sorted(ready, key=lambda p: (p.since, p.agent_id))]

    async def anyone_online(self) -> bool:
        return bool(await self.available_agents())

    async def claim(self, owner_id: int | None) -> int | None:
        """Take a chat slot of the owner (if available with room) or of the least busy agent."""
        candidates = await self.available_agents()
        if not candidates:
            return None
        preferred = owner_id if owner_id in candidates else None
        return await self.load.claim(preferred=preferred, candidates=candidates, capacity=self.capacity)

    async def release(self, agent_id: int) -> None:
        await self.load.release(agent_id)


async def reconcile_load(
    uow: UnitOfWorkFactory, load: ChatLoad, *, settle_seconds: float = RECONCILE_SETTLE_SECONDS
) -> dict[int, int]:
    """Bring the chat counts back to the database's active chats where they drifted, and return
    the corrections made (agent id -> delta).

    Counts drift when a process dies between a claim and its chat, when a release is lost while
    Redis was away, or when Redis restarts empty (every agent then looks free). A claim or a
    release in flight also looks like drift for a moment, so a difference is corrected only as
    far as it held on two looks ``settle_seconds`` apart; corrections are deltas, so the claims
    and releases made meanwhile stand.
    """
    first = await _drift(uow, load)
    if not first:
        return {}
    await asyncio.sleep(settle_seconds)
    second = await _drift(uow, load)
    corrections = {a: -lasting for a, d in second.items() if (lasting := _lasting(first.get(a, 0), d))}
    if corrections:
        await load.adjust(corrections)
        log.warning("chat load corrected from the database: %s", corrections)
    return corrections


def _lasting(before: int, now: int) -> int:
    """The part of a drift seen on both looks (same sign, the smaller size)."""
    if before > 0 and now > 0:
        return min(before, now)
    if before < 0 and now < 0:
        return max(before, now)
    return 0


async def _drift(uow: UnitOfWorkFactory, load: ChatLoad) -> dict[int, int]:
    async with uow() as unit:
        truth = await active_chats_per_agent(unit.session)
        agent_ids = list(await unit.session.scalars(select(Agent.id)))
    counted = await load.loads(agent_ids)
    return {a: counted[a] - truth.get(a, 0) for a in agent_ids if counted[a] != truth.get(a, 0)}
