"""Web chat conversations: one chat interaction per conversation, every message stored as it arrives.

A message carries the id its sender chose (``client_id``); a resend after a reconnect hits the
unique (conversation, client id) index and returns the stored message, so nothing is duplicated.
Assignment is a conditional update (``status = waiting``), so two instances never hand the same
waiting chat to two agents.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, bindparam, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import UnitOfWork
from crm_core.errors import NotFound
from crm_core.models import (
    Agent,
    ChatConversation,
    ChatMessage,
    ChatSender,
    ChatStatus,
    ChatVisitor,
    Customer,
    Interaction,
    Ticket,
    utcnow,
)
from crm_core.rules.ticket_status import TicketStatus
from crm_core.services.identity import resolve_visitor
from crm_core.services.interactions import log_interaction
from crm_core.services.sla import customer_wrote
from crm_core.services.tickets import (
    SlaPolicy,
    open_ticket,
    open_ticket_for_customer,
    reopen_for_customer,
)
from crm_core.sql import Executor, insert_ignore
from crm_core.types import Channel, Direction
from crm_core.visibility import Viewer, customer_filter

OPEN_STATUSES = (ChatStatus.WAITING, ChatStatus.ACTIVE)
LEFT_MESSAGE_CATEGORY = "chat-message"


@dataclass(frozen=True, slots=True)
class PreChat:
    """What the visitor told the pre-chat (or leave-a-message) form; every field optional."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    transcript: bool = False


# --- visitors ----------------------------------------------------------------------------------


async def touch_visitor(
    uow: UnitOfWork, visitor_id: str, ip: str | None, now: datetime | None = None
) -> ChatVisitor:
    """The visitor's row, created on first sight; remembers their last address."""
    visitor = await uow.session.get(ChatVisitor, visitor_id)
    if visitor is None:
        values = {"id": visitor_id, "last_ip": ip, "created_at": now or utcnow()}
        await insert_ignore(uow.session, ChatVisitor, values, ["id"])
        visitor = await uow.session.get_one(ChatVisitor, visitor_id)
    if ip and visitor.last_ip != ip:
        visitor.last_ip = ip
    return visitor


async def is_blocked(session: AsyncSession, visitor_id: str) -> bool:
    blocked_at = await session.scalar(select(ChatVisitor.blocked_at).where(ChatVisitor.id == visitor_id))
    return blocked_at is not None


# --- conversations -----------------------------------------------------------------------------


async def open_conversation_of(session: AsyncSession, visitor_id: str) -> ChatConversation | None:
    """The visitor's conversation still waiting or going on, if any."""
    found: ChatConversation | None = await session.scalar(
        select(ChatConversation)
        .where(ChatConversation.visitor_id == visitor_id, ChatConversation.status.in_(OPEN_STATUSES))
        .order_by(ChatConversation.id.desc())
        .limit(1)
    )
    return found


async def latest_conversation_of(session: AsyncSession, visitor_id: str) -> ChatConversation | None:
    """The visitor's latest conversation, open or ended."""
    found: ChatConversation | None = await session.scalar(
        select(ChatConversation)
        .where(ChatConversation.visitor_id == visitor_id)
        .order_by(ChatConversation.id.desc())
        .limit(1)
    )
    return found


async def open_conversation_for_visitor(
    session: AsyncSession, visitor_id: str
) -> tuple[ChatConversation | None, bool]:
    """The visitor's open conversation and whether they are blocked, in one query when they
    have one (the path every message takes)."""
    row = (
        await session.execute(
            select(ChatConversation, ChatVisitor.blocked_at)
            .join(ChatVisitor, ChatVisitor.id == ChatConversation.visitor_id)
            .where(ChatConversation.visitor_id == visitor_id, ChatConversation.status.in_(OPEN_STATUSES))
            .order_by(ChatConversation.id.desc())
            .limit(1)
        )
    ).one_or_none()
    if row is None:
        return None, await is_blocked(session, visitor_id)
    return row[0], row[1] is not None


async def _customer_for(uow: UnitOfWork, visitor: ChatVisitor, prechat: PreChat, region: str) -> Customer:
    if prechat.email or prechat.phone or visitor.customer_id is None:
        resolution = await resolve_visitor(
            uow, region=region, name=prechat.name, email=prechat.email, phone=prechat.phone
        )
        customer = resolution.customer
    else:
        customer = await uow.session.get_one(Customer, visitor.customer_id)
    # A merged record stands for the one it was merged into.
    while customer.merged_into_id is not None:
        customer = await uow.session.get_one(Customer, customer.merged_into_id)
    visitor.customer_id = customer.id
    return customer


