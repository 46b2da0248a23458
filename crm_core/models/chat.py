"""Web chat: visitors, their conversations (each one chat interaction) and every message."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, BigIntId, str_enum, utcnow


class ChatStatus(enum.StrEnum):
    WAITING = "waiting"  # in the queue: no agent has room yet
    ACTIVE = "active"  # an agent has it
    CLOSED = "closed"
    MESSAGE_LEFT = "message-left"  # nobody was there: the visitor left a message (a ticket)


class ChatSender(enum.StrEnum):
    VISITOR = "visitor"
    AGENT = "agent"


class ChatVisitor(Base):
    """A browser holding a signed visitor token; blocking is by visitor (for good) and by the
    address they came from (for a while: :class:`ChatBlockedAddress`)."""

    __tablename__ = "chat_visitors"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    last_ip: Mapped[str | None] = mapped_column(String(64))
    blocked_at: Mapped[datetime | None]
    blocked_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    block_reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChatConversation(Base):
    __tablename__ = "chat_conversations"
    __table_args__ = (
        Index("ix_chat_conversations_status_created", "status", "created_at"),
        Index("ix_chat_conversations_agent_status", "agent_id", "status"),
        Index("ix_chat_conversations_visitor", "visitor_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    visitor_id: Mapped[str] = mapped_column(ForeignKey("chat_visitors.id", ondelete="CASCADE"))
    interaction_id: Mapped[int] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), unique=True
    )
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    status: Mapped[ChatStatus] = mapped_column(str_enum(ChatStatus), default=ChatStatus.WAITING)
    origin: Mapped[str | None] = mapped_column(String(300))
    ip: Mapped[str | None] = mapped_column(String(64))
    visitor_name: Mapped[str | None] = mapped_column(String(200))
    visitor_email: Mapped[str | None] = mapped_column(String(320))
    visitor_phone: Mapped[str | None] = mapped_column(String(20))
    # Where the transcript goes once the chat ends (the visitor asked for it).
    transcript_to: Mapped[str | None] = mapped_column(String(320))
    # The last message id each side has read.
    visitor_read_id: Mapped[int | None] = mapped_column(BigInteger)
    agent_read_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    assigned_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(20))


class ChatMessage(Base):
    """One message; ``client_id`` (chosen by the sender) makes a resend harmless."""

    __tablename__ = "chat_messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "client_id", name="uq_chat_messages_conversation_client"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("chat_conversations.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(64))
    sender: Mapped[ChatSender] = mapped_column(str_enum(ChatSender))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChatTranscriptEmail(Base):
    """A transcript to email to the visitor: an outbox row the mail sender delivers."""

    __tablename__ = "chat_transcript_emails"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("chat_conversations.id", ondelete="CASCADE"), unique=True
    )
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class ChatBlockedAddress(Base):
    """A network address no visitor may chat from until ``until``; set when an agent blocks a
    visitor (who could otherwise come back with a new token). ``ip`` is an IPv4 address or the
    /64 network an IPv6 address belongs to (see ``crm_core.services.chat_blocks.address_key``)."""

    __tablename__ = "chat_blocked_addresses"

    ip: Mapped[str] = mapped_column(String(64), primary_key=True)
    until: Mapped[datetime]
    blocked_at: Mapped[datetime] = mapped_column(default=utcnow)
    blocked_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    # The chat the block came from.
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("chat_conversations.id", ondelete="SET NULL")
    )
    reason: Mapped[str | None] = mapped_column(String(300))
