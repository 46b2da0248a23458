"""Figures for the supervisors' wallboard: today's contacts per channel, the calls answered and
abandoned with their average speed of answer, and the tickets breaching or near their due times.

Each figure is one SQL statement over what the viewer may see (the same visibility filters as
every other read), so a wallboard that refreshes often costs a few round trips, whatever the
volume of the day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Float, and_, case, cast, func, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Customer, Interaction, Ticket
from crm_core.models.base import UTCDateTime
from crm_core.rules.ticket_status import ACTIVE_STATUSES
from crm_core.types import Channel, Direction
from crm_core.visibility import Viewer, customer_filter, ticket_filter


@dataclass(frozen=True, slots=True)
class ChannelVolume:
    channel: Channel
    inbound: int
    outbound: int


@dataclass(frozen=True, slots=True)
class CallFigures:
    offered: int  # inbound calls that arrived
    answered: int
    abandoned: int  # ended without reaching anyone and left no voicemail
    average_speed_of_answer_seconds: float | None


@dataclass(frozen=True, slots=True)
class LiveChat:
    interaction_id: int
    customer_id: int
    customer_name: str
    agent_id: int | None
    status: str  # waiting (for an agent) or active
    started_at: datetime


# The statuses a chat's interaction mirrors while the chat goes on.
LIVE_CHAT_STATUSES = ("waiting", "active")


@dataclass(frozen=True, slots=True)
class TicketAtRisk:
    ticket: Ticket
    due_at: datetime
    breached: bool


async def channel_volumes(session: AsyncSession, viewer: Viewer, since: datetime) -> list[ChannelVolume]:
    """Contacts per channel since ``since``, every channel listed (zero when none)."""
    inbound = func.sum(case((Interaction.direction == Direction.INBOUND, 1), else_=0))
    outbound = func.sum(case((Interaction.direction == Direction.OUTBOUND, 1), else_=0))
    stmt = (
        select(Interaction.channel, inbound, outbound)
        .join(Customer, Customer.id == Interaction.customer_id)
        .where(Interaction.started_at >= since, customer_filter(viewer))
        .group_by(Interaction.channel)
    )
    counts = {row[0]: (int(row[1] or 0), int(row[2] or 0)) for row in await session.execute(stmt)}
    return [ChannelVolume(c, *counts.get(c, (0, 0))) for c in Channel]


def _answer_seconds(dialect: str) -> ColumnElement[float]:
    """Seconds from the call's arrival to its answer."""
    answered_at, started_at = Interaction.answered_at, Interaction.started_at
    if dialect == "postgresql":
        return cast(func.extract("epoch", answered_at - started_at), Float)
    return cast((func.julianday(answered_at) - func.julianday(started_at)) * 86400.0, Float)


async def call_figures(session: AsyncSession, viewer: Viewer, since: datetime) -> CallFigures:
    """Inbound calls since ``since``: offered, answered, abandoned, average speed of answer."""
    answered_at = Interaction.answered_at
    seconds = _answer_seconds(session.get_bind().dialect.name)
    stmt = (
        select(
            func.count(),
            func.count(answered_at),
            func.sum(case((Interaction.missed.is_(True), 1), else_=0)),
            func.avg(case((answered_at.is_not(None), seconds), else_=None)),
        )
        .select_from(Interaction)
        .join(Customer, Customer.id == Interaction.customer_id)
        .where(
            Interaction.channel == Channel.VOICE,
            Interaction.direction == Direction.INBOUND,
            Interaction.started_at >= since,
            customer_filter(viewer),
        )
    )
    offered, answered, abandoned, average = (await session.execute(stmt)).one()
    return CallFigures(
        offered=int(offered or 0),
        answered=int(answered or 0),
        abandoned=int(abandoned or 0),
        average_speed_of_answer_seconds=None if average is None else round(float(average), 1),
    )


async def tickets_at_risk(
    session: AsyncSession, viewer: Viewer, now: datetime, *, within: timedelta, limit: int = 20
) -> Sequence[TicketAtRisk]:
    """Active tickets whose next due time (first response, else resolution) has passed or comes
    within ``within``; the most urgent first."""
    # Typed, so SQLite's text comes back as an aware datetime like the columns themselves.
    next_due = type_coerce(
        case(
            (Ticket.first_responded_at.is_(None), Ticket.first_response_due_at),
            else_=Ticket.resolution_due_at,
        ),
        UTCDateTime(),
    )
    horizon = now + within
    stmt = (
        select(Ticket, next_due)
        .where(
            Ticket.status.in_(ACTIVE_STATUSES),
            ticket_filter(viewer),
            or_(
                and_(Ticket.first_responded_at.is_(None), Ticket.first_response_due_at <= horizon),
                and_(Ticket.first_responded_at.is_not(None), Ticket.resolution_due_at <= horizon),
            ),
        )
        .order_by(next_due, Ticket.id)
        .limit(limit)
    )
    rows = (await session.execute(stmt)).all()
    return [TicketAtRisk(ticket, due, due <= now) for ticket, due in rows]


async def live_chats(session: AsyncSession, viewer: Viewer, *, limit: int = 100) -> list[LiveChat]:
    """Chats waiting for an agent or going on now, oldest first."""
    stmt = (
        select(Interaction, Customer.display_name)
        .join(Customer, Customer.id == Interaction.customer_id)
        .where(
            Interaction.channel == Channel.CHAT,
            Interaction.status.in_(LIVE_CHAT_STATUSES),
            Interaction.ended_at.is_(None),
            customer_filter(viewer),
        )
        .order_by(Interaction.started_at, Interaction.id)
        .limit(limit)
    )
    return [
        LiveChat(i.id, i.customer_id, name, i.agent_id, i.status, i.started_at)
        for i, name in (await session.execute(stmt)).all()
    ]
