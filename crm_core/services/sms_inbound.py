"""Texts from customers in the database: stored once per MessageSid with their interaction, the
sender resolved to a customer, attached to a ticket; and what the no-answer rule reads.

What a text means and what follows from it (keywords, which ticket, the replies) is decided by
the SMS desk (``contact_center/sms/inbound.py``), which calls these steps in one unit of work.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core import events
from crm_core.contact_points import normalize_phone
from crm_core.db import UnitOfWork
from crm_core.errors import InvalidInput
from crm_core.models import Agent, Customer, Interaction, SmsMessage, Ticket, utcnow
from crm_core.services.identity import resolve_phone
from crm_core.services.interactions import log_interaction
from crm_core.services.sms_types import InboundSms
from crm_core.services.tickets import SlaPolicy, open_ticket
from crm_core.types import Channel, Direction

KIND_MESSAGE = "message"
KIND_KEYWORD = "keyword"
KIND_OPT_OUT_REQUEST = "opt-out-request"
"""A longer text that asked to stop texts: it opted the number out like a keyword."""
KIND_HELP = "help"


async def text_by_sid(session: AsyncSession, sid: str) -> SmsMessage | None:
    found: SmsMessage | None = await session.scalar(select(SmsMessage).where(SmsMessage.message_sid == sid))
    return found


async def sender_of(uow: UnitOfWork, raw: str, region: str) -> tuple[Customer, str]:
    """The customer behind the sending number and that number in E.164 (short codes and
    alphanumeric senders are kept as they came, on an unnamed customer of their own)."""
    try:
        e164 = normalize_phone(raw, region, "From")
    except InvalidInput:
        customer = Customer(
            display_name=f"SMS sender {raw.strip()[:40] or 'unknown'}", custom_fields={"sms_sender": raw}
        )
        uow.session.add(customer)
        await uow.session.flush()
        return customer, raw.strip()
    return (await resolve_phone(uow, e164, region=region, source="sms")).customer, e164


async def store_inbound(
    uow: UnitOfWork,
    inbound: InboundSms,
    *,
    customer_id: int,
    phone: str,
    kind: str,
    meta: Mapping[str, Any],
    now: datetime | None = None,
) -> tuple[SmsMessage, bool]:
    """Log the text as an inbound SMS interaction (with ``meta``) and store it, sent from
    ``phone``; False: the same text delivered twice at once, and the other delivery stored it."""
    media = [{"url": m.url, "content_type": m.content_type} for m in inbound.media]
    logged = await log_interaction(
        uow,
        channel=Channel.SMS,
        direction=Direction.INBOUND,
        customer_id=customer_id,
        external_id=inbound.message_sid,
        status="received",
        body=inbound.body,
        meta={"from": phone, "to": inbound.to_number, "media": media, "segments": inbound.segments, **meta},
        now=now,
    )
    if not logged.created:
        raced = await text_by_sid(uow.session, inbound.message_sid)
        if raced is not None:
            return raced, False
    message = SmsMessage(
        direction=Direction.INBOUND,
        kind=kind,
        customer_id=customer_id,
        interaction_id=logged.interaction.id,
        message_sid=inbound.message_sid,
        from_number=phone,
        to_number=inbound.to_number,
        body=inbound.body,
        media=media,
        segments=inbound.segments,
        status="received",
        created_at=now or utcnow(),
    )
    uow.session.add(message)
    await uow.session.flush()
    return message, True


def received_event(
    message: SmsMessage, *, agent_id: int | None, keyword: str | None, opt_out: dict[str, str] | None
) -> events.DomainEvent:
    """A customer's text, for ``agent_id`` (their socket shows it live)."""
    return events.sms_received(
        {
            "agent_id": agent_id,
            "message_id": message.id,
            "interaction_id": message.interaction_id,
            "ticket_id": message.ticket_id,
            "customer_id": message.customer_id,
            "from": message.from_number,
            "to": message.to_number,
            "body": message.body,
            "media": message.media,
            "kind": message.kind,
            "keyword": keyword,
            "opt_out": opt_out,
        },
    )


async def _active_owner(uow: UnitOfWork, owner_id: int | None) -> int | None:
    if owner_id is None:
        return None
    active = await uow.session.scalar(select(Agent.active).where(Agent.id == owner_id))
    return owner_id if active else None


async def open_sms_ticket(
    uow: UnitOfWork, customer: Customer, sender: str, sla: SlaPolicy, now: datetime | None = None
) -> Ticket:
    """A new SMS ticket for the customer texting from ``sender``, assigned to their owner while
    that agent is active."""
    return await open_ticket(
        uow,
        None,
        customer_id=customer.id,
        subject=f"SMS from {sender}",
        sla=sla,
        assignee_id=await _active_owner(uow, customer.owner_id),
        source_channel=Channel.SMS,
        now=now,
    )


async def attach(uow: UnitOfWork, message: SmsMessage, ticket: Ticket, now: datetime | None = None) -> None:
    """The text (and its interaction) joins ``ticket``."""
    message.ticket_id = ticket.id
    if message.interaction_id is not None:
        interaction = await uow.session.get(Interaction, message.interaction_id)
        if interaction is not None:
            interaction.ticket_id = ticket.id
    ticket.updated_at = now or utcnow()


def _unanswered() -> Select[tuple[SmsMessage]]:
    return select(SmsMessage).where(
        SmsMessage.direction == Direction.INBOUND,
        SmsMessage.kind == KIND_MESSAGE,
        SmsMessage.ticket_id.is_(None),
        SmsMessage.answered_at.is_(None),
    )


async def unanswered_customers(session: AsyncSession, sent_before: datetime) -> list[int]:
    """Customers with a text on no ticket that nobody answered, sent before ``sent_before``,
    oldest first. Rows are locked with SKIP LOCKED: instances asking together share the work."""
    overdue = await session.scalars(
        _unanswered()
        .where(SmsMessage.created_at <= sent_before)
        .order_by(SmsMessage.id)
        .limit(200)
        .with_for_update(skip_locked=True)
    )
    return list(dict.fromkeys(row.customer_id for row in overdue))


async def unanswered_texts(session: AsyncSession, customer_id: int) -> list[SmsMessage]:
    """Every text of the customer on no ticket that nobody answered, oldest first (locked, SKIP
    LOCKED)."""
    rows = await session.scalars(
        _unanswered()
        .where(SmsMessage.customer_id == customer_id)
        .order_by(SmsMessage.id)
        .with_for_update(skip_locked=True)
    )
    return list(rows)
