"""Mail: every message in and out (outbound ones delivered through the outbox), attachments,
mailbox checkpoints, ticket participants and the health of the addresses we write to."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_core.models.base import Base, BigIntId, str_enum, utcnow
from crm_core.types import Direction

if TYPE_CHECKING:
    from crm_core.models.interactions import Interaction


class EmailKind(enum.StrEnum):
    MESSAGE = "message"
    AUTO_REPLY = "auto_reply"
    LIST = "list"
    ROBOT = "robot"
    BOUNCE = "bounce"
    LOOP = "loop"
    REPLY = "reply"
    ACKNOWLEDGMENT = "acknowledgment"


class EmailStatus(enum.StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    BOUNCED = "bounced"


class EmailMessage(Base):
    """One message; ``message_key`` (the Message-ID, or a stable hash without one) is unique, so
    the same mail delivered twice or to two of our mailboxes is stored once."""

    __tablename__ = "email_messages"
    __table_args__ = (
        Index("ix_email_messages_ticket", "ticket_id", "id"),
        Index("ix_email_messages_outbox", "status", "next_attempt_at"),
        Index("ix_email_messages_recipient_kind", "recipient", "kind", "created_at"),
        Index("ix_email_messages_parent_key", "parent_key"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    message_key: Mapped[str] = mapped_column(String(255), unique=True)
    message_id: Mapped[str | None] = mapped_column(Text)
    direction: Mapped[Direction] = mapped_column(str_enum(Direction))
    kind: Mapped[EmailKind] = mapped_column(str_enum(EmailKind))
    status: Mapped[EmailStatus] = mapped_column(str_enum(EmailStatus))
    mailbox: Mapped[str | None] = mapped_column(String(100))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id", ondelete="SET NULL"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    from_address: Mapped[str | None] = mapped_column(String(320))
    from_name: Mapped[str | None] = mapped_column(String(200))
    # Outbound: the first recipient (acknowledgment rate limits look it up).
    recipient: Mapped[str | None] = mapped_column(String(320))
    to_addresses: Mapped[list[str]] = mapped_column(default=list)
    cc_addresses: Mapped[list[str]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    in_reply_to: Mapped[str | None] = mapped_column(Text)
    reference_ids: Mapped[list[str]] = mapped_column(default=list)
    # Inbound: the key of the message it answers (In-Reply-To, else the last References entry), so
    # that a message arriving after a reply to it finds the reply's ticket.
    parent_key: Mapped[str | None] = mapped_column(String(255))
    text_body: Mapped[str] = mapped_column(Text, default="")
    html_body: Mapped[str | None] = mapped_column(Text)
    visible_text: Mapped[str] = mapped_column(Text, default="")
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    defects: Mapped[list[str]] = mapped_column(default=list)
    language: Mapped[str | None] = mapped_column(String(16))
    raw_sha256: Mapped[str | None] = mapped_column(String(64))
    raw_size: Mapped[int | None] = mapped_column(BigInteger)
    sent_date: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    """Unused since migration 0016: the outbox row says when the message is due."""
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # Written together in one flush (the ORM orders the inserts); never loaded implicitly.
    interaction: Mapped[Interaction | None] = relationship(lazy="raise")
    attachments: Mapped[list[EmailAttachment]] = relationship(lazy="raise", passive_deletes=True)


class EmailAttachment(Base):
    __tablename__ = "email_attachments"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    email_id: Mapped[int] = mapped_column(ForeignKey("email_messages.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    # None when the attachment was over the size limit and not stored.
    sha256: Mapped[str | None] = mapped_column(String(64))
    content_id: Mapped[str | None] = mapped_column(String(255))
    inline: Mapped[bool] = mapped_column(default=False)
    skipped_reason: Mapped[str | None] = mapped_column(String(200))


class EmailMailboxState(Base):
    """The IMAP checkpoint of one mailbox, written in the same transaction as its messages."""

    __tablename__ = "email_mailbox_states"

    mailbox: Mapped[str] = mapped_column(String(100), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class EmailParticipant(Base):
    """Addresses taking part in a ticket's mail; they may use its subject token."""

    __tablename__ = "email_participants"
    __table_args__ = (UniqueConstraint("ticket_id", "address", name="uq_email_participants_ticket_address"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EmailAddressHealth(Base):
    """An address our mail bounced from."""

    __tablename__ = "email_address_health"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    failing: Mapped[bool] = mapped_column(default=True)
    bounces: Mapped[int] = mapped_column(default=0)
    last_reason: Mapped[str | None] = mapped_column(Text)
    last_bounce_at: Mapped[datetime | None]


class EmailQuarantine(Base):
    """A received message that could not be stored: its raw bytes stay in the content store,
    the mailbox moves on, and an admin retries it (or drops it) once the cause is fixed."""

    __tablename__ = "email_quarantine"
    __table_args__ = (
        UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_email_quarantine_mailbox_uid"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(100))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    message_key: Mapped[str | None] = mapped_column(String(255))
    # None only when even the raw bytes could not be kept (the content store failed).
    raw_sha256: Mapped[str | None] = mapped_column(String(64))
    raw_size: Mapped[int] = mapped_column(BigInteger, default=0)
    from_address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    email_id: Mapped[int | None] = mapped_column(ForeignKey("email_messages.id", ondelete="SET NULL"))