async def _new_conversation(
    uow: UnitOfWork,
    visitor: ChatVisitor,
    prechat: PreChat,
    *,
    region: str,
    origin: str | None,
    ip: str | None,
    status: ChatStatus,
    ticket_id: int | None = None,
    customer: Customer | None = None,
    now: datetime | None = None,
) -> tuple[ChatConversation, Customer]:
    customer = customer or await _customer_for(uow, visitor, prechat, region)
    logged = await log_interaction(
        uow,
        channel=Channel.CHAT,
        direction=Direction.INBOUND,
        customer_id=customer.id,
        external_id=f"webchat-{secrets.token_hex(16)}",
        ticket_id=ticket_id,
        status=status.value,
        subject="Web chat",
        meta={"visitor_id": visitor.id, "origin": origin, "name": prechat.name},
        now=now,
    )
    conversation = ChatConversation(
        visitor_id=visitor.id,
        interaction_id=logged.interaction.id,
        customer_id=customer.id,
        ticket_id=ticket_id,
        status=status,
        origin=origin,
        ip=ip,
        visitor_name=prechat.name,
        visitor_email=prechat.email,
        visitor_phone=prechat.phone,
        transcript_to=prechat.email if prechat.transcript and prechat.email else None,
        created_at=logged.interaction.started_at,
    )
    uow.session.add(conversation)
    await uow.session.flush()
    return conversation, customer


async def start_conversation(
    uow: UnitOfWork,
    visitor: ChatVisitor,
    prechat: PreChat,
    *,
    region: str,
    origin: str | None,
    ip: str | None,
    now: datetime | None = None,
) -> tuple[ChatConversation, Customer]:
    """A new conversation waiting for an agent, on the customer the visitor resolves to; it joins
    the customer's open chat ticket (a message they left earlier), if there is one."""
    customer = await _customer_for(uow, visitor, prechat, region)
    ticket = await open_ticket_for_customer(uow.session, customer.id, source_channel=Channel.CHAT)
    return await _new_conversation(
        uow,
        visitor,
        prechat,
        region=region,
        origin=origin,
        ip=ip,
        status=ChatStatus.WAITING,
        ticket_id=ticket.id if ticket else None,
        customer=customer,
        now=now,
    )


async def leave_message(
    uow: UnitOfWork,
    visitor: ChatVisitor,
    prechat: PreChat,
    text: str,
    *,
    region: str,
    origin: str | None,
    ip: str | None,
    sla: SlaPolicy,
    now: datetime | None = None,
) -> tuple[ChatConversation, Ticket]:
    """Nobody to chat with: the visitor's message opens a ticket, answered later by email or SMS."""
    now = now or utcnow()
    customer = await _customer_for(uow, visitor, prechat, region)
    ticket = await open_ticket(
        uow,
        None,
        customer_id=customer.id,
        subject=f"Chat message: {text.splitlines()[0][:80]}",
        sla=sla,
        source_channel=Channel.CHAT,
        category=LEFT_MESSAGE_CATEGORY,
        now=now,
    )
    conversation, _ = await _new_conversation(
        uow,
        visitor,
        prechat,
        region=region,
        origin=origin,
        ip=ip,
        status=ChatStatus.MESSAGE_LEFT,
        ticket_id=ticket.id,
        customer=customer,
        now=now,
    )
    conversation.closed_at = now
    conversation.closed_by = "visitor"
    interaction = await uow.session.get_one(Interaction, conversation.interaction_id)
    interaction.body = text
    interaction.ended_at = now
    await add_message(
        uow, conversation, sender=ChatSender.VISITOR, body=text, client_id="left-message", now=now
    )
    return conversation, ticket


