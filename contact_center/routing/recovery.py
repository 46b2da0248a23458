"""Presence rebuilt by itself after Redis lost it (restarted without its data, or emptied).

Presence in Redis is shared by the instances; without this, Redis coming back empty would leave
every agent offline without a word (nothing is announced) and every call queued until each agent
pressed "available" again. So:

- what agents choose (available, away, offline) and since when is also kept in the database
  (``agent_presence_choices``), written as the Redis store sets it (:attr:`RedisPresenceStore.chosen`);
- every :data:`PRESENCE_CHECK_SECONDS` each instance reads presence's generation marker in Redis
  (:meth:`RedisPresenceStore.generation`). When it changed, Redis lost presence: the instance
  rebuilds the presence of every agent whose socket it holds, from the database (:func:`rebuilt`):
  ringing or on a call still under way, in wrap-up after a call they took that ended less than
  the wrap-up ago (available since the wrap-up's end once that has passed), else what they last
  chose. An agent who connects with no presence at all in Redis gets theirs rebuilt the same way;
- a presence rebuilt is written only where Redis holds none (a change made since wins), announced
  (``presence.changed``, for the consoles; again until this instance hears it back, as the bus
  may still be subscribing again after the outage) and the agents freed are offered to the
  waiting callers and chats (:class:`~contact_center.routing.free_agents.FreeAgents`).

The in-memory store needs none of this: it is lost only with its process.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from redis.exceptions import RedisError
from sqlalchemy import or_, select

from contact_center.appkeys import RUNTIME
from contact_center.events import PRESENCE_CHANGED
from contact_center.routing.free_agents import FreeAgents, Freed
from contact_center.routing.presence import AgentState, Clock, Presence, Publish, presence_changed
from contact_center.routing.redis_presence import RedisPresenceStore
from crm_core.db import UnitOfWorkFactory
from crm_core.events import DomainEvent
from crm_core.models import AgentPresenceChoice, Interaction
from crm_core.rules.call_status import TERMINAL
from crm_core.sql import Executor, dialect_name, insert_module
from crm_core.types import Channel
from crm_core.voice import QUEUED_FOR_AGENT

log = logging.getLogger(__name__)

# How often an instance looks whether Redis lost presence (one round trip).
PRESENCE_CHECK_SECONDS = 2.0
# A call said to be under way for longer than this is not believed (its end was lost).
LIVE_CALL_HOURS = 12
# How long a presence rebuilt may go unheard on the bus before it is announced again (the bus
# may still be subscribing again after the outage that emptied Redis), and how many times.
REANNOUNCE_AFTER_SECONDS = 1.0
REANNOUNCE_TIMES = 20
# A call waiting in the queue is nobody's (its routed agent may be left from an earlier offer).
_ENDED = frozenset(status.value for status in TERMINAL)


@dataclass(frozen=True, slots=True)
class AgentCall:
    """An agent's latest call, as the database knows it."""

    call_sid: str
    routed_agent_id: int | None
    answered_by_id: int | None
    status: str
    started_at: datetime
    offered_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None


def _from_call(agent_id: int, call: AgentCall, wrap_up_seconds: float) -> Presence | None:
    """The presence the agent's latest call leaves them in (None: the call says nothing of it)."""
    live = call.ended_at is None and call.status not in _ENDED
    if live and call.answered_by_id == agent_id and call.answered_at is not None:
        return Presence(agent_id, AgentState.ON_CALL, call.answered_at, call_sid=call.call_sid)
    if (
        live
        and call.routed_agent_id == agent_id
        and call.answered_at is None
        and call.status != QUEUED_FOR_AGENT
    ):
        offered = call.offered_at or call.started_at
        return Presence(agent_id, AgentState.RINGING, offered, call_sid=call.call_sid)
    if not live and call.answered_by_id == agent_id:
        ended = call.ended_at or call.answered_at or call.started_at
        until = ended + timedelta(seconds=wrap_up_seconds)
        return Presence(agent_id, AgentState.WRAP_UP, ended, until, call.call_sid)
    return None


