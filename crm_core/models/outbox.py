"""The outbox: one row per outbound message, whatever its channel, carrying its delivery life cycle
(:mod:`crm_core.outbox`). The message it delivers (``sms_messages`` or ``email_messages``) stays
the record agents see; its status there is a display copy kept up to date from here."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, BigIntId, str_enum, utcnow


class OutboxChannel(enum.StrEnum):
    SMS = "sms"
    EMAIL = "email"


class OutboxStatus(enum.StrEnum):
    QUEUED = "queued"
    """Waiting for a sender: new, given back, or due again at ``next_attempt_at``."""
    CLAIMED = "claimed"
    """Taken by one sender (since ``claimed_at``; for mail until its lease, ``next_attempt_at``)."""
    SENT = "sent"
    """Handed to the provider."""
    REFUSED = "refused"
    """Suppressed at its claim: never handed over."""
    UNCONFIRMED = "unconfirmed"
    """May have reached the provider: settled by asking it, never sent again blindly."""
    FAILED = "failed"
    """Refused by the provider, or given up on."""


class OutboxEntry(Base):
    """One outbound message's delivery. ``idempotency_key`` is unique across channels: a producer
    that writes the same key twice gets one message."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "channel", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    channel: Mapped[OutboxChannel] = mapped_column(str_enum(OutboxChannel))
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    status: Mapped[OutboxStatus] = mapped_column(str_enum(OutboxStatus))
    sender_key: Mapped[str] = mapped_column(String(320))
    """Whose turn it takes on the throttle: the sending number or address."""
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    resends: Mapped[int] = mapped_column(default=0)
    """How many times it was sent again because the provider had no record of it."""
    sms_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("sms_messages.id", ondelete="CASCADE"), unique=True
    )
    email_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("email_messages.id", ondelete="CASCADE"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