async def add_message(
    uow: UnitOfWork,
    conversation: ChatConversation,
    *,
    sender: ChatSender,
    body: str,
    client_id: str,
    agent_id: int | None = None,
    now: datetime | None = None,
) -> tuple[ChatMessage, bool]:
    """Store a message; the same ``client_id`` again returns the stored one (created False)."""
    at = now or utcnow()
    values = {
        "conversation_id": conversation.id,
        "client_id": client_id,
        "sender": sender,
        "agent_id": agent_id,
        "body": body,
        "created_at": at,
    }
    new_id = await insert_ignore(uow.session, ChatMessage, values, ["conversation_id", "client_id"])
    if new_id is None:
        existing = await uow.session.scalar(
            select(ChatMessage).where(
                ChatMessage.conversation_id == conversation.id, ChatMessage.client_id == client_id
            )
        )
        assert existing is not None
        return existing, False
    if sender is ChatSender.VISITOR and conversation.ticket_id is not None:
        await _visitor_wrote(uow, conversation.ticket_id, at)
    # What was inserted, without reading it back (not attached to the session).
    return ChatMessage(id=new_id, **values), True


async def _visitor_wrote(uow: UnitOfWork, ticket_id: int, at: datetime) -> None:
    """The visitor wrote on the chat's ticket: one waiting on them (pending) opens again; on an
    active one an answer is now due (its SLA clock's next response)."""
    ticket = await uow.session.get_one(Ticket, ticket_id)
    if ticket.status is TicketStatus.PENDING:
        await reopen_for_customer(uow, ticket, "chat", at)
    elif ticket.status in (TicketStatus.NEW, TicketStatus.OPEN) and ticket.first_responded_at is not None:
        await customer_wrote(uow.session, ticket, at)  # (before it, the first response is due)


# The hot path of every visitor message, one statement: stored only while the conversation is
# open (waiting or active) and has no ticket (whose SLA clock :func:`add_message` keeps), and the
# conversation's agent comes back with the new id. Spelled out rather than built with the
# dialects' insert(): SQLAlchemy does not cache the compilation of ON CONFLICT statements. The
# WHERE clause also keeps SQLite from reading ON CONFLICT as a join.
_MESSAGES = ChatMessage.__table__
assert isinstance(_MESSAGES, Table)
_INSERT_VISITOR_MESSAGE = text("""
INSERT INTO chat_messages (conversation_id, client_id, sender, agent_id, body, created_at)
SELECT chat_conversations.id, :client_id, :sender, NULL, :body, :created_at
  FROM chat_conversations
 WHERE chat_conversations.id = :conversation_id
   AND chat_conversations.status IN ('waiting', 'active')
   AND chat_conversations.ticket_id IS NULL
    ON CONFLICT (conversation_id, client_id) DO NOTHING
RETURNING id, (SELECT chat_conversations.agent_id FROM chat_conversations
                WHERE chat_conversations.id = chat_messages.conversation_id)
""").bindparams(*(bindparam(name, type_=_MESSAGES.c[name].type) for name in ("sender", "created_at")))


@dataclass(frozen=True, slots=True)
class StoredVisitorMessage:
    message_id: int
    agent_id: int | None


async def add_visitor_message(
    db: Executor, conversation_id: int, client_id: str, body: str, created_at: datetime
) -> StoredVisitorMessage | None:
    """Store a visitor's message in ``conversation_id`` if it is still open, has no ticket and
    the ``client_id`` is new there; None otherwise (a resend, the conversation ended or has a
    ticket: :func:`add_message` tells which and stores it)."""
    params = {
        "conversation_id": conversation_id,
        "client_id": client_id,
        "sender": ChatSender.VISITOR,
        "body": body,
        "created_at": created_at,
    }
    row = (await db.execute(_INSERT_VISITOR_MESSAGE, params)).first()
    return None if row is None else StoredVisitorMessage(int(row[0]), None if row[1] is None else int(row[1]))


async def messages_of(
    session: AsyncSession, conversation_id: int, limit: int | None = None
) -> list[ChatMessage]:
    """The conversation's messages in order (only the last ``limit`` when given)."""
    stmt = select(ChatMessage).where(ChatMessage.conversation_id == conversation_id)
    if limit is None:
        return list(await session.scalars(stmt.order_by(ChatMessage.id)))
    newest = list(await session.scalars(stmt.order_by(ChatMessage.id.desc()).limit(limit)))
    return newest[::-1]


async def messages_and_names(
    session: AsyncSession, conversation_id: int, limit: int | None = None
) -> tuple[list[ChatMessage], dict[int, str]]:
    """:func:`messages_of` and the names of the agents who wrote them."""
    messages = await messages_of(session, conversation_id, limit)
    names = await agent_names(session, sorted({m.agent_id for m in messages if m.agent_id}))
    return messages, names