def rebuilt(
    agent_id: int,
    choice: Presence | None,
    call: AgentCall | None,
    wrap_up_seconds: float,
    now: datetime,
) -> Presence | None:
    """The agent's presence from what they last chose and their latest call, whichever is newer;
    None when neither says anything (the agent reads as offline)."""
    from_call = _from_call(agent_id, call, wrap_up_seconds) if call is not None else None
    if from_call is not None and (choice is None or from_call.since >= choice.since):
        return from_call.at(now)
    return choice


async def record_choice(db: Executor, presence: Presence) -> None:
    """Keep the passive state the agent was put in, and since when (one upsert)."""
    table = AgentPresenceChoice.__table__
    values = {"agent_id": presence.agent_id, "state": presence.state.value, "since": presence.since}
    insert = insert_module(dialect_name(db)).insert(table).values(**values)
    await db.execute(
        insert.on_conflict_do_update(
            index_elements=["agent_id"], set_={"state": insert.excluded.state, "since": insert.excluded.since}
        )
    )


async def choices_of(db: Executor, agent_ids: Sequence[int]) -> dict[int, Presence]:
    rows = await db.execute(
        select(AgentPresenceChoice.agent_id, AgentPresenceChoice.state, AgentPresenceChoice.since).where(
            AgentPresenceChoice.agent_id.in_(agent_ids)
        )
    )
    choices = {}
    for agent_id, state, since in rows:
        try:
            choices[agent_id] = Presence(agent_id, AgentState(state), since)
        except ValueError:
            log.warning("agent %s: unknown presence %r kept; ignored", agent_id, state)
    return choices


async def latest_calls(db: Executor, agent_ids: Sequence[int], now: datetime) -> dict[int, AgentCall]:
    """Each agent's latest call (offered to them or taken by them) of the last hours."""
    ids = list(agent_ids)
    rows = await db.execute(
        select(
            Interaction.external_id,
            Interaction.routed_agent_id,
            Interaction.answered_by_id,
            Interaction.status,
            Interaction.started_at,
            Interaction.offered_at,
            Interaction.answered_at,
            Interaction.ended_at,
        )
        .where(
            Interaction.channel == Channel.VOICE,
            Interaction.started_at >= now - timedelta(hours=LIVE_CALL_HOURS),
            or_(Interaction.routed_agent_id.in_(ids), Interaction.answered_by_id.in_(ids)),
        )
        .order_by(Interaction.started_at, Interaction.id)
    )
    latest: dict[int, AgentCall] = {}
    for row in rows:
        call = AgentCall(str(row[0]), *row[1:])
        for agent_id in {call.routed_agent_id, call.answered_by_id}:
            if agent_id is not None:
                latest[agent_id] = call  # in order of start: the last one stays
    return latest


