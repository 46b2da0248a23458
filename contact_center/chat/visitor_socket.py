"""What visitors do in a chat, frame by frame: the ``VisitorDesk`` that ``channels.webchat``'s
socket (``/ws/chat``) calls.

Each frame is one use case: check it (the core's text rules, the rate limits), run one unit of
work through the core, publish what the agent (and the visitor's other sockets) must see, answer.
A visitor's message takes the short way when this instance remembers their open conversation
(one statement on a kept connection), else the conversation is looked up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from channels.webchat.protocol import (
    Ack,
    ChatLine,
    Close,
    LeaveMessage,
    MessageLeft,
    Offline,
    Read,
    RequestTranscript,
    Send,
    Start,
    Started,
    TranscriptRequested,
    Typing,
    VisitorFrame,
    VisitorReply,
    Welcome,
)
from channels.webchat.rate_limits import BatchedRateLimit
from channels.webchat.socket import RateLimited, Visitor, VisitorBlocked
from contact_center.chat.events import message_posted, visitor_back, visitor_read, visitor_typing
from contact_center.chat.policy import RATE_WINDOW_SECONDS, ChatPolicy
from contact_center.chat.queue import ChatQueue, Publish
from contact_center.chat.views import conversation_state, history, line_of
from contact_center.rate_limit import RateLimiter
from crm_core.contact_points import normalize_email
from crm_core.db import UnitOfWork, UnitOfWorkFactory
from crm_core.errors import InvalidInput
from crm_core.models import ChatMessage, ChatSender, ChatStatus, ChatVisitor
from crm_core.ports import Clock
from crm_core.rules.chat_text import clean_client_id, clean_text
from crm_core.services import chat, chat_blocks
from crm_core.services.chat_transcripts import TranscriptMailer, transcript_email
from crm_core.sql import AutocommitConnections

TYPING_PER_MINUTE = 120
# Visitors whose open conversation this instance remembers (beyond it, it forgets them all).
MAX_REMEMBERED_VISITORS = 200_000


@dataclass(frozen=True, slots=True)
class _Posted:
    conversation_id: int
    agent_id: int | None
    line: ChatLine
    created: bool


class VisitorChats:
    """Implements ``channels.webchat.socket.VisitorDesk``."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        connections: AutocommitConnections,
        publish: Publish,
        queue: ChatQueue,
        limiter: RateLimiter,
        message_limits: BatchedRateLimit,
        policy: ChatPolicy,
        mailer: TranscriptMailer,
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._connections = connections
        self._publish = publish
        self._queue = queue
        self._limiter = limiter
        self._message_limits = message_limits
        self._policy = policy
        self._mailer = mailer
        # visitor id -> their open conversation, as last seen here. Only a hint: the message's
        # insert itself checks the conversation is still open (and reads its agent).
        self._open: dict[str, int] = {}

    async def online(self) -> bool:
        return self._policy.hours.is_open(self._clock.now()) and await self._queue.router.anyone_online()

    def _remember(self, visitor_id: str, conversation_id: int) -> None:
        if len(self._open) >= MAX_REMEMBERED_VISITORS:
            self._open.clear()
        self._open[visitor_id] = conversation_id

    def forget(self, visitor_id: str) -> None:
        """The visitor's conversation ended (their next message looks up the next one)."""
        self._open.pop(visitor_id, None)

    # --- the socket's life ---------------------------------------------------------------------

    async def admit(self, ip: str | None) -> bool:
        if not ip:
            return True
        return await self._limiter.hit(
            f"chat:conn:{ip}", self._policy.connections_per_minute_per_ip, RATE_WINDOW_SECONDS
        )

    async def welcome(self, visitor: Visitor) -> Welcome:
        self._queue.came_back(visitor.visitor_id)
        state, lines = None, []
        async with self._uow() as uow:
            await self._checked_visitor(uow, visitor)
            conversation = await chat.open_conversation_of(uow.session, visitor.visitor_id)
            if conversation is not None:
                state = await conversation_state(uow, conversation)
                lines = await history(uow, conversation, self._policy.history_limit)
            await uow.commit()
        if conversation is not None:
            self._remember(visitor.visitor_id, conversation.id)
            if conversation.status is ChatStatus.WAITING:
                await self._publish([visitor_back(visitor.visitor_id)])
        return Welcome(await self.online(), self._policy.max_message_chars, state, lines)

    def left(self, visitor: Visitor) -> None:
        self._open.pop(visitor.visitor_id, None)
        self._queue.left(visitor.visitor_id)

    async def handle(self, visitor: Visitor, frame: VisitorFrame) -> Sequence[VisitorReply]:
        match frame:
            case Send():
                return [await self._message(visitor, frame)]
            case Typing():
                await self._typing(visitor, frame.typing)
            case Read():
                await self._read(visitor, frame.up_to)
            case Start():
                return [await self._start(visitor, frame)]
            case LeaveMessage():
                return [await self._leave_message(visitor, frame)]
            case RequestTranscript():
                return [await self._request_transcript(visitor, frame.email)]
            case Close():
                await self._close(visitor)
        return []

    # --- checks --------------------------------------------------------------------------------

    async def _hit(self, visitor: Visitor, counted: list[str] | None = None) -> None:
        """The message rate limits, per visitor and per address (the keys hit go to ``counted``)."""
        policy = self._policy
        limits = self._message_limits
        visitor_key = f"chat:msg:v:{visitor.visitor_id}"
        if counted is not None:
            counted.append(visitor_key)
        if not await limits.hit(visitor_key, policy.messages_per_minute_per_visitor, RATE_WINDOW_SECONDS):
            raise RateLimited("you are sending messages too fast; wait a moment")
        if not visitor.ip:
            return
        address_key = f"chat:msg:ip:{visitor.ip}"
        if counted is not None:
            counted.append(address_key)
        if not await limits.hit(address_key, policy.messages_per_minute_per_ip, RATE_WINDOW_SECONDS):
            raise RateLimited("too many messages from your network; wait a moment")

    def _refund(self, counted: Sequence[str]) -> None:
        for key in counted:
            self._message_limits.refund(key, RATE_WINDOW_SECONDS)

    async def _checked_visitor(self, uow: UnitOfWork, visitor: Visitor) -> ChatVisitor:
        """The visitor's row; refused when they, or the address they come from, are blocked
        (checked as they connect and start, not per message)."""
        if await chat_blocks.address_blocked(uow.session, visitor.ip, now=self._clock.now()):
            raise VisitorBlocked
        row = await chat.touch_visitor(uow, visitor.visitor_id, visitor.ip, self._clock.now())
        if row.blocked_at is not None:
            raise VisitorBlocked
        return row

    # --- one use case per frame ----------------------------------------------------------------

    async def _start(self, visitor: Visitor, frame: Start) -> VisitorReply:
        await self._hit(visitor)
        prechat = chat.PreChat(
            name=frame.name or None,
            email=frame.email or None,
            phone=frame.phone or None,
            transcript=frame.transcript,
        )
        online = await self.online()  # before the unit of work: never two connections at once
        async with self._uow() as uow:
            row = await self._checked_visitor(uow, visitor)
            conversation = await chat.open_conversation_of(uow.session, visitor.visitor_id)
            if conversation is None:
                if not online:
                    return Offline()
                conversation, _ = await chat.start_conversation(
                    uow,
                    row,
                    prechat,
                    region=self._policy.region,
                    origin=visitor.origin,
                    ip=visitor.ip,
                    now=self._clock.now(),
                )
            state = await conversation_state(uow, conversation)
            await uow.commit()
        self._remember(visitor.visitor_id, conversation.id)
        self._queue.dispatch_soon()
        return Started(state)

    async def _message(self, visitor: Visitor, frame: Send) -> VisitorReply:
        client_id = clean_client_id(frame.id)
        text = clean_text(frame.text, self._policy.max_message_chars)
        # A resend of a stored message (the widget resends what it saw no "ack" for, after an
        # outage) is acknowledged again and costs nothing of the rate limits.
        counted: list[str] = []
        try:
            await self._hit(visitor, counted)
        except RateLimited:
            if await self._stored(visitor.visitor_id, client_id) is None:
                raise
        posted = await self._store_message(visitor.visitor_id, client_id, text)
        if not posted.created:
            self._refund(counted)
        # A resend is announced again: the first announcement may have been lost (a bus outage,
        # an instance gone before it published); each socket is shown a message once.
        event = message_posted(posted.conversation_id, posted.agent_id, visitor.visitor_id, posted.line)
        await self._publish([event])
        return Ack(client_id, posted.line.message_id, posted.line.at)

    async def _stored(self, visitor_id: str, client_id: str) -> ChatMessage | None:
        """The visitor's message ``client_id`` in their open conversation, if stored already."""
        async with self._uow() as uow:
            conversation = await chat.open_conversation_of(uow.session, visitor_id)
            if conversation is None:
                return None
            found: ChatMessage | None = await uow.session.scalar(
                select(ChatMessage).where(
                    ChatMessage.conversation_id == conversation.id,
                    ChatMessage.client_id == client_id,
                    ChatMessage.sender == ChatSender.VISITOR,
                )
            )
            return found

    async def _store_message(self, visitor_id: str, client_id: str, text: str) -> _Posted:
        """Store the message in the open conversation this instance remembers (one statement), or
        else in the one looked up; a resend returns the stored message."""
        conversation_id = self._open.get(visitor_id)
        if conversation_id is not None:
            at = self._clock.now()
            async with self._connections.connect() as conn:
                stored = await chat.add_visitor_message(conn, conversation_id, client_id, text, at)
            if stored is not None:
                line = ChatLine(stored.message_id, client_id, ChatSender.VISITOR.value, text, at)
                return _Posted(conversation_id, stored.agent_id, line, created=True)
            self.forget(visitor_id)  # a resend, or the conversation ended: look it up
        async with self._uow() as uow:
            conversation, blocked = await chat.open_conversation_for_visitor(uow.session, visitor_id)
            if blocked:
                raise VisitorBlocked
            if conversation is None:
                raise InvalidInput("no chat is open: start one first")
            message, created = await chat.add_message(
                uow,
                conversation,
                sender=ChatSender.VISITOR,
                body=text,
                client_id=client_id,
                now=self._clock.now(),
            )
            await uow.commit()
        self._remember(visitor_id, conversation.id)
        return _Posted(conversation.id, conversation.agent_id, line_of(message), created)

    async def _typing(self, visitor: Visitor, typing: bool) -> None:
        if not await self._limiter.hit(f"chat:typing:{visitor.visitor_id}", TYPING_PER_MINUTE, 60):
            return
        async with self._uow() as uow:
            conversation = await chat.open_conversation_of(uow.session, visitor.visitor_id)
        if conversation is not None and conversation.agent_id is not None:
            await self._publish([visitor_typing(conversation, typing)])

    async def _read(self, visitor: Visitor, up_to: int) -> None:
        async with self._uow() as uow:
            conversation = await chat.open_conversation_of(uow.session, visitor.visitor_id)
            if conversation is None:
                return
            mark = await chat.mark_read(uow, conversation, ChatSender.VISITOR, up_to)
            if mark is not None and conversation.agent_id is not None:
                uow.record(visitor_read(conversation, mark))
            await uow.commit()

    async def _leave_message(self, visitor: Visitor, frame: LeaveMessage) -> VisitorReply:
        text = clean_text(frame.text, self._policy.max_message_chars)
        await self._hit(visitor)
        if not (frame.email or frame.phone):
            raise InvalidInput("leave an email address or a phone number so we can answer", "email")
        prechat = chat.PreChat(name=frame.name or None, email=frame.email or None, phone=frame.phone or None)
        async with self._uow() as uow:
            row = await self._checked_visitor(uow, visitor)
            _, ticket = await chat.leave_message(
                uow,
                row,
                prechat,
                text,
                region=self._policy.region,
                origin=visitor.origin,
                ip=visitor.ip,
                sla=self._policy.sla,
                now=self._clock.now(),
            )
            await uow.commit()
        return MessageLeft(ticket.number)

    async def _request_transcript(self, visitor: Visitor, email: str) -> VisitorReply:
        address = normalize_email(email)
        await self._hit(visitor)
        async with self._uow() as uow:
            conversation = await chat.latest_conversation_of(uow.session, visitor.visitor_id)
            if conversation is None:
                raise InvalidInput("there is no chat to send yet")
            conversation.transcript_to = address
            queued = False
            if conversation.status not in chat.OPEN_STATUSES:
                queued = await self._mailer.send_transcript(
                    uow, await transcript_email(uow, conversation, address), self._clock.now()
                )
            await uow.commit()
        return TranscriptRequested(address, queued)

    async def _close(self, visitor: Visitor) -> None:
        async with self._uow() as uow:
            conversation = await chat.open_conversation_of(uow.session, visitor.visitor_id)
            if conversation is None:
                return
            freed = await self._queue.end(uow, conversation, "visitor")
            await uow.commit()
        self.forget(visitor.visitor_id)
        await self._queue.ended(freed)
