"""Ingesting a batch of inbound mail in few round trips, with the single-message rules.

Everything the common cases need is read up front in six queries (stored keys, the tickets the
References chains point at, the senders' customers, failing addresses, recent acknowledgments).
New conversations, replies to active tickets, auto-replies and mail that opens nothing are then
decided in memory, in mailbox order (a reply may follow its first message in the same batch),
and written in bulk. Anything else (bounces, resolved or closed tickets, refs or subject tokens,
skipped attachments, unusual addresses) goes through :func:`ingest_one` after the pending writes
are flushed, so both paths see the same database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core import events
from crm_core.contact_points import email_match_key, normalize_email
from crm_core.db import UnitOfWork
from crm_core.email_ports import InboundEmail
from crm_core.errors import InvalidInput
from crm_core.models import (
    Counter,
    Customer,
    CustomerEmail,
    EmailAddressHealth,
    EmailAttachment,
    EmailKind,
    EmailMessage,
    Interaction,
    Ticket,
    utcnow,
)
from crm_core.rules.email_loops import MailKind, classify
from crm_core.rules.email_refs import message_key, signed_numbers, subject_numbers
from crm_core.rules.ticket_status import ACTIVE_STATUSES, TicketStatus
from crm_core.services.audit import audit
from crm_core.services.email_ingest import (
    EmailPolicy,
    Ingested,
    MailboxPolicy,
    Outcome,
    acknowledgment_text,
    inbound_row,
    ingest_one,
    is_loop,
)
from crm_core.services.email_outbound import build_outbound, interaction_logged
from crm_core.services.email_participants import add_participant_rows
from crm_core.services.tickets import TICKET_COUNTER, system_note
from crm_core.sql import insert_ignore
from crm_core.types import Channel, Direction, Priority


@dataclass(eq=False)
class _NewCustomer:
    address: str
    display_name: str
    row: Customer | None = None


@dataclass(eq=False)
class _NewTicket:
    customer: int | _NewCustomer
    subject: str
    row: Ticket | None = None

    @property
    def customer_id(self) -> int:
        if isinstance(self.customer, int):
            return self.customer
        assert self.customer.row is not None
        return self.customer.row.id


TicketRef = int | _NewTicket


@dataclass(eq=False)
class _Step:
    index: int
    mail: InboundEmail
    kind: EmailKind
    outcome: Outcome
    ticket: TicketRef | None = None
    acknowledge: bool = False
    customer_name: str = ""
    customer_language: str | None = None


@dataclass
class _Knowledge:
    """What the batch knows beyond the database's state when it started."""

    stored: set[str]
    ticket_of_key: dict[str, TicketRef]
    tickets: dict[int, Ticket]
    customers: dict[str, int | _NewCustomer]
    names: dict[int, tuple[str, str | None]]
    failing: set[str]
    acks_sent: dict[str, int]


def _chain(mail: InboundEmail) -> list[str]:
    return [message_key(i) for i in [*mail.in_reply_to, *reversed(mail.references)]]


async def _prefetch(uow: UnitOfWork, mails: Sequence[InboundEmail]) -> _Knowledge:
    session = uow.session
    keys = [m.key for m in mails]
    stored = set(
        await session.scalars(select(EmailMessage.message_key).where(EmailMessage.message_key.in_(keys)))
    )
    chain_keys = {k for m in mails for k in _chain(m)}
    ticket_of_key: dict[str, TicketRef] = {}
    if chain_keys:
        rows = await session.execute(
            select(EmailMessage.message_key, EmailMessage.ticket_id).where(
                EmailMessage.message_key.in_(chain_keys), EmailMessage.ticket_id.is_not(None)
            )
        )
        ticket_of_key = {k: t for k, t in rows.all() if t is not None}
    tickets: dict[int, Ticket] = {}
    if ticket_of_key:
        ids = {t for t in ticket_of_key.values() if isinstance(t, int)}
        tickets = {t.id: t for t in await session.scalars(select(Ticket).where(Ticket.id.in_(ids)))}
    senders = {a for a in (_address(m) for m in mails) if a}
    customers: dict[str, int | _NewCustomer] = {}
    names: dict[int, tuple[str, str | None]] = {}
    if senders:
        rows = await session.execute(
            select(CustomerEmail.address, Customer.id, Customer.display_name, Customer.preferred_language)
            .join(Customer, Customer.id == CustomerEmail.customer_id)
            .where(CustomerEmail.address.in_(senders))
        )
        for address, customer_id, name, language in rows.all():
            customers[address] = customer_id
            names[customer_id] = (name, language)
    lowered = {(m.from_address or "").lower() for m in mails if m.from_address}
    failing: set[str] = set()
    acks_sent: dict[str, int] = {}
    if lowered:
        failing = set(
            await session.scalars(
                select(EmailAddressHealth.address).where(
                    EmailAddressHealth.address.in_(lowered), EmailAddressHealth.failing.is_(True)
                )
            )
        )
        rows = await session.execute(
            select(EmailMessage.recipient, func.count())
            .where(
                EmailMessage.recipient.in_(lowered),
                EmailMessage.kind == EmailKind.ACKNOWLEDGMENT,
                EmailMessage.created_at >= utcnow() - timedelta(hours=1),
            )
            .group_by(EmailMessage.recipient)
        )
        acks_sent = {r: int(c) for r, c in rows.all() if r is not None}
    return _Knowledge(stored, ticket_of_key, tickets, customers, names, failing, acks_sent)


