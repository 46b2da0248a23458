"""An agent texts a customer, from a ticket or from the customer's record, in the desk's unit of
work: the text is checked, its recipient and sending number chosen, and it is written to the
outbox (the desk hands it to Twilio once this commits).

- The same Idempotency-Key with the same text answers with the first text (nothing new is
  queued); with another text it is refused (``IdempotencyKeyReused``).
- By default the text goes to the number the customer last texted from (on this ticket, else on
  any), or their first number; a number given must be one of theirs or the one they texted from.
- It is sent from the number they texted, so the conversation stays on one thread; otherwise from
  the policy's default number.
- It is the ticket's first response if none came before, and it answers whatever the customer
  sent so far (the no-answer rule opens no ticket for that).
- A text from the customer's record joins their open SMS ticket when the agent may see it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.contact_points import normalize_phone
from crm_core.db import UnitOfWork
from crm_core.errors import InvalidInput, NotFound
from crm_core.models import SmsMessage, Ticket, utcnow
from crm_core.services.customers import get_visible
from crm_core.services.sms_conversation import latest_inbound, mark_answered, phones_of
from crm_core.services.sms_outbound import (
    MAX_BODY,
    AgentText,
    agent_key,
    earlier_text,
    queue_sms,
    status_event,
)
from crm_core.services.sms_types import SmsPolicy
from crm_core.services.tickets import get_ticket, open_ticket_for_customer
from crm_core.types import Channel
from crm_core.visibility import Viewer


async def _recipient(
    session: AsyncSession, customer_id: int, to: str | None, last_inbound: SmsMessage | None, region: str
) -> str:
    """``to`` checked as one of the customer's numbers; by default the number they texted from."""
    phones = await phones_of(session, customer_id)
    texted_from = last_inbound.from_number if last_inbound is not None else None
    if to is not None:
        e164 = normalize_phone(to, region, "to")
        if e164 not in phones and e164 != texted_from:
            raise InvalidInput(f"{e164} is not a phone number of this customer", "to")
        return e164
    candidate = texted_from or (phones[0] if phones else None)
    if candidate is None:
        raise InvalidInput("the customer has no phone number to text", "to")
    return normalize_phone(candidate, region, "to")


async def _send(
    uow: UnitOfWork,
    viewer: Viewer,
    *,
    customer_id: int,
    ticket: Ticket | None,
    body: str,
    to: str | None,
    policy: SmsPolicy,
    idempotency_key: str | None,
    from_ticket: bool,
    now: datetime | None = None,
) -> tuple[SmsMessage, bool]:
    session = uow.session
    key = agent_key(viewer.agent_id, idempotency_key)
    asked = AgentText(customer_id, ticket.id if from_ticket and ticket else None, body.strip(), to)
    if key is not None and (existing := await earlier_text(session, key, asked, policy.region)) is not None:
        return existing, False
    text = body.strip()
    if not text:
        raise InvalidInput("the message is empty", "body")
    if len(text) > MAX_BODY:
        raise InvalidInput(f"the message is longer than {MAX_BODY} characters", "body")
    last = await latest_inbound(session, customer_id, ticket.id if ticket else None)
    if last is None and ticket is not None:
        last = await latest_inbound(session, customer_id, None)
    recipient = await _recipient(session, customer_id, to, last, policy.region)
    # Answer from the number the customer texted, so the conversation stays on one thread.
    texted = last.to_number if last is not None and last.from_number == recipient else ""
    sender = texted or policy.default_from
    try:
        async with session.begin_nested():
            row = await queue_sms(
                uow,
                customer_id=customer_id,
                to=recipient,
                from_=sender,
                body=text,
                agent_id=viewer.agent_id,
                ticket_id=ticket.id if ticket else None,
                idempotency_key=key,
                now=now,
            )
    except IntegrityError:
        # The same key at the same moment: the other request stored its text first.
        if key is None or (existing := await earlier_text(session, key, asked, policy.region)) is None:
            raise
        return existing, False
    now = now or utcnow()
    if ticket is not None:
        ticket.updated_at = now
        if ticket.first_responded_at is None:
            ticket.first_responded_at = now
    await mark_answered(session, customer_id, now)
    uow.record(status_event(row))
    return row, True


async def reply_on_ticket(
    uow: UnitOfWork,
    viewer: Viewer,
    ticket_id: int,
    *,
    body: str,
    to: str | None,
    policy: SmsPolicy,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> tuple[SmsMessage, bool]:
    """An agent texts the ticket's customer; returns the outbox row and whether it is new
    (False: the same idempotency key was used before for this same text, and that message is
    returned; for another text, :class:`~crm_core.services.sms_outbound.IdempotencyKeyReused`)."""
    ticket = await get_ticket(uow.session, viewer, ticket_id, for_update=True)
    return await _send(
        uow,
        viewer,
        customer_id=ticket.customer_id,
        ticket=ticket,
        body=body,
        to=to,
        policy=policy,
        idempotency_key=idempotency_key,
        now=now,
        from_ticket=True,
    )


async def text_customer(
    uow: UnitOfWork,
    viewer: Viewer,
    customer_id: int,
    *,
    body: str,
    to: str | None,
    policy: SmsPolicy,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> tuple[SmsMessage, bool]:
    """An agent texts a customer directly; the text joins their open SMS ticket when they may see it."""
    await get_visible(uow.session, viewer, customer_id)
    ticket = await open_ticket_for_customer(uow.session, customer_id, source_channel=Channel.SMS)
    if ticket is not None:
        try:
            ticket = await get_ticket(uow.session, viewer, ticket.id)
        except NotFound:
            ticket = None
    return await _send(
        uow,
        viewer,
        customer_id=customer_id,
        ticket=ticket,
        body=body,
        to=to,
        policy=policy,
        idempotency_key=idempotency_key,
        now=now,
        from_ticket=False,
    )
