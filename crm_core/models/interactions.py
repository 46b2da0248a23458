"""The log of every contact on every channel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, BigIntId, StorableJSON, str_enum, utcnow
from crm_core.types import Channel, Direction


class Interaction(Base):
    __tablename__ = "interactions"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_interactions_channel_external_id"),
        Index("ix_interactions_customer_started", "customer_id", "started_at"),
        Index("ix_interactions_ticket", "ticket_id"),
        # Only the few calls waiting in the queue, in arrival order (the queue poll's query).
        Index(
            "ix_interactions_waiting",
            "started_at",
            "id",
            postgresql_where=text("status = 'queued-for-agent'"),
            sqlite_where=text("status = 'queued-for-agent'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    direction: Mapped[Direction] = mapped_column(str_enum(Direction))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    external_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(30), default="logged")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    duration_seconds: Mapped[int | None]
    subject: Mapped[str | None] = mapped_column(String(500))
    body: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", StorableJSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # A call's routing state (voice only): how its webhook was answered (crm_core.voice.DecisionKind)
    # and to which agent, when it was queued, offered to an agent and answered (and by whom), the
    # sequence number of the last status callback applied, and whether it ended unanswered. Agent
    # ids as they were at the time, without a foreign key: the call's history outlives the agent.
    call_decision: Mapped[str | None] = mapped_column(String(20))
    routed_agent_id: Mapped[int | None] = mapped_column(BigInteger)
    queued_at: Mapped[datetime | None]
    offered_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    answered_by_id: Mapped[int | None] = mapped_column(BigInteger)
    status_sequence: Mapped[int | None]
    missed: Mapped[bool] = mapped_column(default=False, server_default=false())