async def assign_waiting(
    uow: UnitOfWork, conversation_id: int, agent_id: int, now: datetime | None = None
) -> bool:
    """Give a waiting conversation to ``agent_id``; False if it no longer waits (taken or ended)."""
    now = now or utcnow()
    result = await uow.session.execute(
        update(ChatConversation)
        .where(ChatConversation.id == conversation_id, ChatConversation.status == ChatStatus.WAITING)
        .values(status=ChatStatus.ACTIVE, agent_id=agent_id, assigned_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    conversation = await uow.session.get_one(ChatConversation, conversation_id)
    await uow.session.refresh(conversation)
    interaction = await uow.session.get_one(Interaction, conversation.interaction_id)
    interaction.agent_id = agent_id
    interaction.status = ChatStatus.ACTIVE.value
    await uow.session.flush()
    return True


async def close_conversation(
    uow: UnitOfWork, conversation: ChatConversation, by: str, now: datetime | None = None
) -> bool:
    """End it (visitor, agent or block); False when it had already ended."""
    if conversation.status not in OPEN_STATUSES:
        return False
    now = now or utcnow()
    conversation.status = ChatStatus.CLOSED
    conversation.closed_at = now
    conversation.closed_by = by
    interaction = await uow.session.get_one(Interaction, conversation.interaction_id)
    interaction.status = ChatStatus.CLOSED.value
    interaction.ended_at = now
    interaction.duration_seconds = int((now - conversation.created_at).total_seconds())
    count = await uow.session.scalar(
        select(func.count()).select_from(ChatMessage).where(ChatMessage.conversation_id == conversation.id)
    )
    interaction.summary = f"{count} messages"
    await uow.session.flush()
    return True


async def mark_read(
    uow: UnitOfWork, conversation: ChatConversation, reader: ChatSender, up_to: int
) -> int | None:
    """Move the reader's read mark forward to ``up_to`` (never back, never past the last message);
    returns the new mark, or None when nothing changed."""
    last = await uow.session.scalar(
        select(func.max(ChatMessage.id)).where(ChatMessage.conversation_id == conversation.id)
    )
    mark = min(up_to, int(last or 0))
    current = conversation.visitor_read_id if reader is ChatSender.VISITOR else conversation.agent_read_id
    if mark <= (current or 0):
        return None
    if reader is ChatSender.VISITOR:
        conversation.visitor_read_id = mark
    else:
        conversation.agent_read_id = mark
    await uow.session.flush()
    return mark


# --- agents' reads -----------------------------------------------------------------------------


async def get_visible_conversation(
    session: AsyncSession, viewer: Viewer, conversation_id: int, *, for_update: bool = False
) -> ChatConversation:
    """A conversation the viewer may see: they have (or had) it, or they may see its customer."""
    stmt = (
        select(ChatConversation)
        .join(Customer, Customer.id == ChatConversation.customer_id)
        .where(
            ChatConversation.id == conversation_id,
            or_(ChatConversation.agent_id == viewer.agent_id, customer_filter(viewer)),
        )
    )
    if for_update:
        stmt = stmt.with_for_update(of=ChatConversation)
    found = (await session.execute(stmt)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"chat {conversation_id} not found")
    return found


async def conversations_of_agent(
    session: AsyncSession, agent_id: int, statuses: Sequence[ChatStatus]
) -> list[ChatConversation]:
    rows = await session.scalars(
        select(ChatConversation)
        .where(ChatConversation.agent_id == agent_id, ChatConversation.status.in_(list(statuses)))
        .order_by(ChatConversation.id.desc())
        .limit(500)
    )
    return list(rows)


async def agent_names(session: AsyncSession, agent_ids: Sequence[int]) -> dict[int, str]:
    if not agent_ids:
        return {}
    rows = await session.execute(select(Agent.id, Agent.display_name).where(Agent.id.in_(list(agent_ids))))
    return {int(agent_id): str(name) for agent_id, name in rows.all()}


async def agent_name(session: AsyncSession, agent_id: int | None) -> str | None:
    if agent_id is None:
        return None
    name: str | None = await session.scalar(select(Agent.display_name).where(Agent.id == agent_id))
    return name
