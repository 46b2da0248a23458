"""Writing what :func:`crm_core.services.email_batch.ingest_batch` decided, in bulk: the new
customers and tickets, then every message with its interaction and attachments in three
multi-row INSERTs, then the acknowledgments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core import events
from crm_core.contact_points import email_match_key
from crm_core.db import UnitOfWork
from crm_core.email_ports import InboundEmail
from crm_core.models import (
    Counter,
    Customer,
    CustomerEmail,
    EmailAttachment,
    EmailKind,
    EmailMessage,
    Interaction,
    Ticket,
    utcnow,
)
from crm_core.rules.ticket_status import TicketStatus
from crm_core.services.audit import audit
from crm_core.services.email_acks import AckRequest, write_acknowledgments
from crm_core.services.email_ingest import (
    EmailPolicy,
    Ingested,
    MailboxPolicy,
    Outcome,
    answer_due,
    inbound_row,
)
from crm_core.services.email_participants import add_participant_rows
from crm_core.services.sla import customers_wrote, track_new_tickets
from crm_core.services.tickets import TICKET_COUNTER
from crm_core.sql import insert_ignore
from crm_core.types import Channel, Direction, Priority


@dataclass(eq=False)
class NewCustomer:
    """A sender the batch opens a customer for (``row`` once written)."""

    address: str
    display_name: str
    row: Customer | None = None


@dataclass(eq=False)
class NewTicket:
    """A ticket the batch opens (``row`` once written)."""

    customer: int | NewCustomer
    subject: str
    row: Ticket | None = None

    @property
    def customer_id(self) -> int:
        if isinstance(self.customer, int):
            return self.customer
        assert self.customer.row is not None
        return self.customer.row.id


TicketRef = int | NewTicket  # a stored ticket's id, or one opened in this batch


@dataclass(eq=False)
class Step:
    """A message of the batch as decided, to be written by :func:`write_steps`."""

    index: int
    mail: InboundEmail
    kind: EmailKind
    outcome: Outcome
    ticket: TicketRef | None = None
    acknowledge: bool = False
    customer_name: str = ""
    customer_language: str | None = None


async def _allocate_numbers(uow: UnitOfWork, count: int, first_number: int) -> list[int]:
    session = uow.session
    stmt = (
        update(Counter)
        .where(Counter.name == TICKET_COUNTER)
        .values(value=Counter.value + count)
        .returning(Counter.value)
    )
    last = (await session.execute(stmt)).scalar_one_or_none()
    if last is None:
        await insert_ignore(session, Counter, {"name": TICKET_COUNTER, "value": first_number - 1}, ["name"])
        last = (await session.execute(stmt)).scalar_one()
    return list(range(int(last) - count + 1, int(last) + 1))


async def write_steps(
    uow: UnitOfWork,
    steps: list[Step],
    known_tickets: dict[int, Ticket],
    mailbox: MailboxPolicy,
    policy: EmailPolicy,
    now: datetime | None = None,
) -> list[Ingested]:
    """Write the steps: customers, tickets, then messages with their interactions, then the
    acknowledgments; their results in order."""
    session = uow.session
    now = now or utcnow()
    # Once each: a reply later in the batch refers to the ticket its first message opens.
    new_tickets = list({id(s.ticket): s.ticket for s in steps if isinstance(s.ticket, NewTicket)}.values())
    new_customers = list(
        {id(t.customer): t.customer for t in new_tickets if isinstance(t.customer, NewCustomer)}.values()
    )
    for new_customer in new_customers:
        address = new_customer.address
        customer = Customer(display_name=new_customer.display_name, created_at=now, updated_at=now)
        customer.emails = [CustomerEmail(address=address, match_key=email_match_key(address), created_at=now)]
        new_customer.row = customer
        session.add(customer)
    if new_customers:
        await session.flush()
    for new_customer in new_customers:
        assert new_customer.row is not None
        customer_id = new_customer.row.id
        changes = {"source": "email", "email": new_customer.address}
        audit(session, "customer", customer_id, "created", None, changes)
        uow.record(
            events.customer_created(
                {
                    "customer_id": customer_id,
                    "owner_id": None,
                    "display_name": new_customer.display_name,
                    "source": "email",
                },
            )
        )
    numbers = await _allocate_numbers(uow, len(new_tickets), policy.sla.first_number) if new_tickets else []
    first_due, resolution_due = policy.sla.due_times(Priority.NORMAL, now)
    for new_ticket, number in zip(new_tickets, numbers, strict=True):
        new_ticket.row = Ticket(
            number=number,
            subject=new_ticket.subject.strip() or "(no subject)",
            status=TicketStatus.NEW,
            priority=Priority.NORMAL,
            customer_id=new_ticket.customer_id,
            team_id=mailbox.team_id,
            source_channel=Channel.EMAIL,
            category="email",
            first_response_due_at=first_due,
            resolution_due_at=resolution_due,
            created_at=now,
            updated_at=now,
        )
        session.add(new_ticket.row)
    if new_tickets:
        await session.flush()
        await track_new_tickets(session, [t.row for t in new_tickets if t.row is not None], now)
    for new_ticket in new_tickets:
        opened = new_ticket.row
        assert opened is not None
        summary = {
            "number": opened.number,
            "subject": opened.subject,
            "assignee_id": None,
            "team_id": opened.team_id,
        }
        audit(session, "ticket", opened.id, "opened", None, summary)
        uow.record(
            events.ticket_opened(
                {
                    "ticket_id": opened.id,
                    "number": opened.number,
                    "customer_id": opened.customer_id,
                    "assignee_id": None,
                    "team_id": opened.team_id,
                    "status": str(opened.status),
                    "subject": opened.subject,
                },
            )
        )

    # Inbound rows go in as bulk INSERTs (no ORM objects: building and flushing those cost more
    # than the statements).
    written: list[tuple[Step, _InboundRows, Ticket | None]] = []
    participants: list[tuple[int, str]] = []
    acknowledged: list[tuple[Step, AckRequest]] = []
    for step in steps:
        ticket = _row(step.ticket, known_tickets)
        written.append((step, _inbound_rows(step, mailbox, ticket, now), ticket))
        if ticket is not None:
            ticket.updated_at = now
            if step.outcome in (Outcome.NEW_TICKET, Outcome.THREADED):
                participants.extend(
                    (ticket.id, a)
                    for a in [step.mail.from_address or "", *step.mail.cc]
                    if a.lower() not in policy.our_addresses
                )
            if step.acknowledge:
                request = AckRequest(ticket, step.customer_name, step.customer_language, step.mail)
                acknowledged.append((step, request))
    await _insert_inbound([rows for _, rows, _ in written], session)
    await add_participant_rows(session, participants, now)
    answered = [t for s, _, t in written if t is not None and answer_due(s.outcome)]
    await customers_wrote(session, answered, now)  # one query, more only if a clock starts
    results: dict[int, Ingested] = {}
    for step, rows, ticket in written:
        if rows.interaction is not None:
            uow.record(_interaction_logged(rows.interaction))
        results[step.index] = Ingested(step.outcome, rows.email_id, ticket.id if ticket is not None else None)
    # After the messages, so that their ids come before their acknowledgments'.
    acks = await write_acknowledgments(uow, [request for _, request in acknowledged], mailbox, policy, now)
    for (step, _), ack in zip(acknowledged, acks, strict=True):
        if ack is not None:
            result = results[step.index]
            results[step.index] = Ingested(result.outcome, result.email_id, result.ticket_id, ack.id)
    return [results[s.index] for s in steps]


def _row(ref: TicketRef | None, tickets: dict[int, Ticket]) -> Ticket | None:
    if ref is None:
        return None
    if isinstance(ref, NewTicket):
        assert ref.row is not None
        return ref.row
    return tickets[ref]


@dataclass(eq=False)
class _InboundRows:
    """The column values of one inbound message, its interaction and its attachments."""

    email: dict[str, Any]
    interaction: dict[str, Any] | None
    attachments: list[dict[str, Any]]
    email_id: int | None = None


def _inbound_rows(step: Step, mailbox: MailboxPolicy, ticket: Ticket | None, now: datetime) -> _InboundRows:
    mail = step.mail
    interaction = None
    if ticket is not None:
        interaction = {
            "channel": Channel.EMAIL,
            "direction": Direction.INBOUND,
            "customer_id": ticket.customer_id,
            "agent_id": None,
            "ticket_id": ticket.id,
            "external_id": mail.key,
            "status": str(step.kind),
            "started_at": mail.date or now,
            "subject": mail.subject[:500],
            "body": mail.visible_text,
            "meta": {"mailbox": mailbox.name, "from": mail.from_address},
            "created_at": now,
        }
    email = {
        **inbound_row(mail, mailbox, step.kind, now),
        "ticket_id": ticket.id if ticket is not None else None,
        "customer_id": ticket.customer_id if ticket is not None else None,
        "interaction_id": None,
    }
    attachments = [
        {
            "filename": a.filename,
            "content_type": a.content_type,
            "size": a.size,
            "sha256": a.sha256,
            "content_id": a.content_id,
            "inline": a.inline,
            "skipped_reason": a.skipped_reason,
        }
        for a in mail.attachments
    ]
    return _InboundRows(email, interaction, attachments)


async def _insert_inbound(batch: list[_InboundRows], session: AsyncSession) -> None:
    """Interactions, messages, then attachments: three multi-row INSERTs, ids in input order."""
    if not batch:
        return
    interactions = [(rows, rows.interaction) for rows in batch if rows.interaction is not None]
    if interactions:
        ids = await session.scalars(
            insert(Interaction).returning(Interaction.id, sort_by_parameter_order=True),
            [values for _, values in interactions],
        )
        for (rows, values), interaction_id in zip(interactions, ids.all(), strict=True):
            values["id"] = rows.email["interaction_id"] = interaction_id
    email_ids = await session.scalars(
        insert(EmailMessage).returning(EmailMessage.id, sort_by_parameter_order=True),
        [rows.email for rows in batch],
    )
    attachments: list[dict[str, Any]] = []
    for rows, email_id in zip(batch, email_ids.all(), strict=True):
        rows.email_id = email_id
        attachments.extend({**a, "email_id": email_id} for a in rows.attachments)
    if attachments:
        await session.execute(insert(EmailAttachment), attachments)


def _interaction_logged(values: dict[str, Any]) -> events.DomainEvent:
    """The event :func:`interaction_logged` gives for an inbound interaction row."""
    return events.interaction_logged(
        {
            "interaction_id": values["id"],
            "customer_id": values["customer_id"],
            "channel": str(values["channel"]),
            "direction": str(values["direction"]),
            "agent_id": values["agent_id"],
            "ticket_id": values["ticket_id"],
        },
    )
