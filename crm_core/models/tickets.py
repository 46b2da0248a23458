"""Service tickets, their comments, and the counter behind ticket numbers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, BigIntId, Timestamped, str_enum, utcnow
from crm_core.rules.ticket_status import TicketStatus
from crm_core.types import Channel, Priority


class Ticket(Timestamped, Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_customer_status", "customer_id", "status"),
        Index("ix_tickets_assignee_status", "assignee_id", "status"),
        Index("ix_tickets_team_status", "team_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    number: Mapped[int] = mapped_column(unique=True)
    subject: Mapped[str] = mapped_column(String(300))
    status: Mapped[TicketStatus] = mapped_column(str_enum(TicketStatus), default=TicketStatus.NEW)
    priority: Mapped[Priority] = mapped_column(str_enum(Priority), default=Priority.NORMAL)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    source_channel: Mapped[Channel | None] = mapped_column(str_enum(Channel))
    linked_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    # What opened it by itself, when a channel did: "callback" (missed calls), "voicemail", ...
    category: Mapped[str | None] = mapped_column(String(30))
    first_response_due_at: Mapped[datetime | None]
    resolution_due_at: Mapped[datetime | None]
    first_responded_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]


class TicketComment(Base):
    __tablename__ = "ticket_comments"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Counter(Base):
    """Named monotonic counters (ticket numbers); incremented with a row lock."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[int]
