"""The addresses taking part in a ticket's mail (they may use its subject token)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import CustomerEmail, EmailParticipant, Ticket, utcnow


async def add_participants(
    session: AsyncSession, ticket_id: int, addresses: Iterable[str], now: datetime | None = None
) -> None:
    await add_participant_rows(session, [(ticket_id, a) for a in addresses], now)


async def add_participant_rows(
    session: AsyncSession, rows: Iterable[tuple[int, str]], now: datetime | None = None
) -> None:
    """Insert (ticket, address) pairs in one statement (as of ``now``, the current time by
    default); pairs already there are left alone."""
    now = now or utcnow()
    values = [
        {"ticket_id": ticket_id, "address": address[:320], "created_at": now}
        for ticket_id, address in dict.fromkeys((t, a.strip().lower()) for t, a in rows if a and "@" in a)
    ]
    if not values:
        return
    table = EmailParticipant.__table__
    module: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = module.insert(table).values(values).on_conflict_do_nothing(index_elements=["ticket_id", "address"])
    await session.execute(stmt)


async def may_write_to(session: AsyncSession, ticket: Ticket, address: str) -> bool:
    """The ticket's customer (any of their addresses) or one of its participants."""
    address = address.lower()
    customer = exists().where(
        CustomerEmail.customer_id == ticket.customer_id, CustomerEmail.address == address
    )
    participant = exists().where(EmailParticipant.ticket_id == ticket.id, EmailParticipant.address == address)
    return bool(await session.scalar(select(customer | participant)))
