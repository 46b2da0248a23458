"""The chat queue: waiting chats handed to agents with room, and the ends of chats.

A new chat waits in the queue (the database). :meth:`ChatQueue.dispatch_waiting` hands the oldest
waiting chats to agents with room (``contact_center.routing.chat_load`` takes the slot), then tells
the rest their position. It runs after a chat starts or ends, when an agent becomes available
(:meth:`ChatQueue.dispatch_soon`: one round at a time in the background, and one more when asked
meanwhile), and on a timer on every instance (:meth:`ChatQueue.poll`, which first closes the
waiting chats of visitors gone for good).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from channels.webchat.protocol import Assigned, Closed, QueuePosition
from contact_center.chat.events import chat_assigned, chat_closed, to_visitor
from contact_center.chat.views import history
from contact_center.routing.chat_load import ChatRouter
from crm_core.db import UnitOfWork, UnitOfWorkFactory
from crm_core.events import DomainEvent
from crm_core.models import ChatConversation, ChatStatus
from crm_core.ports import Clock
from crm_core.services import chat, chat_queue
from crm_core.services.chat_transcripts import TranscriptMailer, transcript_email
from crm_core.services.customer_card import card_by_customer
from crm_core.sql import AutocommitConnections

log = logging.getLogger(__name__)

SHUTDOWN_WAIT_SECONDS = 5.0
# Visitors remembered as gone (beyond it, the newly gone are not remembered).
MAX_REMEMBERED_VISITORS = 200_000
# A waiting visitor gone this long (no socket here) leaves the queue; a reload comes back sooner.
ABANDON_AFTER_SECONDS = 60.0

Publish = Callable[[Sequence[DomainEvent]], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]


class ChatQueue:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        connections: AutocommitConnections,
        publish: Publish,
        router: ChatRouter,
        mailer: TranscriptMailer,
        *,
        history_limit: int,
        spawn: Spawn,
        connected: Callable[[str], bool],
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._connections = connections
        self._publish = publish
        self.router = router
        self._mailer = mailer
        self._history_limit = history_limit
        self._spawn = spawn
        # Whether the visitor has a socket on this instance.
        self.connected = connected
        # visitor id -> when their last socket here closed; swept by :meth:`sweep_abandoned`.
        self._left: dict[str, float] = {}
        self.abandon_after_seconds = ABANDON_AFTER_SECONDS
        self._dispatch_lock = asyncio.Lock()
        self._rounds: asyncio.Task[None] | None = None
        self._again = False
        self._sweep_due = False
        self._closing = False

    # --- the ends of chats -------------------------------------------------------------------

    async def end(self, uow: UnitOfWork, conversation: ChatConversation, by: str) -> int | None:
        """End the conversation in ``uow`` (the visitor and its agent are told after commit, its
        transcript queued when asked for); returns the agent whose slot frees after commit, for
        :meth:`ended`."""
        had_agent = conversation.agent_id if conversation.status is ChatStatus.ACTIVE else None
        if not await chat.close_conversation(uow, conversation, by, self._clock.now()):
            return None
        uow.record(to_visitor(conversation.visitor_id, Closed(by)))
        if conversation.agent_id is not None:
            uow.record(chat_closed(conversation, by))
        if conversation.transcript_to:
            email = await transcript_email(uow, conversation, conversation.transcript_to)
            await self._mailer.send_transcript(uow, email, self._clock.now())
        return had_agent

    async def ended(self, freed_agent: int | None) -> None:
        """After the commit of :meth:`end`: free the agent's slot; the queue moves."""
        if freed_agent is not None:
            await self.router.release(freed_agent)
        self.dispatch_soon()

    # --- visitors who left -------------------------------------------------------------------

    def left(self, visitor_id: str) -> None:
        """The visitor's last socket here closed: their waiting chat ends unless they come back."""
        if len(self._left) < MAX_REMEMBERED_VISITORS:
            self._left[visitor_id] = self._clock.monotonic()

    def came_back(self, visitor_id: str) -> None:
        """The visitor connected again, maybe to another instance: their waiting chat stays."""
        self._left.pop(visitor_id, None)

    async def sweep_abandoned(self) -> int:
        """Close the waiting chats of visitors gone for ``abandon_after_seconds`` (they would
        otherwise hold their place in the queue, and later an agent, for nobody)."""
        if not self._left:
            return 0
        cutoff = self._clock.monotonic() - self.abandon_after_seconds
        gone = [v for v, at in self._left.items() if at <= cutoff]
        closed = 0
        for visitor_id in gone:
            del self._left[visitor_id]
            if self.connected(visitor_id):
                continue
            async with self._uow() as uow:
                conversation = await chat.open_conversation_of(uow.session, visitor_id)
                if conversation is None or conversation.status is not ChatStatus.WAITING:
                    continue
                await self.end(uow, conversation, "abandoned")
                await uow.commit()
            closed += 1
        if closed:
            self.dispatch_soon()  # the others move up
        return closed

    # --- dispatching -------------------------------------------------------------------------

    def dispatch_soon(self) -> None:
        """Dispatch in the background: a round starts after this call (one round serves every
        call made before it starts)."""
        if self._closing:
            return
        self._again = True
        if self._rounds is None or self._rounds.done():
            self._rounds = self._spawn(self._run_rounds(), "chat-dispatch")

    async def poll(self) -> None:
        """The timer's round: sweep the abandoned chats, then dispatch."""
        self._sweep_due = True
        self.dispatch_soon()

    async def _run_rounds(self) -> None:
        while self._again and not self._closing:
            self._again = False
            try:
                if self._sweep_due:
                    self._sweep_due = False
                    await self.sweep_abandoned()
                await self.dispatch_waiting()
            except Exception:
                log.exception("dispatching waiting chats failed")

    async def dispatch_waiting(self) -> int:
        """Hand the oldest waiting chats to agents with room; tell the rest their position."""
        async with self._dispatch_lock:
            async with self._connections.connect() as conn:
                if not await chat_queue.anyone_waiting(conn):
                    return 0
            assigned = 0
            async with self._uow() as uow:
                waiting = await chat_queue.waiting_conversations(uow.session)
            remaining: list[ChatConversation] = []
            for index, conversation in enumerate(waiting):
                if not await self._assign(conversation):
                    remaining = waiting[index:]
                    break
                assigned += 1
            async with self._uow() as uow:
                still = {c.id for c in await chat_queue.waiting_conversations(uow.session)}
            queue = [c for c in remaining if c.id in still]
            if queue:
                await self._publish(
                    [
                        to_visitor(c.visitor_id, QueuePosition(position))
                        for position, c in enumerate(queue, start=1)
                    ]
                )
            return assigned

    async def _assign(self, conversation: ChatConversation) -> bool:
        """Give one waiting chat to an agent; False when nobody has room."""
        async with self._uow() as uow:
            owner_id = await chat_queue.owner_of_customer(uow.session, conversation.customer_id)
        agent_id = await self.router.claim(owner_id)
        if agent_id is None:
            return False
        try:
            async with self._uow() as uow:
                if not await chat.assign_waiting(uow, conversation.id, agent_id, self._clock.now()):
                    await self.router.release(agent_id)
                    return True  # taken elsewhere or ended: the next one may still fit
                current = await uow.session.get_one(ChatConversation, conversation.id)
                card = await card_by_customer(uow.session, current.customer_id)
                lines = await history(uow, current, self._history_limit)
                uow.record(chat_assigned(current, card.to_json() if card else None, lines))
                agent_name = await chat.agent_name(uow.session, agent_id)
                uow.record(to_visitor(current.visitor_id, Assigned(agent_name)))
                await uow.commit()
        except BaseException:
            await self.router.release(agent_id)
            raise
        return True

    async def close(self) -> None:
        """Let the round under way finish (a task cancelled inside a transaction could keep its
        connection, and SQLite's write lock, past the engine's disposal), then stop."""
        self._closing = True
        rounds = self._rounds
        if rounds is None or rounds.done():
            return
        await asyncio.wait([rounds], timeout=SHUTDOWN_WAIT_SECONDS)
        rounds.cancel()
        await asyncio.gather(rounds, return_exceptions=True)