def _address(mail: InboundEmail) -> str | None:
    if not mail.from_address:
        return None
    try:
        return normalize_email(mail.from_address)
    except InvalidInput:
        return None


def _decide(
    index: int, mail: InboundEmail, known: _Knowledge, mailbox: MailboxPolicy, policy: EmailPolicy
) -> _Step | None:
    """The step for a common case, or None for :func:`ingest_one`."""
    if is_loop(mail, policy):
        return _Step(index, mail, EmailKind.LOOP, Outcome.LOOP)
    if mail.bounce is not None or any(a.skipped_reason for a in mail.attachments):
        return None
    kind = classify(mail.headers, mail.from_address)
    automatic = kind is not MailKind.MESSAGE
    email_kind = EmailKind(kind.value)
    ticket = next((known.ticket_of_key[k] for k in _chain(mail) if k in known.ticket_of_key), None)
    if ticket is not None:
        if isinstance(ticket, int):
            row = known.tickets.get(ticket)
            if row is None or (row.status not in ACTIVE_STATUSES and not automatic):
                return None
        outcome = Outcome.AUTO_REPLY if automatic else Outcome.THREADED
        return _Step(index, mail, email_kind, outcome, ticket)
    if signed_numbers([*mail.in_reply_to, *mail.references, *mail.markers], policy.secret):
        return None
    if subject_numbers(mail.subject, policy.subject_token):
        return None
    if automatic or not mail.from_address:
        return _Step(index, mail, email_kind, Outcome.IGNORED)
    address = _address(mail)
    if address is None:
        return None
    customer = known.customers.get(address)
    if customer is None:
        customer = _NewCustomer(address, (mail.from_name or "").strip() or address)
        known.customers[address] = customer
    if isinstance(customer, int):
        name, language = known.names.get(customer, (address, None))
    else:
        name, language = customer.display_name, None
    step = _Step(
        index,
        mail,
        email_kind,
        Outcome.NEW_TICKET,
        _NewTicket(customer, (mail.subject or "(no subject)")[:300]),
        customer_name=name,
        customer_language=language,
    )
    sender = mail.from_address.lower()
    sent = known.acks_sent.get(sender, 0)
    if mailbox.acknowledge and sender not in known.failing and sent < policy.acks_per_hour:
        step.acknowledge = True
        known.acks_sent[sender] = sent + 1
    return step


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


