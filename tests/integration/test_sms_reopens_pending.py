"""A customer's text answers a ticket that waits on them: a pending SMS ticket opens again, with
an audit entry and ``ticket.updated``; an opt-out keyword joins it without reopening it."""

from __future__ import annotations

import itertools

from sqlalchemy import select

from contact_center.sms.inbound import receive_sms
from crm_core.db import UnitOfWorkFactory
from crm_core.models import AuditEntry, Ticket
from crm_core.rules.ticket_status import TicketStatus
from crm_core.services.sms_types import InboundSms, SmsPolicy
from crm_core.services.tickets import SlaPolicy
from tests.conftest import RecordingPublisher, Staff

OUR_NUMBER = "+15005550006"
TEXTER = "+12025550143"
POLICY = SmsPolicy(region="US", sla=SlaPolicy(), default_from=OUR_NUMBER)
_SIDS = itertools.count(1)


async def text(uow_factory: UnitOfWorkFactory, body: str) -> int:
    async with uow_factory() as uow:
        sid = f"SM{next(_SIDS):032x}"
        received = await receive_sms(uow, InboundSms(sid, TEXTER, OUR_NUMBER, body), POLICY)
        await uow.commit()
    assert received.ticket is not None
    return received.ticket.id


async def set_status(uow_factory: UnitOfWorkFactory, ticket_id: int, status: TicketStatus) -> None:
    async with uow_factory() as uow:
        ticket = await uow.session.get_one(Ticket, ticket_id)
        ticket.status = status
        await uow.commit()


async def status_of(uow_factory: UnitOfWorkFactory, ticket_id: int) -> TicketStatus:
    async with uow_factory() as uow:
        return (await uow.session.get_one(Ticket, ticket_id)).status


async def test_a_text_to_a_pending_ticket_opens_it_again(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher, staff: Staff
) -> None:
    ticket_id = await text(uow_factory, "My router is down")
    await set_status(uow_factory, ticket_id, TicketStatus.PENDING)
    published.events.clear()

    assert await text(uow_factory, "Still down after the restart") == ticket_id

    assert await status_of(uow_factory, ticket_id) is TicketStatus.OPEN
    updated = [e for e in published.events if e.name == "ticket.updated"]
    assert [(e.payload["ticket_id"], e.payload["status"], e.payload["changes"]) for e in updated] == [
        (ticket_id, "open", ["status"])
    ]
    async with uow_factory() as uow:
        entries = list(
            await uow.session.scalars(
                select(AuditEntry).where(
                    AuditEntry.entity_type == "ticket", AuditEntry.entity_id == ticket_id
                )
            )
        )
    assert any(
        e.changes.get("status") == ["pending", "open"] and e.changes.get("by") == "sms" for e in entries
    )


async def test_an_open_ticket_stays_as_it_is_and_a_keyword_does_not_reopen(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher, staff: Staff
) -> None:
    ticket_id = await text(uow_factory, "Hello")
    await set_status(uow_factory, ticket_id, TicketStatus.OPEN)
    published.events.clear()
    await text(uow_factory, "Any news?")
    assert await status_of(uow_factory, ticket_id) is TicketStatus.OPEN
    assert not [e for e in published.events if e.name == "ticket.updated"]

    await set_status(uow_factory, ticket_id, TicketStatus.PENDING)
    assert await text(uow_factory, "STOP") == ticket_id
    assert await status_of(uow_factory, ticket_id) is TicketStatus.PENDING
