"""Text messages both ways and the numbers that opted out (outbound texts are delivered through
the outbox, :class:`crm_core.models.outbox.OutboxEntry`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, BigIntId, StorableJSON, Timestamped, str_enum, utcnow
from crm_core.types import Direction


class SmsMessage(Timestamped, Base):
    """One text. Outbound rows are written first (status "queued", no MessageSid) with their outbox
    row, which carries the delivery (claim, retry, idempotency key); ``status`` is what agents see,
    moved forward only, by the outbox and then by delivery receipts."""

    __tablename__ = "sms_messages"
    __table_args__ = (
        Index("ix_sms_messages_ticket", "ticket_id", "id"),
        Index("ix_sms_messages_customer", "customer_id", "id"),
        Index("ix_sms_messages_status", "status", "claimed_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    direction: Mapped[Direction] = mapped_column(str_enum(Direction))
    # "message" (from a customer or an agent), "keyword" (STOP/START/HELP), "help" (our help reply).
    kind: Mapped[str] = mapped_column(String(20), default="message")
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id", ondelete="SET NULL"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    message_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(150), unique=True)
    """Unused since the outbox (migration 0016) holds every key; kept for rows written before."""
    from_number: Mapped[str] = mapped_column(String(40))
    to_number: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text, default="")
    media: Mapped[list[dict[str, Any]]] = mapped_column(StorableJSON, default=list)
    encoding: Mapped[str | None] = mapped_column(String(10))
    segments: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(20))
    error_code: Mapped[int | None]
    error_message: Mapped[str | None] = mapped_column(String(500))
    claimed_at: Mapped[datetime | None]
    """Unused since migration 0016: the outbox row says when a sender claimed the text."""
    sent_at: Mapped[datetime | None]
    resends: Mapped[int] = mapped_column(default=0, server_default="0")
    """Unused since migration 0016: the outbox row counts the resends."""
    answered_at: Mapped[datetime | None]
    """Inbound: when an agent texted the customer back (the no-answer rule then opens no ticket)."""


class SmsSuppression(Base):
    """A number that must never be texted again (it sent STOP, or the carrier reported 21610)."""

    __tablename__ = "sms_suppressions"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    phone: Mapped[str] = mapped_column(String(40), unique=True)
    reason: Mapped[str] = mapped_column(String(30))
    keyword: Mapped[str | None] = mapped_column(String(20))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