class PresenceRecovery:
    """Notices that Redis lost presence and rebuilds that of the agents ``held`` here."""

    def __init__(
        self,
        store: RedisPresenceStore,
        uow: UnitOfWorkFactory,
        publish: Publish,
        free_agents: FreeAgents,
        held: Callable[[], Iterable[int]],
        wrap_up_seconds: float,
        clock: Clock,
    ) -> None:
        self._store = store
        self._uow = uow
        self._publish = publish
        self._free_agents = free_agents
        self._held = held
        self._wrap_up_seconds = wrap_up_seconds
        self._clock = clock
        self._generation: str | None = None
        self._seen: set[int] = set()  # the agents held at the last check
        # Agents whose rebuilt presence was announced but not heard back on the bus yet: when
        # last announced (on the clock) and how many times.
        self._unheard: dict[int, tuple[datetime, int]] = {}

    async def heard(self, event: DomainEvent) -> None:
        """The bus subscriber: the agent's presence reached this instance's consoles."""
        if event.name == PRESENCE_CHANGED and isinstance(agent_id := event.payload.get("agent_id"), int):
            self._unheard.pop(agent_id, None)

    async def _announce_unheard(self) -> None:
        now = self._clock()
        due = [
            a
            for a, (at, _) in self._unheard.items()
            if (now - at).total_seconds() >= REANNOUNCE_AFTER_SECONDS
        ]
        if not due:
            return
        current = await self._store.get_many(due)
        await self._publish([presence_changed(current[agent_id]) for agent_id in due])
        for agent_id in due:
            times = self._unheard[agent_id][1] + 1
            if times >= REANNOUNCE_TIMES:
                del self._unheard[agent_id]
            else:
                self._unheard[agent_id] = (now, times)

    async def record(self, presence: Presence) -> None:
        """Keep what the agent was put in (the store's :attr:`~RedisPresenceStore.chosen`)."""
        try:
            async with self._uow() as uow:
                await record_choice(uow.session, presence)
                await uow.commit()
        except Exception:
            # Presence itself is set: only its copy, for a Redis that would lose it, is missing.
            log.exception("could not keep agent %s's presence in the database", presence.agent_id)

    async def tick(self) -> None:
        """:meth:`check` on a timer: while Redis is away there is nothing to check."""
        try:
            await self.check()
            await self._announce_unheard()
        except (RedisError, OSError) as exc:
            log.debug("presence not checked: %s", exc)

    async def check(self) -> list[Presence]:
        """Rebuild the presence of the agents held here once Redis lost it, and that of agents
        connected since the last check with none in Redis; returns what was rebuilt."""
        generation = await self._store.generation()
        lost = self._generation is not None and generation != self._generation
        held = set(self._held())
        candidates = held if lost else held - self._seen
        if lost:
            log.warning(
                "presence was lost in redis: rebuilding it for the %d agents connected here", len(held)
            )
        restored = await self.restore(await self._store.missing(sorted(candidates)))
        self._generation, self._seen = generation, held
        return restored

    async def restore(self, agent_ids: Sequence[int]) -> list[Presence]:
        """Rebuild the presence of ``agent_ids`` where Redis holds none; announce it and offer the
        agents freed to the waiting work."""
        if not agent_ids:
            return []
        now = self._clock()
        async with self._uow() as uow:
            choices = await choices_of(uow.session, agent_ids)
            calls = await latest_calls(uow.session, agent_ids, now)
        restored = []
        for agent_id in agent_ids:
            presence = rebuilt(
                agent_id, choices.get(agent_id), calls.get(agent_id), self._wrap_up_seconds, now
            )
            if presence is None or presence.state is AgentState.OFFLINE:
                continue
            if await self._store.restore(presence):
                restored.append(presence)
        if not restored:
            return []
        log.info("presence rebuilt: %s", ", ".join(f"{p.agent_id} {p.state.value}" for p in restored))
        announced_at = self._clock()
        self._unheard.update({p.agent_id: (announced_at, 0) for p in restored})
        await self._publish([presence_changed(p) for p in restored])
        for presence in restored:
            if presence.state is AgentState.WRAP_UP and presence.until is not None:
                self._free_agents.free_at(presence.until)
        if any(p.state is AgentState.AVAILABLE for p in restored):
            self._free_agents.freed(Freed.AVAILABLE)
        return restored


def presence_recovery(
    held: Callable[[], Iterable[int]],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The ``cleanup_ctx`` that keeps presence with Redis (nothing with the in-memory store):
    ``held`` says which agents have a socket on this instance."""

    async def recovery_ctx(app: web.Application) -> AsyncIterator[None]:
        runtime = app[RUNTIME]
        store = runtime.presence
        if not isinstance(store, RedisPresenceStore):
            yield
            return
        recovery = PresenceRecovery(
            store,
            runtime.uow,
            runtime.bus.publish,
            runtime.free_agents,
            held,
            runtime.settings.voice.wrap_up_seconds,
            runtime.clock.now,
        )
        store.chosen = recovery.record
        unsubscribe = runtime.bus.subscribe(recovery.heard)
        try:
            with runtime.jobs.every(PRESENCE_CHECK_SECONDS, recovery.tick, "presence-recovery"):
                yield
        finally:
            unsubscribe()
            store.chosen = None

    return recovery_ctx
