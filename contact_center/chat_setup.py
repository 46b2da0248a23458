"""Web chat: the chat desk (what visitors and agents do in a chat) and its wiring into the app.

- Visitors talk over ``/ws/chat`` (channels.webchat); agents over REST (/api/v1/chats) and their
  own socket (``/ws/agent``: typing, read). Everything for an agent goes on the bus as an event
  naming ``agent_id``; everything for a visitor as ``chat.visitor`` naming ``visitor_id``: each
  instance delivers to the sockets it holds, so both ends may be on different instances.
- A new chat waits in the queue (the database) and :meth:`ChatDesk.dispatch_waiting` hands the
  oldest waiting chats to agents with room, then tells the rest their position. It runs after a
  chat starts or ends, when an agent becomes available, and on a timer on every instance.
- Nobody available, or outside the hours in ``[voice.hours]``: the widget offers to leave a
  message, which opens a ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy import select

from channels.webchat.protocol import (
    Close,
    LeaveMessage,
    Read,
    RequestTranscript,
    Send,
    Start,
    Typing,
    VisitorFrame,
    message_frame,
)
from channels.webchat.rate_limits import BatchedRateLimit
from channels.webchat.socket import (
    CLOSE_BLOCKED,
    RateLimited,
    Visitor,
    VisitorBlocked,
    VisitorSockets,
    visitor_socket,
)
from channels.webchat.tokens import VisitorTokens
from contact_center.appkeys import RUNTIME, Runtime
from contact_center.chat_routing import ChatRouter, MemoryChatLoad, chat_load_store, reconcile_load
from contact_center.email.desk import EMAIL_DESK
from contact_center.email.wiring import transcript_mailer
from contact_center.periodic import every
from contact_center.presence import PRESENCE_CHANGED, AgentState
from contact_center.rate_limit import RateLimiter
from contact_center.realtime import register_agent_message
from contact_center.settings import Settings
from crm_core.contact_points import normalize_email
from crm_core.db import UnitOfWork, UnitOfWorkFactory
from crm_core.errors import Forbidden, InvalidInput
from crm_core.events import DomainEvent
from crm_core.models import (
    ChatConversation,
    ChatMessage,
    ChatSender,
    ChatStatus,
    ChatVisitor,
    Customer,
    utcnow,
)
from crm_core.rules.business_hours import BusinessHours
from crm_core.services import chat
from crm_core.services.chat_transcripts import OutboxTranscriptMailer, TranscriptMailer, transcript_email
from crm_core.services.customer_card import card_by_customer
from crm_core.services.email_outbound import EMAIL_DELIVERY
from crm_core.services.tickets import SlaPolicy
from crm_core.sql import AutocommitConnections
from crm_core.visibility import Viewer

log = logging.getLogger(__name__)

CHAT_ASSIGNED = "chat.assigned"
CHAT_MESSAGE = "chat.message"
CHAT_TYPING = "chat.typing"
CHAT_READ = "chat.read"
CHAT_CLOSED = "chat.closed"
VISITOR_FRAME = "chat.visitor"
# A visitor with a waiting chat connected (on any instance): not abandoned, wherever they left.
VISITOR_BACK = "chat.visitor_back"
STATIC_DIR = Path(__file__).resolve().parent / "static" / "chat"
RATE_WINDOW_SECONDS = 60
TYPING_PER_MINUTE = 120
SHUTDOWN_WAIT_SECONDS = 5.0
# Visitors whose open conversation this instance remembers (beyond it, it forgets them all).
MAX_REMEMBERED_VISITORS = 200_000
# A waiting visitor gone this long (no socket here) leaves the queue; a reload comes back sooner.
ABANDON_AFTER_SECONDS = 60.0
# Visitor frames after which the visitor's open conversation is looked up again.
_ENDING_FRAMES = frozenset({"closed", "blocked"})


@dataclass(frozen=True, slots=True)
class ChatPolicy:
    region: str
    sla: SlaPolicy
    hours: BusinessHours
    max_message_chars: int = 2000
    messages_per_minute_per_visitor: int = 30
    messages_per_minute_per_ip: int = 120
    connections_per_minute_per_ip: int = 60
    history_limit: int = 200
    block_address_hours: float = 24.0


def chat_policy(settings: Settings) -> ChatPolicy:
    webchat = settings.webchat
    return ChatPolicy(
        region=settings.crm.default_region,
        sla=settings.crm.sla_policy(),
        hours=settings.voice.hours.business_hours(),
        max_message_chars=webchat.max_message_chars,
        messages_per_minute_per_visitor=webchat.messages_per_minute_per_visitor,
        messages_per_minute_per_ip=webchat.messages_per_minute_per_ip,
        connections_per_minute_per_ip=webchat.connections_per_minute_per_ip,
        history_limit=webchat.history_limit,
        block_address_hours=webchat.block_address_hours,
    )


def allowed_origins(settings: Settings) -> frozenset[str]:
    """The configured origins and the service's own."""
    own = urlsplit(settings.server.public_base_url)
    return frozenset({*settings.webchat.allowed_origins, f"{own.scheme}://{own.netloc}"})


