"""Outbound campaigns: the campaign, its dispositions and retry rules, its call list (one row per
number), every dial made, and the per-minute answer counts the abandonment rule reads."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    false,
    inspect,
)
from sqlalchemy.orm import Mapped, Session, UOWTransaction, mapped_column
from sqlalchemy.orm.attributes import set_committed_value

from crm_core.models.base import Base, BigIntId, Timestamped, str_enum, utcnow
from crm_core.models.customers import Customer


class CampaignMode(enum.StrEnum):
    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    PREDICTIVE = "predictive"


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


class MachineAction(enum.StrEnum):
    HANGUP = "hangup"
    MESSAGE = "message"


class DialOutcome(enum.StrEnum):
    """How a dial ended, as far as the retry rules are concerned."""

    HUMAN = "human"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    MACHINE = "machine"
    FAILED = "failed"


class ContactState(enum.StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    EXHAUSTED = "exhausted"
    DNC = "dnc"


class Campaign(Timestamped, Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), index=True)
    mode: Mapped[CampaignMode] = mapped_column(str_enum(CampaignMode), default=CampaignMode.PROGRESSIVE)
    caller_id: Mapped[str] = mapped_column(String(20))
    script_template: Mapped[str] = mapped_column(Text, default="")
    regulatory_profile: Mapped[str] = mapped_column(String(20), default="us")
    abandonment_target: Mapped[Decimal] = mapped_column(Numeric(6, 4), default=Decimal("0.03"))
    starts_on: Mapped[date | None]
    ends_on: Mapped[date | None]
    daily_start: Mapped[time | None]
    daily_end: Mapped[time | None]
    schedule_timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    status: Mapped[CampaignStatus] = mapped_column(str_enum(CampaignStatus), default=CampaignStatus.DRAFT)
    machine_action: Mapped[MachineAction] = mapped_column(
        str_enum(MachineAction), default=MachineAction.HANGUP
    )
    machine_message: Mapped[str | None] = mapped_column(Text)
    price_per_minute: Mapped[Decimal] = mapped_column(Numeric(10, 4), default=Decimal("0"))
    zone_keys: Mapped[list[str]] = mapped_column(default=list)
    """Every callee zone set found on the call list (see ``CampaignContact.zone_key``); the hopper
    asks which of them are inside the calling window now."""
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))


class CampaignMember(Base):
    """An agent, or a whole team, who works a campaign."""

    __tablename__ = "campaign_members"
    __table_args__ = (
        CheckConstraint("(agent_id IS NULL) <> (team_id IS NULL)", name="agent_or_team"),
        UniqueConstraint("campaign_id", "agent_id", "team_id", name="uq_campaign_members_member"),
        Index("ix_campaign_members_agent", "agent_id"),
        Index("ix_campaign_members_team", "team_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))


class CampaignDisposition(Base):
    __tablename__ = "campaign_dispositions"
    __table_args__ = (UniqueConstraint("campaign_id", "code", name="uq_campaign_dispositions_code"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(50))
    label: Mapped[str] = mapped_column(String(200))
    final: Mapped[bool] = mapped_column(default=False)
    callback: Mapped[bool] = mapped_column(default=False)
    do_not_call: Mapped[bool] = mapped_column(default=False)
    converted: Mapped[bool] = mapped_column(default=False)
    value: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0"))


class CampaignRetryRule(Base):
    __tablename__ = "campaign_retry_rules"
    __table_args__ = (UniqueConstraint("campaign_id", "outcome", name="uq_campaign_retry_rules_outcome"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    outcome: Mapped[DialOutcome] = mapped_column(str_enum(DialOutcome))
    delay_seconds: Mapped[int]
    max_per_day: Mapped[int]
    max_total: Mapped[int]


class CampaignContact(Base):
    """One number on a campaign's call list (a number is on a campaign once)."""

    __tablename__ = "campaign_contacts"
    __table_args__ = (
        UniqueConstraint("campaign_id", "e164", name="uq_campaign_contacts_number"),
        # The hopper: pending numbers of a zone set whose next attempt is due, oldest first.
        Index("ix_campaign_contacts_hopper", "campaign_id", "state", "zone_key", "next_attempt_at", "id"),
        Index("ix_campaign_contacts_callbacks", "campaign_id", "state", "callback_at"),
        Index("ix_campaign_contacts_customer", "customer_id"),
        Index("ix_campaign_contacts_disposition", "campaign_id", "last_disposition"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    e164: Mapped[str] = mapped_column(String(20))
    state: Mapped[ContactState] = mapped_column(str_enum(ContactState), default=ContactState.PENDING)
    voice_consent: Mapped[bool] = mapped_column(default=False, server_default=false())
    """The customer's voice consent, copied when loaded and whenever it changes (see
    :func:`_copy_voice_consent`): the hopper reads no customer per candidate. The dial-time check
    still reads the customer's own, so a stale copy never dials anyone without consent."""
    zone_key: Mapped[str] = mapped_column(String(200), default="")
    """The callee's zones when loaded (the customer's own, else the number's), sorted and joined by
    spaces; empty when unknown. An index-friendly stand-in for the calling window: the dial-time
    check still reads the customer's current zone."""
    attempts: Mapped[int] = mapped_column(default=0)
    attempts_today: Mapped[int] = mapped_column(default=0)
    attempts_day: Mapped[date | None]
    """The (UTC) day ``attempts_today`` counts."""
    next_attempt_at: Mapped[datetime]
    last_outcome: Mapped[DialOutcome | None] = mapped_column(str_enum(DialOutcome))
    last_disposition: Mapped[str | None] = mapped_column(String(50))
    callback_at: Mapped[datetime | None]
    callback_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    locked_until: Mapped[datetime | None]
    """The redial lockout after an abandoned call (UK: 72 hours) unless an agent is reserved."""
    last_abandoned_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    converted_value: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CampaignAttempt(Base):
    """One dial of a campaign number."""

    __tablename__ = "campaign_attempts"
    __table_args__ = (
        Index("ix_campaign_attempts_contact", "contact_id", "id"),
        Index("ix_campaign_attempts_campaign", "campaign_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("campaign_contacts.id", ondelete="CASCADE"))
    call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    dial_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    """The dial's idempotency key (campaign, number, attempt number): a dial is recorded once
    before the call is placed, so a crash between the two never places it twice."""
    started_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    outcome: Mapped[DialOutcome | None] = mapped_column(str_enum(DialOutcome))
    answered_by: Mapped[str | None] = mapped_column(String(30))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    disposition: Mapped[str | None] = mapped_column(String(50))
    notes: Mapped[str | None] = mapped_column(Text)
    talk_seconds: Mapped[int] = mapped_column(default=0)
    abandoned: Mapped[bool] = mapped_column(default=False)
    amd_false_positive: Mapped[bool] = mapped_column(default=False)
    cost: Mapped[Decimal] = mapped_column(Numeric(12, 4), default=Decimal("0"))


class CampaignAnswerCount(Base):
    """A campaign's live answers in one minute, by outcome: the abandonment window's counts, kept
    in the database so they survive restarts."""

    __tablename__ = "campaign_answer_counts"

    campaign_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    connected: Mapped[int] = mapped_column(default=0)
    abandoned: Mapped[int] = mapped_column(default=0)
    amd_false_positives: Mapped[int] = mapped_column(default=0)


class CampaignDialerLease(Base):
    """Which instance paces a running campaign, until when: renewed every tick, taken over by
    another instance once it lapses."""

    __tablename__ = "campaign_dialer_leases"

    campaign_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    instance_id: Mapped[str] = mapped_column(String(100))
    lease_until: Mapped[datetime]


class CampaignAgent(Base):
    """An agent working a campaign now (joined from the console), and their conference room."""

    __tablename__ = "campaign_agents"
    __table_args__ = (Index("ix_campaign_agents_agent", "agent_id", unique=True),)

    campaign_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    agent_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    room: Mapped[str] = mapped_column(String(100))
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)


def consents_to_calls(consent: Mapping[str, Any] | None) -> bool:
    """Whether a customer's consent record says yes to calls (silence is no)."""
    return (consent or {}).get("voice") is True


@event.listens_for(Session, "before_flush")
def _copy_voice_consent(
    session: Session, _flush: UOWTransaction, _instances: Iterable[object] | None
) -> None:
    """Copy a customer's changed voice consent onto their call-list rows, in the flush that writes
    it: whichever service (edit, CSV import, merge) or script changed it."""
    changed: dict[int, bool] = {}
    for obj in session.dirty:
        changed_consent = isinstance(obj, Customer) and inspect(obj).attrs.consent.history.has_changes()
        if changed_consent and obj.id is not None:
            changed[obj.id] = consents_to_calls(obj.consent)
    if not changed:
        return
    table = CampaignContact.__table__
    assert isinstance(table, Table)
    connection = session.connection()
    for yes in (True, False):
        ids = [i for i, v in changed.items() if v is yes]
        if ids:
            connection.execute(
                table.update()
                .where(table.c.customer_id.in_(ids), table.c.voice_consent != yes)
                .values(voice_consent=yes)
            )
    for obj in session.identity_map.values():
        if isinstance(obj, CampaignContact) and obj.customer_id in changed:
            # Loaded rows say what the table now says (without marking them changed).
            set_committed_value(obj, "voice_consent", changed[obj.customer_id])
