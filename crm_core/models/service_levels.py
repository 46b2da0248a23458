"""Service levels: business calendars, SLA policies, their escalation rules, each ticket's SLA clock
and the escalation levels fired on it (one row per ticket and rule: a level fires once)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, BigIntId, Timestamped, str_enum, utcnow
from crm_core.types import Channel, Priority


class SlaTarget(enum.StrEnum):
    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"
    RESOLUTION = "resolution"


class ServiceCalendar(Timestamped, Base):
    """Opening hours a clock counts in (the voice hours are the one named ``voice``)."""

    __tablename__ = "service_calendars"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    timezone: Mapped[str] = mapped_column(String(64))
    # {"monday": "08:00-12:00, 13:00-18:00", ...}: the config form, read by calendar_from_text.
    weekly: Mapped[dict[str, Any]] = mapped_column(default=dict)
    holidays: Mapped[list[str]] = mapped_column(default=list)  # ISO dates


class SlaPolicyRecord(Timestamped, Base):
    """Targets in business minutes; the first active policy by ``position`` whose set conditions
    all match a ticket applies to it (an unset condition matches anything)."""

    __tablename__ = "sla_policies"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    position: Mapped[int] = mapped_column(default=100)
    active: Mapped[bool] = mapped_column(default=True)
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("service_calendars.id", ondelete="SET NULL"))
    priority: Mapped[Priority | None] = mapped_column(str_enum(Priority))
    channel: Mapped[Channel | None] = mapped_column(str_enum(Channel))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    segment: Mapped[str | None] = mapped_column(String(100))
    vip: Mapped[bool | None]
    first_response_minutes: Mapped[int | None]
    next_response_minutes: Mapped[int | None]
    resolution_minutes: Mapped[int | None]


class EscalationAction(enum.StrEnum):
    NOTIFY_ASSIGNEE = "notify_assignee"
    NOTIFY_SUPERVISOR = "notify_supervisor"
    NOTIFY_ADMIN = "notify_admin"
    RAISE_PRIORITY = "raise_priority"
    REASSIGN_TEAM = "reassign_team"


class EscalationRule(Base):
    """One level of a policy's escalation for one target: fires at ``percent`` of the target's
    business time, or ``after_breach_minutes`` (wall-clock) after its due time."""

    __tablename__ = "escalation_rules"
    __table_args__ = (UniqueConstraint("policy_id", "target", "level"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("sla_policies.id", ondelete="CASCADE"))
    target: Mapped[SlaTarget] = mapped_column(str_enum(SlaTarget))
    level: Mapped[int]
    percent: Mapped[int | None]
    after_breach_minutes: Mapped[int | None]
    actions: Mapped[list[str]] = mapped_column(default=list)  # EscalationAction values
    reassign_team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketSla(Base):
    """A ticket's SLA clock: its policy, due times (``None`` while paused or met), pauses, and
    ``next_check_at``, the earliest moment an escalation level not yet fired may be due."""

    __tablename__ = "ticket_slas"
    __table_args__ = (Index("ix_ticket_slas_next_check_at", "next_check_at"),)

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("sla_policies.id", ondelete="SET NULL"))
    started_at: Mapped[datetime]
    first_response_due_at: Mapped[datetime | None]
    next_response_since: Mapped[datetime | None]  # the customer's message still unanswered
    next_response_due_at: Mapped[datetime | None]
    resolution_due_at: Mapped[datetime | None]
    paused_since: Mapped[datetime | None]
    # Closed pauses as "start/end" ISO instants; business time inside them does not count.
    pauses: Mapped[list[str]] = mapped_column(default=list)
    next_check_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class EscalationFiring(Base):
    __tablename__ = "escalation_firings"
    __table_args__ = (UniqueConstraint("ticket_id", "rule_id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("escalation_rules.id", ondelete="CASCADE"))
    target: Mapped[SlaTarget] = mapped_column(str_enum(SlaTarget))
    level: Mapped[int]
    fired_at: Mapped[datetime] = mapped_column(default=utcnow)
