"""The customer card shown at screen-pop: everything an agent needs as the phone rings.

Assembled in a fixed number of queries whatever the customer's history: the customer with its
owner, its phones, its emails, its active tickets and its last interactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from crm_core.models import Customer, CustomerPhone, Interaction, Ticket
from crm_core.rules.ticket_status import ACTIVE_STATUSES

RECENT_INTERACTIONS = 20


@dataclass(frozen=True, slots=True)
class CardTicket:
    id: int
    number: int
    subject: str
    status: str
    priority: str
    assignee_id: int | None
    resolution_due_at: datetime | None


@dataclass(frozen=True, slots=True)
class CardInteraction:
    id: int
    channel: str
    direction: str
    status: str
    started_at: datetime
    subject: str | None
    summary: str | None
    agent_id: int | None
    ticket_id: int | None


@dataclass(frozen=True, slots=True)
class CustomerCard:
    customer_id: int
    display_name: str
    company: str | None
    owner_id: int | None
    owner_name: str | None
    tags: list[str]
    segment: str | None
    timezone: str | None
    preferred_language: str | None
    phones: list[str]
    emails: list[str]
    open_tickets: list[CardTicket]
    recent_interactions: list[CardInteraction]

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "customer_id": self.customer_id,
            "display_name": self.display_name,
            "company": self.company,
            "owner": {"id": self.owner_id, "name": self.owner_name} if self.owner_id else None,
            "tags": self.tags,
            "segment": self.segment,
            "timezone": self.timezone,
            "preferred_language": self.preferred_language,
            "phones": self.phones,
            "emails": self.emails,
            "open_tickets": [
                {
                    "id": t.id,
                    "number": t.number,
                    "subject": t.subject,
                    "status": t.status,
                    "priority": t.priority,
                    "assignee_id": t.assignee_id,
                    "resolution_due_at": iso(t.resolution_due_at),
                }
                for t in self.open_tickets
            ],
            "recent_interactions": [
                {
                    "id": i.id,
                    "channel": i.channel,
                    "direction": i.direction,
                    "status": i.status,
                    "started_at": iso(i.started_at),
                    "subject": i.subject,
                    "summary": i.summary,
                    "agent_id": i.agent_id,
                    "ticket_id": i.ticket_id,
                }
                for i in self.recent_interactions
            ],
        }


async def _assemble(session: AsyncSession, customer: Customer) -> CustomerCard:
    tickets = await session.scalars(
        select(Ticket)
        .where(Ticket.customer_id == customer.id, Ticket.status.in_(list(ACTIVE_STATUSES)))
        .order_by(Ticket.id.desc())
    )
    recent = await session.scalars(
        select(Interaction)
        .where(Interaction.customer_id == customer.id)
        .order_by(Interaction.started_at.desc(), Interaction.id.desc())
        .limit(RECENT_INTERACTIONS)
    )
    return CustomerCard(
        customer_id=customer.id,
        display_name=customer.display_name,
        company=customer.company,
        owner_id=customer.owner_id,
        owner_name=customer.owner.display_name if customer.owner else None,
        tags=list(customer.tags or []),
        segment=customer.segment,
        timezone=customer.timezone,
        preferred_language=customer.preferred_language,
        phones=[p.e164 for p in customer.phones],
        emails=[e.address for e in customer.emails],
        open_tickets=[
            CardTicket(
                t.id, t.number, t.subject, str(t.status), str(t.priority), t.assignee_id, t.resolution_due_at
            )
            for t in tickets
        ],
        recent_interactions=[
            CardInteraction(
                i.id,
                str(i.channel),
                str(i.direction),
                i.status,
                i.started_at,
                i.subject,
                i.summary,
                i.agent_id,
                i.ticket_id,
            )
            for i in recent
        ],
    )


def _card_options() -> tuple[Any, ...]:
    return (
        selectinload(Customer.owner),
        selectinload(Customer.phones),
        selectinload(Customer.emails),
    )


async def card_by_phone(session: AsyncSession, e164: str) -> CustomerCard | None:
    """The card of the customer owning an E.164 number, or None for an unknown caller."""
    stmt = (
        select(Customer)
        .join(CustomerPhone, CustomerPhone.customer_id == Customer.id)
        .where(CustomerPhone.e164 == e164)
        .options(*_card_options())
    )
    customer = (await session.execute(stmt)).scalar_one_or_none()
    return None if customer is None else await _assemble(session, customer)


async def card_by_customer(session: AsyncSession, customer_id: int) -> CustomerCard | None:
    stmt = select(Customer).where(Customer.id == customer_id).options(*_card_options())
    customer = (await session.execute(stmt)).scalar_one_or_none()
    return None if customer is None else await _assemble(session, customer)