def to_visitor(visitor_id: str, frame: dict[str, Any]) -> DomainEvent:
    return DomainEvent(VISITOR_FRAME, {"visitor_id": visitor_id, "frame": frame})


def message_event(
    conversation_id: int, agent_id: int | None, visitor_id: str, frame: dict[str, Any]
) -> DomainEvent:
    """One event per message: the agent's socket gets it as ``chat.message`` (when the chat has
    an agent) and the visitor's sockets get ``frame`` (see :func:`_chat_ctx`)."""
    return DomainEvent(
        CHAT_MESSAGE,
        {
            "agent_id": agent_id,
            "conversation_id": conversation_id,
            "visitor_id": visitor_id,
            "message": frame,
        },
    )


class RedisCounter:
    """Window counters in Redis, under the keys the service's other rate limits use."""

    def __init__(self, redis: Redis, key_prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}rl:"

    async def add(self, key: str, amount: int, window: int, window_seconds: int) -> int:
        redis_key = f"{self._prefix}{key}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(redis_key, amount)
            pipe.expire(redis_key, window_seconds + 1)
            total, _ = await pipe.execute()
        return int(total)


def _message_frame(message: ChatMessage, names: dict[int, str]) -> dict[str, Any]:
    return message_frame(
        message_id=message.id,
        client_id=message.client_id,
        sender=message.sender.value,
        text=message.body,
        at=message.created_at,
        agent_name=names.get(message.agent_id) if message.agent_id else None,
    )


