"""A customer's texts as agents read and answer them: the conversation of a ticket or of a
customer, the last text they sent, the numbers they may be texted at, and the mark that an agent
answered what they sent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import CustomerPhone, SmsMessage
from crm_core.services.customers import get_visible
from crm_core.services.tickets import get_ticket
from crm_core.types import Direction
from crm_core.visibility import Viewer


async def ticket_messages(session: AsyncSession, viewer: Viewer, ticket_id: int) -> Sequence[SmsMessage]:
    """Every text of a ticket, both ways, oldest first (visibility checked)."""
    await get_ticket(session, viewer, ticket_id)
    rows = await session.scalars(
        select(SmsMessage).where(SmsMessage.ticket_id == ticket_id).order_by(SmsMessage.id)
    )
    return list(rows)


async def customer_messages(
    session: AsyncSession, viewer: Viewer, customer_id: int, *, limit: int, offset: int
) -> Sequence[SmsMessage]:
    """A customer's texts, newest first (visibility checked)."""
    await get_visible(session, viewer, customer_id)
    rows = await session.scalars(
        select(SmsMessage)
        .where(SmsMessage.customer_id == customer_id)
        .order_by(SmsMessage.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows)


async def latest_inbound(session: AsyncSession, customer_id: int, ticket_id: int | None) -> SmsMessage | None:
    """The customer's last text (on ``ticket_id`` when given)."""
    stmt = select(SmsMessage).where(
        SmsMessage.customer_id == customer_id, SmsMessage.direction == Direction.INBOUND
    )
    if ticket_id is not None:
        stmt = stmt.where(SmsMessage.ticket_id == ticket_id)
    found: SmsMessage | None = await session.scalar(stmt.order_by(SmsMessage.id.desc()).limit(1))
    return found


async def phones_of(session: AsyncSession, customer_id: int) -> list[str]:
    """The customer's phone numbers (E.164), in the order they were added."""
    rows = await session.scalars(
        select(CustomerPhone.e164).where(CustomerPhone.customer_id == customer_id).order_by(CustomerPhone.id)
    )
    return list(rows)


async def mark_answered(session: AsyncSession, customer_id: int, now: datetime) -> None:
    """An agent texted the customer: what they sent so far counts as answered (the no-answer
    rule opens no ticket for it)."""
    await session.execute(
        update(SmsMessage)
        .where(
            SmsMessage.customer_id == customer_id,
            SmsMessage.direction == Direction.INBOUND,
            SmsMessage.answered_at.is_(None),
        )
        .values(answered_at=now)
    )
