"""Who may take a call: the active agents and their skills (the roster).

The database says who may take it (active agents, with the skill when one is needed); presence
says who is free (:mod:`contact_center.routing.claim` claims them). The call desk reads the agents
from a :class:`RosterCache` (reloaded every few seconds) instead of asking the database on every
call; :func:`contact_center.routing.claim.route_call` reads them afresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_core.models import Agent
from crm_core.sql import Executor

ROSTER_TTL_SECONDS = 5.0

_ACTIVE_AGENTS = select(Agent.id, Agent.skills).where(Agent.active.is_(True)).order_by(Agent.id)


def _skill_key(skill: str) -> str:
    return skill.strip().casefold()


@dataclass(frozen=True, slots=True)
class Roster:
    """The active agents (every role may take calls) and their skills, compared without case."""

    agent_ids: tuple[int, ...]
    skills: dict[int, frozenset[str]]

    @classmethod
    def of(cls, rows: Iterable[tuple[int, list[str] | None]]) -> Roster:
        skills = {agent_id: frozenset(_skill_key(s) for s in names or ()) for agent_id, names in rows}
        return cls(tuple(skills), skills)

    def eligible(self, skill: str | None) -> list[int]:
        wanted = _skill_key(skill) if skill and skill.strip() else None
        if wanted is None:
            return list(self.agent_ids)
        return [agent_id for agent_id in self.agent_ids if wanted in self.skills[agent_id]]

    def is_active(self, agent_id: int | None) -> bool:
        return agent_id is not None and agent_id in self.skills


async def load_roster(db: Executor) -> Roster:
    return Roster.of((await db.execute(_ACTIVE_AGENTS)).tuples())


class RosterCache:
    """The roster, read from the database at most every ``ttl`` seconds (and after :meth:`invalidate`).

    An agent deactivated or given a new skill is routed to accordingly within ``ttl`` seconds on
    every instance. Concurrent callers share one reload; while it runs they use the roster they had.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        ttl: float = ROSTER_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._ttl = ttl
        self._clock = clock
        self._roster: Roster | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._roster = None

    async def get(self) -> Roster:
        roster = self._roster
        if roster is not None and self._clock() - self._loaded_at < self._ttl:
            return roster
        if roster is not None and self._lock.locked():
            return roster
        async with self._lock:
            if self._roster is None or self._clock() - self._loaded_at >= self._ttl:
                async with self._engine.connect() as conn:
                    self._roster = await load_roster(conn)
                self._loaded_at = self._clock()
            return self._roster