class ChatDesk:
    """Implements channels.webchat's ``VisitorDesk`` and the agents' side of a chat."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        publish: Callable[[Sequence[DomainEvent]], Awaitable[None]],
        router: ChatRouter,
        limiter: RateLimiter,
        policy: ChatPolicy,
        mailer: TranscriptMailer,
        message_limits: BatchedRateLimit | None = None,
    ) -> None:
        self._uow = uow
        self._publish = publish
        self.router = router
        self._limiter = limiter
        self._message_limits = message_limits or BatchedRateLimit(None)
        self._policy = policy
        self._mailer = mailer
        # Messages are single statements on kept autocommit connections.
        self._connections = AutocommitConnections(uow.engine)
        # visitor id -> their open conversation, as last seen here. Only a hint: the message's
        # insert itself checks the conversation is still open (and reads its agent).
        self._open: dict[str, int] = {}
        # visitor id -> when their last socket here closed; swept by :meth:`sweep_abandoned`.
        self._left: dict[str, float] = {}
        self.abandon_after_seconds = ABANDON_AFTER_SECONDS
        self.connected: Callable[[str], bool] = lambda _visitor_id: False
        self._dispatch_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[int]] = set()

    # --- helpers ---------------------------------------------------------------------------

    async def online(self) -> bool:
        return self._policy.hours.is_open(utcnow()) and await self.router.anyone_online()

    def dispatch_soon(self) -> None:
        task = asyncio.create_task(self.dispatch_waiting())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Let running dispatches finish (a task cancelled inside a transaction could keep its
        connection, and SQLite's write lock, past the engine's disposal), then cancel stragglers."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_WAIT_SECONDS)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._connections.close()

    def remember(self, visitor_id: str, conversation_id: int) -> None:
        if len(self._open) >= MAX_REMEMBERED_VISITORS:
            self._open.clear()
        self._open[visitor_id] = conversation_id

    def forget(self, visitor_id: str) -> None:
        self._open.pop(visitor_id, None)

    def left(self, visitor: Visitor) -> None:
        self._open.pop(visitor.visitor_id, None)
        if len(self._left) < MAX_REMEMBERED_VISITORS:
            self._left[visitor.visitor_id] = time.monotonic()

    def came_back(self, visitor_id: str) -> None:
        """The visitor connected again, maybe to another instance: their waiting chat stays."""
        self._left.pop(visitor_id, None)

    async def sweep_abandoned(self) -> int:
        """Close the waiting chats of visitors gone for ``abandon_after_seconds`` (they would
        otherwise hold their place in the queue, and later an agent, for nobody)."""
        if not self._left:
            return 0
        cutoff = time.monotonic() - self.abandon_after_seconds
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
                await self._close(uow, conversation, "abandoned")
                await uow.commit()
            closed += 1
        if closed:
            self.dispatch_soon()  # the others move up
        return closed

    async def _history(self, uow: UnitOfWork, conversation: ChatConversation) -> list[dict[str, Any]]:
        messages = await chat.messages_of(uow.session, conversation.id, self._policy.history_limit)
        names = await chat.agent_names(uow.session, sorted({m.agent_id for m in messages if m.agent_id}))
        return [_message_frame(m, names) for m in messages]

    async def _state(self, uow: UnitOfWork, conversation: ChatConversation) -> dict[str, Any]:
        names = await chat.agent_names(uow.session, [conversation.agent_id] if conversation.agent_id else [])
        state: dict[str, Any] = {
            "id": conversation.id,
            "status": conversation.status.value,
            "agent_name": names.get(conversation.agent_id or 0),
            "visitor_read_id": conversation.visitor_read_id,
            "agent_read_id": conversation.agent_read_id,
        }
        if conversation.status is ChatStatus.WAITING:
            state["position"] = await chat.queue_position(uow.session, conversation)
        return state

    async def _hit(self, visitor: Visitor) -> None:
        policy = self._policy
        limits = self._message_limits
        if not await limits.hit(
            f"chat:msg:v:{visitor.visitor_id}", policy.messages_per_minute_per_visitor, RATE_WINDOW_SECONDS
        ):
            raise RateLimited("you are sending messages too fast; wait a moment")
        if visitor.ip and not await limits.hit(
            f"chat:msg:ip:{visitor.ip}", policy.messages_per_minute_per_ip, RATE_WINDOW_SECONDS
        ):
            raise RateLimited("too many messages from your network; wait a moment")

    async def _visitor(self, uow: UnitOfWork, visitor: Visitor) -> ChatVisitor:
        """The visitor's row; refused when they, or the address they come from, are blocked
        (checked as they connect and start, not per message)."""
        if await chat.address_blocked(uow.session, visitor.ip):
            raise VisitorBlocked
        row = await chat.touch_visitor(uow, visitor.visitor_id, visitor.ip)
        if row.blocked_at is not None:
            raise VisitorBlocked
        return row

    # --- visitors (channels.webchat.socket.VisitorDesk) -------------------------------------

    async def admit(self, ip: str | None) -> bool:
        if not ip:
            return True
        return await self._limiter.hit(
            f"chat:conn:{ip}", self._policy.connections_per_minute_per_ip, RATE_WINDOW_SECONDS
        )

    async def welcome(self, visitor: Visitor) -> dict[str, Any]:
        self._left.pop(visitor.visitor_id, None)
        async with self._uow() as uow:
            await self._visitor(uow, visitor)
            conversation = await chat.open_conversation_of(uow.session, visitor.visitor_id)
            state: dict[str, Any] = {"conversation": None, "history": []}
            if conversation is not None:
                state["conversation"] = await self._state(uow, conversation)
                state["history"] = await self._history(uow, conversation)
            await uow.commit()
        if conversation is not None:
            self.remember(visitor.visitor_id, conversation.id)
            if conversation.status is ChatStatus.WAITING:
                await self._publish([DomainEvent(VISITOR_BACK, {"visitor_id": visitor.visitor_id})])
        state["mode"] = "online" if await self.online() else "offline"
        state["max_message_chars"] = self._policy.max_message_chars
        return state

    async def handle(self, visitor: Visitor, frame: VisitorFrame) -> list[dict[str, Any]]:
        if isinstance(frame, Send):
            return await self._visitor_message(visitor, frame)
        if isinstance(frame, Typing):
            await self._visitor_typing(visitor, frame.typing)
            return []
        if isinstance(frame, Read):
            await self._visitor_read(visitor, frame.up_to)
            return []
        if isinstance(frame, Start):
            return await self._start(visitor, frame)
        if isinstance(frame, LeaveMessage):
            return await self._leave_message(visitor, frame)
        if isinstance(frame, RequestTranscript):
            return await self._request_transcript(visitor, frame.email)
        if isinstance(frame, Close):
            await self._visitor_close(visitor)
            return []
        raise InvalidInput("unknown frame")  # pragma: no cover - the union is exhaustive

    async def _start(self, visitor: Visitor, frame: Start) -> list[dict[str, Any]]:
        await self._hit(visitor)
        prechat = chat.PreChat(
            name=frame.name or None,
            email=frame.email or None,
            phone=frame.phone or None,
            transcript=frame.transcript,
        )
        online = await self.online()  # before the unit of work: never two connections at once
        async with self._uow() as uow:
            row = await self._visitor(uow, visitor)
            conversation = await chat.open_conversation_of(uow.session, visitor.visitor_id)
            if conversation is None:
                if not online:
                    return [{"type": "offline"}]
                conversation, _ = await chat.start_conversation(
                    uow, row, prechat, region=self._policy.region, origin=visitor.origin, ip=visitor.ip
                )
            state = await self._state(uow, conversation)
            await uow.commit()
        self.remember(visitor.visitor_id, conversation.id)
        self.dispatch_soon()
        return [{"type": "started", "conversation": state}]

    async def _visitor_message(self, visitor: Visitor, frame: Send) -> list[dict[str, Any]]:
        client_id = chat.clean_client_id(frame.id)
        text = chat.clean_text(frame.text, self._policy.max_message_chars)
        await self._hit(visitor)
        conversation_id = self._open.get(visitor.visitor_id)
        if conversation_id is not None:
            # The common case: one statement, one event.
            at = utcnow()
            async with self._connections.connect() as conn:
                stored = await chat.add_visitor_message(conn, conversation_id, client_id, text, at)
            if stored is not None:
                out = message_frame(
                    message_id=stored.message_id, client_id=client_id, sender="visitor", text=text, at=at
                )
                await self._publish(
                    [message_event(conversation_id, stored.agent_id, visitor.visitor_id, out)]
                )
                return [{"type": "ack", "id": client_id, "message_id": stored.message_id, "at": out["at"]}]
            self.forget(visitor.visitor_id)  # a resend, or the conversation ended: look it up
        return await self._visitor_message_looked_up(visitor, client_id, text)

    async def _visitor_message_looked_up(
        self, visitor: Visitor, client_id: str, text: str
    ) -> list[dict[str, Any]]:
        async with self._uow() as uow:
            conversation, blocked = await chat.open_conversation_for_visitor(uow.session, visitor.visitor_id)
            if blocked:
                raise VisitorBlocked
            if conversation is None:
                raise InvalidInput("no chat is open: start one first")
            message, created = await chat.add_message(
                uow, conversation, sender=ChatSender.VISITOR, body=text, client_id=client_id
            )
            if created:
                frame_out = _message_frame(message, {})
                uow.record(
                    message_event(conversation.id, conversation.agent_id, visitor.visitor_id, frame_out)
                )
            await uow.commit()
        self.remember(visitor.visitor_id, conversation.id)
        ack = {"type": "ack", "id": client_id, "message_id": message.id, "at": message.created_at.isoformat()}
        return [ack]

    async def _visitor_typing(self, visitor: Visitor, typing: bool) -> None:
        if not await self._limiter.hit(f"chat:typing:{visitor.visitor_id}", TYPING_PER_MINUTE, 60):
            return
        async with self._uow() as uow:
            conversation = await chat.open_conversation_of(uow.session, visitor.visitor_id)
        if conversation is not None and conversation.agent_id is not None:
            await self._publish([self._agent_event(CHAT_TYPING, conversation, typing=typing, who="visitor")])

    async def _visitor_read(self, visitor: Visitor, up_to: int) -> None:
        async with self._uow() as uow:
            conversation = await chat.open_conversation_of(uow.session, visitor.visitor_id)
            if conversation is None:
                return
            mark = await chat.mark_read(uow, conversation, ChatSender.VISITOR, up_to)
            if mark is not None and conversation.agent_id is not None:
                uow.record(self._agent_event(CHAT_READ, conversation, reader="visitor", up_to=mark))
            await uow.commit()

    async def _leave_message(self, visitor: Visitor, frame: LeaveMessage) -> list[dict[str, Any]]:
        text = chat.clean_text(frame.text, self._policy.max_message_chars)
        await self._hit(visitor)
        if not (frame.email or frame.phone):
            raise InvalidInput("leave an email address or a phone number so we can answer", "email")
        prechat = chat.PreChat(name=frame.name or None, email=frame.email or None, phone=frame.phone or None)
        async with self._uow() as uow:
            row = await self._visitor(uow, visitor)
            _, ticket = await chat.leave_message(
                uow,
                row,
                prechat,
                text,
                region=self._policy.region,
                origin=visitor.origin,
                ip=visitor.ip,
                sla=self._policy.sla,
            )
            await uow.commit()
        return [{"type": "message_left", "ticket_number": ticket.number}]

    async def _request_transcript(self, visitor: Visitor, email: str) -> list[dict[str, Any]]:
        address = normalize_email(email)
        await self._hit(visitor)
        async with self._uow() as uow:
            conversation = await uow.session.scalar(
                select(ChatConversation)
                .where(ChatConversation.visitor_id == visitor.visitor_id)
                .order_by(ChatConversation.id.desc())
                .limit(1)
            )
            if conversation is None:
                raise InvalidInput("there is no chat to send yet")
            conversation.transcript_to = address
            queued = False
            if conversation.status not in chat.OPEN_STATUSES:
                queued = await self._mailer.send_transcript(
                    uow, await transcript_email(uow, conversation, address)
                )
            await uow.commit()
        return [{"type": "transcript", "email": address, "queued": queued}]

    async def _visitor_close(self, visitor: Visitor) -> None:
        async with self._uow() as uow:
            conversation = await chat.open_conversation_of(uow.session, visitor.visitor_id)
            if conversation is None:
                return
            freed = await self._close(uow, conversation, "visitor")
            await uow.commit()
        self.forget(visitor.visitor_id)
        await self._after_close(freed)

    # --- closing ---------------------------------------------------------------------------

    async def _close(self, uow: UnitOfWork, conversation: ChatConversation, by: str) -> int | None:
        """End the conversation in ``uow``; returns the agent whose slot frees after commit."""
        had_agent = conversation.agent_id if conversation.status is ChatStatus.ACTIVE else None
        if not await chat.close_conversation(uow, conversation, by):
            return None
        uow.record(to_visitor(conversation.visitor_id, {"type": "closed", "by": by}))
        if conversation.agent_id is not None:
            uow.record(self._agent_event(CHAT_CLOSED, conversation, by=by))
        if conversation.transcript_to:
            email = await transcript_email(uow, conversation, conversation.transcript_to)
            await self._mailer.send_transcript(uow, email)
        return had_agent

    async def _after_close(self, freed_agent: int | None) -> None:
        if freed_agent is not None:
            await self.router.release(freed_agent)
        self.dispatch_soon()

    # --- the queue -------------------------------------------------------------------------

    async def dispatch_waiting(self) -> int:
        """Hand the oldest waiting chats to agents with room; tell the rest their position."""
        async with self._dispatch_lock:
            async with self._connections.connect() as conn:
                if not await chat.anyone_waiting(conn):
                    return 0
            assigned = 0
            async with self._uow() as uow:
                waiting = await chat.waiting_conversations(uow.session)
            remaining: list[ChatConversation] = []
            for index, conversation in enumerate(waiting):
                if not await self._assign(conversation):
                    remaining = waiting[index:]
                    break
                assigned += 1
            async with self._uow() as uow:
                still = {c.id for c in await chat.waiting_conversations(uow.session)}
            queue = [c for c in remaining if c.id in still]
            if queue:
                await self._publish(
                    [
                        to_visitor(c.visitor_id, {"type": "queue", "position": position})
                        for position, c in enumerate(queue, start=1)
                    ]
                )
            return assigned

    async def _assign(self, conversation: ChatConversation) -> bool:
        """Give one waiting chat to an agent; False when nobody has room."""
        async with self._uow() as uow:
            owner_id = await uow.session.scalar(
                select(Customer.owner_id).where(Customer.id == conversation.customer_id)
            )
        agent_id = await self.router.claim(owner_id)
        if agent_id is None:
            return False
        try:
            async with self._uow() as uow:
                if not await chat.assign_waiting(uow, conversation.id, agent_id):
                    await self.router.release(agent_id)
                    return True  # taken elsewhere or ended: the next one may still fit
                current = await uow.session.get_one(ChatConversation, conversation.id)
                card = await card_by_customer(uow.session, current.customer_id)
                names = await chat.agent_names(uow.session, [agent_id])
                uow.record(
                    self._agent_event(
                        CHAT_ASSIGNED,
                        current,
                        interaction_id=current.interaction_id,
                        card=card.to_json() if card else None,
                        visitor={
                            "name": current.visitor_name,
                            "email": current.visitor_email,
                            "phone": current.visitor_phone,
                            "origin": current.origin,
                        },
                        history=await self._history(uow, current),
                    )
                )
                uow.record(
                    to_visitor(current.visitor_id, {"type": "assigned", "agent_name": names.get(agent_id)})
                )
                await uow.commit()
        except BaseException:
            await self.router.release(agent_id)
            raise
        return True

    # --- agents ----------------------------------------------------------------------------

    @staticmethod
    def _agent_event(name: str, conversation: ChatConversation, **payload: Any) -> DomainEvent:
        return DomainEvent(
            name, {"agent_id": conversation.agent_id, "conversation_id": conversation.id, **payload}
        )

    @staticmethod
    def _check_handles(viewer: Viewer, conversation: ChatConversation) -> None:
        if conversation.agent_id != viewer.agent_id and not viewer.is_supervisor:
            raise Forbidden("only the agent who has this chat or a supervisor can act on it")

    async def agent_message(
        self, viewer: Viewer, conversation_id: int, text: str, client_id: str | None
    ) -> tuple[ChatMessage, bool]:
        body = chat.clean_text(text, self._policy.max_message_chars)
        key = chat.clean_client_id(client_id) if client_id else f"agent-{secrets.token_hex(12)}"
        async with self._uow() as uow:
            conversation = await chat.get_visible_conversation(uow.session, viewer, conversation_id)
            self._check_handles(viewer, conversation)
            if conversation.status is not ChatStatus.ACTIVE:
                raise InvalidInput(f"the chat is {conversation.status.value}; messages go to active chats")
            message, created = await chat.add_message(
                uow, conversation, sender=ChatSender.AGENT, body=body, client_id=key, agent_id=viewer.agent_id
            )
            if created:
                names = await chat.agent_names(uow.session, [viewer.agent_id])
                frame = _message_frame(message, names)
                uow.record(
                    message_event(conversation.id, conversation.agent_id, conversation.visitor_id, frame)
                )
            await uow.commit()
        return message, created

    async def agent_read(self, viewer: Viewer, conversation_id: int, up_to: int) -> int | None:
        async with self._uow() as uow:
            conversation = await chat.get_visible_conversation(uow.session, viewer, conversation_id)
            self._check_handles(viewer, conversation)
            mark = await chat.mark_read(uow, conversation, ChatSender.AGENT, up_to)
            if mark is not None:
                uow.record(
                    to_visitor(conversation.visitor_id, {"type": "read", "reader": "agent", "up_to": mark})
                )
            await uow.commit()
        return mark if mark is not None else conversation.agent_read_id

    async def agent_typing(self, agent_id: int, conversation_id: int, typing: bool) -> None:
        async with self._uow() as uow:
            conversation = await uow.session.get(ChatConversation, conversation_id)
        if (
            conversation is None
            or conversation.agent_id != agent_id
            or conversation.status is not ChatStatus.ACTIVE
        ):
            raise InvalidInput(f"chat {conversation_id} is not one of your active chats", "conversation_id")
        await self._publish([to_visitor(conversation.visitor_id, {"type": "typing", "typing": typing})])

    async def agent_close(self, viewer: Viewer, conversation_id: int) -> ChatConversation:
        async with self._uow() as uow:
            conversation = await chat.get_visible_conversation(
                uow.session, viewer, conversation_id, for_update=True
            )
            self._check_handles(viewer, conversation)
            freed = await self._close(uow, conversation, "agent")
            await uow.commit()
        await self._after_close(freed)
        return conversation

    async def block(
        self, viewer: Viewer, conversation_id: int, reason: str | None, address_hours: float | None = None
    ) -> ChatConversation:
        """Block the chat's visitor, and for ``address_hours`` (by default the policy's) the
        address the chat came from; end the chat."""
        hours = self._policy.block_address_hours if address_hours is None else address_hours
        async with self._uow() as uow:
            conversation = await chat.get_visible_conversation(
                uow.session, viewer, conversation_id, for_update=True
            )
            self._check_handles(viewer, conversation)
            visitor = await chat.block_visitor(uow, conversation, viewer.agent_id, reason)
            ip = conversation.ip or visitor.last_ip
            await chat.block_address(uow, conversation, ip, viewer.agent_id, reason, hours)
            freed = await self._close(uow, conversation, "blocked")
            uow.record(to_visitor(conversation.visitor_id, {"type": "blocked"}))
            await uow.commit()
        await self._after_close(freed)
        return conversation

    async def my_chats(self, viewer: Viewer, statuses: Sequence[ChatStatus]) -> list[ChatConversation]:
        async with self._uow() as uow:
            return await chat.conversations_of_agent(uow.session, viewer.agent_id, statuses)

    async def transcript(
        self, viewer: Viewer, conversation_id: int
    ) -> tuple[ChatConversation, list[ChatMessage], dict[int, str]]:
        async with self._uow() as uow:
            conversation = await chat.get_visible_conversation(uow.session, viewer, conversation_id)
            messages = await chat.messages_of(uow.session, conversation.id)
            names = await chat.agent_names(uow.session, sorted({m.agent_id for m in messages if m.agent_id}))
        return conversation, messages, names


# --- wiring ------------------------------------------------------------------------------------

CHAT_DESK = web.AppKey("chat_desk", ChatDesk)
VISITOR_SOCKETS = web.AppKey("visitor_sockets", VisitorSockets)


class _DeskOfApp:
    """Routes are added before start-up, the desk is built at start-up: look it up per call."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def admit(self, ip: str | None) -> bool:
        return await self._app[CHAT_DESK].admit(ip)

    async def welcome(self, visitor: Visitor) -> dict[str, Any]:
        return await self._app[CHAT_DESK].welcome(visitor)

    async def handle(self, visitor: Visitor, frame: VisitorFrame) -> list[dict[str, Any]]:
        return await self._app[CHAT_DESK].handle(visitor, frame)

    def left(self, visitor: Visitor) -> None:
        desk = self._app.get(CHAT_DESK)
        if desk is not None:
            desk.left(visitor)