async def _write(
    uow: UnitOfWork,
    steps: list[_Step],
    known_tickets: dict[int, Ticket],
    mailbox: MailboxPolicy,
    policy: EmailPolicy,
) -> list[Ingested]:
    """Write the pending steps: customers, tickets, then messages with their interactions."""
    session = uow.session
    now = utcnow()
    new_tickets = [s.ticket for s in steps if isinstance(s.ticket, _NewTicket)]
    new_customers = list(
        {id(t.customer): t.customer for t in new_tickets if isinstance(t.customer, _NewCustomer)}.values()
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
            events.DomainEvent(
                events.CUSTOMER_CREATED,
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
            events.DomainEvent(
                events.TICKET_OPENED,
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
    # than the statements); acknowledgments are few and keep their ORM rows.
    written: list[tuple[_Step, _InboundRows | EmailMessage, Ticket | None]] = []
    participants: list[tuple[int, str]] = []
    unsent: list[tuple[Ticket, str]] = []
    acks: list[EmailMessage] = []
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
        if step.acknowledge and ticket is not None:
            try:
                subject, body = acknowledgment_text(
                    ticket, step.customer_name, step.customer_language, step.mail, mailbox, policy
                )
            except InvalidInput as exc:
                unsent.append((ticket, f"No acknowledgment sent: {exc}"))
                continue
            sender = (step.mail.from_address or "").lower()
            message_id = step.mail.message_id
            ack = build_outbound(
                ticket_id=ticket.id,
                ticket_number=ticket.number,
                customer_id=ticket.customer_id,
                identity=mailbox.identity,
                secret=policy.secret,
                domain=policy.domain,
                kind=EmailKind.ACKNOWLEDGMENT,
                to=[sender],
                subject=subject,
                text=body,
                in_reply_to=message_id,
                references=[*step.mail.references, *([message_id] if message_id else [])],
                automatic=True,
            )
            acks.append(ack)
            written.append((step, ack, ticket))
            participants.append((ticket.id, sender))
    # The messages first, so that their ids come before their acknowledgments'.
    await _insert_inbound([rows for _, rows, _ in written if isinstance(rows, _InboundRows)], session)
    session.add_all(acks)
    await session.flush()
    await add_participant_rows(session, participants)
    for ticket, note in unsent:
        await system_note(uow, ticket, note)
    results: dict[int, Ingested] = {}
    for step, rows, ticket in written:
        if isinstance(rows, EmailMessage):
            if rows.interaction is not None:
                uow.record(interaction_logged(rows.interaction))
            previous = results[step.index]
            results[step.index] = Ingested(previous.outcome, previous.email_id, previous.ticket_id, rows.id)
            continue
        if rows.interaction is not None:
            uow.record(_interaction_logged(rows.interaction))
        results[step.index] = Ingested(step.outcome, rows.email_id, ticket.id if ticket is not None else None)
    return [results[s.index] for s in steps]


def _row(ref: TicketRef | None, tickets: dict[int, Ticket]) -> Ticket | None:
    if ref is None:
        return None
    if isinstance(ref, _NewTicket):
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


def _inbound_rows(step: _Step, mailbox: MailboxPolicy, ticket: Ticket | None, now: datetime) -> _InboundRows:
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
    return events.DomainEvent(
        events.INTERACTION_LOGGED,
        {
            "interaction_id": values["id"],
            "customer_id": values["customer_id"],
            "channel": str(values["channel"]),
            "direction": str(values["direction"]),
            "agent_id": values["agent_id"],
            "ticket_id": values["ticket_id"],
        },
    )


async def ingest_batch(
    uow: UnitOfWork, mailbox: MailboxPolicy, policy: EmailPolicy, mails: Sequence[InboundEmail]
) -> list[Ingested]:
    """Store and thread ``mails`` (in mailbox order) in the caller's transaction; the caller
    commits, together with its checkpoint. Duplicates (stored before, or twice in the batch)
    are reported as such and written once."""
    known = await _prefetch(uow, mails)
    results: dict[int, Ingested] = {}
    pending: list[_Step] = []

    async def flush_pending() -> None:
        if pending:
            for step, result in zip(
                pending, await _write(uow, pending, known.tickets, mailbox, policy), strict=True
            ):
                results[step.index] = result
                if isinstance(step.ticket, _NewTicket) and step.ticket.row is not None:
                    known.ticket_of_key[step.mail.key] = step.ticket.row.id
                    known.tickets[step.ticket.row.id] = step.ticket.row
                    if (
                        isinstance(step.ticket.customer, _NewCustomer)
                        and step.ticket.customer.row is not None
                    ):
                        known.customers[step.ticket.customer.address] = step.ticket.customer.row.id
            pending.clear()

    # Bounces open nothing and thread nothing: they wait for the end of the batch (and do not
    # split it), unless a later mail comes from an address they report as failing.
    later_senders: dict[str, int] = {}
    for index, mail in enumerate(mails):
        if mail.from_address:
            later_senders[mail.from_address.lower()] = index
    deferred: list[tuple[int, InboundEmail]] = []
    for index, mail in enumerate(mails):
        if mail.key in known.stored:
            results[index] = Ingested(Outcome.DUPLICATE)
            continue
        known.stored.add(mail.key)
        if mail.bounce is not None and not is_loop(mail, policy):
            failed = [a.lower() for a in mail.bounce.failed_recipients]
            if all(later_senders.get(a, -1) < index for a in failed):
                deferred.append((index, mail))
                continue
        step = _decide(index, mail, known, mailbox, policy)
        if step is not None:
            pending.append(step)
            if step.ticket is not None:
                known.ticket_of_key[mail.key] = step.ticket
            continue
        await flush_pending()
        result = await ingest_one(uow, mailbox, policy, mail)
        results[index] = result
        if result.ticket_id is not None:
            ticket = await uow.session.get_one(Ticket, result.ticket_id)
            known.ticket_of_key[mail.key] = ticket.id
            known.tickets[ticket.id] = ticket
            address = _address(mail)
            if address is not None and result.outcome in (Outcome.NEW_TICKET, Outcome.LINKED):
                known.customers.setdefault(address, ticket.customer_id)
        if result.acknowledgment_id is not None and mail.from_address:
            sender = mail.from_address.lower()
            known.acks_sent[sender] = known.acks_sent.get(sender, 0) + 1
    await flush_pending()
    for index, mail in deferred:
        results[index] = await ingest_one(uow, mailbox, policy, mail)
    return [results[i] for i in range(len(mails))]


async def ingest(
    uow: UnitOfWork, mailbox: MailboxPolicy, policy: EmailPolicy, mail: InboundEmail
) -> Ingested:
    """One message (a batch of one); the caller commits."""
    return (await ingest_batch(uow, mailbox, policy, [mail]))[0]