async def _rebuild_load(runtime: Runtime, router: ChatRouter) -> None:
    if isinstance(router.load, MemoryChatLoad):
        async with runtime.uow() as uow:
            await router.load.reset(await chat.active_chats_per_agent(uow.session))


async def _check_load(runtime: Runtime, router: ChatRouter, every_seconds: float) -> None:
    """:func:`reconcile_load` on one instance per period (a Redis lock when instances share it)."""
    if runtime.redis is not None:
        lock = f"{runtime.settings.redis.key_prefix}chat-load-check"
        if not await runtime.redis.set(lock, "1", nx=True, px=int(every_seconds * 900)):
            return
    try:
        await reconcile_load(runtime.uow, router.load)
    except Exception:
        log.exception("checking the chat load failed")


async def _poll_queue(desk: ChatDesk, every: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
            return
        try:
            await desk.sweep_abandoned()
            await desk.dispatch_waiting()
        except Exception:
            log.exception("dispatching waiting chats failed")


async def _chat_ctx(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    settings = runtime.settings
    load = chat_load_store(runtime.redis, settings.redis.key_prefix)
    counter = None if runtime.redis is None else RedisCounter(runtime.redis, settings.redis.key_prefix)
    router = ChatRouter(runtime.uow, runtime.presence, load, settings.webchat.max_chats_per_agent)
    await _rebuild_load(runtime, router)
    desk = ChatDesk(
        runtime.uow,
        runtime.bus.publish,
        router,
        runtime.limiter,
        chat_policy(settings),
        transcript_mailer(settings) or OutboxTranscriptMailer(),
        BatchedRateLimit(counter, clock=runtime.rate_clock),
    )
    app[CHAT_DESK] = desk
    sockets = app[VISITOR_SOCKETS]
    desk.connected = sockets.connected

    async def deliver(event: DomainEvent) -> None:
        if event.name == CHAT_MESSAGE:
            visitor_id, frame = event.payload.get("visitor_id"), event.payload.get("message")
            if isinstance(visitor_id, str) and isinstance(frame, dict):
                await sockets.send(visitor_id, frame)
        elif event.name == VISITOR_FRAME:
            visitor_id, frame = event.payload.get("visitor_id"), event.payload.get("frame")
            if isinstance(visitor_id, str) and isinstance(frame, dict):
                kind = frame.get("type")
                if kind in _ENDING_FRAMES:
                    desk.forget(visitor_id)
                await sockets.send(visitor_id, frame)
                if kind == "blocked":
                    await sockets.close_visitor(visitor_id, CLOSE_BLOCKED, b"blocked")
        elif event.name == VISITOR_BACK and isinstance(visitor_id := event.payload.get("visitor_id"), str):
            desk.came_back(visitor_id)
        elif event.name == PRESENCE_CHANGED and event.payload.get("state") == AgentState.AVAILABLE.value:
            desk.dispatch_soon()
        elif event.name == EMAIL_DELIVERY and event.payload.get("status") == "queued" and EMAIL_DESK in app:
            app[EMAIL_DESK].wake_outbox()  # a transcript queued by a chat that ended

    unsubscribe = runtime.bus.subscribe(deliver)
    stop = asyncio.Event()
    poller = asyncio.create_task(
        _poll_queue(desk, settings.webchat.queue_poll_seconds, stop), name="chat-queue"
    )
    check = settings.webchat.load_check_seconds
    try:
        with every(check, partial(_check_load, runtime, router, check), "chat-load-check"):
            yield
    finally:
        unsubscribe()
        stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(poller), SHUTDOWN_WAIT_SECONDS)
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        await desk.close()
        await sockets.close_all()


async def _agent_typing(app: web.Application, agent_id: int, payload: dict[str, Any]) -> None:
    conversation_id, typing = payload.get("conversation_id"), payload.get("typing")
    if not isinstance(conversation_id, int) or not isinstance(typing, bool):
        raise InvalidInput("chat.typing needs an integer conversation_id and a boolean typing")
    await app[CHAT_DESK].agent_typing(agent_id, conversation_id, typing)


def setup_chat(app: web.Application, settings: Settings) -> None:
    """The widget's files, the visitor socket and the agents' chat messages; must come after the
    runtime in ``cleanup_ctx``."""
    origins = allowed_origins(settings)
    tokens = VisitorTokens(settings.security.secret_key.get_secret_value())
    sockets = VisitorSockets()
    app[VISITOR_SOCKETS] = sockets
    app.cleanup_ctx.append(_chat_ctx)

    async def close_visitor_sockets(_app: web.Application) -> None:
        # Before the server waits for open requests: a socket left open would hold the shutdown.
        await sockets.close_all()

    app.on_shutdown.append(close_visitor_sockets)
    app.router.add_get("/ws/chat", visitor_socket(_DeskOfApp(app), sockets, tokens, lambda: origins))
    app.router.add_static("/chat/", STATIC_DIR, append_version=False)
    register_agent_message(app, "chat.typing", _agent_typing)
