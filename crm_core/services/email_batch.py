"""Ingesting a batch of inbound mail in few round trips, with the single-message rules.

Everything the common cases need is read up front in six queries (stored keys, the tickets the
References chains point at, the senders' customers, failing addresses, recent acknowledgments).
Each message is then decided by :func:`crm_core.services.email_ingest.decide` from that, in
mailbox order (a reply may follow its first message in the same batch; a message a reply came
before goes to :func:`ingest_one`, which files it on the reply's ticket), and new conversations,
replies to active tickets, auto-replies, loops and mail that opens nothing are written in bulk.
What needs more of the database (bounces, resolved or closed tickets, refs or subject tokens,
skipped attachments) goes through :func:`ingest_one` after the pending writes are flushed, so
both paths see the same database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from crm_core.db import UnitOfWork
from crm_core.email_ports import InboundEmail
from crm_core.models import Customer, CustomerEmail, EmailMessage, Ticket, utcnow
from crm_core.rules.email_refs import message_key, signed_numbers, subject_numbers
from crm_core.rules.ticket_status import TicketStatus
from crm_core.services.email_acks import acknowledgment_facts, may_acknowledge
from crm_core.services.email_batch_write import NewCustomer, NewTicket, Step, TicketRef, write_steps
from crm_core.services.email_ingest import (
    EmailPolicy,
    Ingested,
    MailboxPolicy,
    Outcome,
    Thread,
    decide,
    ingest_one,
    is_loop,
    needs_thread,
    parent_key,
    sender_address,
)
from crm_core.types import Direction

# What this path writes itself; the rest goes through ingest_one.
_WRITTEN_HERE = frozenset(
    {Outcome.LOOP, Outcome.IGNORED, Outcome.NEW_TICKET, Outcome.THREADED, Outcome.AUTO_REPLY}
)


@dataclass
class _Knowledge:
    """What the batch knows beyond the database's state when it started."""

    stored: set[str]
    ticket_of_key: dict[str, TicketRef]
    tickets: dict[int, Ticket]
    customers: dict[str, int | NewCustomer]
    names: dict[int, tuple[str, str | None]]
    failing: set[str]
    acks_sent: dict[str, int]
    answered: set[str]  # keys of messages a stored or earlier message of the batch answers


def _chain(mail: InboundEmail) -> list[str]:
    return [message_key(i) for i in [*mail.in_reply_to, *reversed(mail.references)]]


async def _prefetch(uow: UnitOfWork, mails: Sequence[InboundEmail], now: datetime) -> _Knowledge:
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
    senders = {a for a in (sender_address(m) for m in mails) if a}
    customers: dict[str, int | NewCustomer] = {}
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
    failing, acks_sent = await acknowledgment_facts(session, lowered, now=now)
    answered = {
        k
        for k in await session.scalars(
            select(EmailMessage.parent_key).where(
                EmailMessage.parent_key.in_(keys),
                EmailMessage.direction == Direction.INBOUND,
                EmailMessage.ticket_id.is_not(None),
            )
        )
        if k is not None
    }
    return _Knowledge(stored, ticket_of_key, tickets, customers, names, failing, acks_sent, answered)


def _decide(
    index: int,
    mail: InboundEmail,
    known: _Knowledge,
    mailbox: MailboxPolicy,
    policy: EmailPolicy,
    now: datetime,
) -> Step | None:
    """The step for what this path writes itself, or None for :func:`ingest_one`: what needs
    more than the batch read (bounces, refs or subject tokens, reopening or linking a ticket,
    skipped attachments)."""
    ref: TicketRef | None = None
    thread: Thread | None = None
    if needs_thread(mail, policy):
        if any(a.skipped_reason for a in mail.attachments):
            return None
        ref = next((known.ticket_of_key[k] for k in _chain(mail) if k in known.ticket_of_key), None)
        if isinstance(ref, int):
            row = known.tickets.get(ref)
            if row is None:
                return None
            thread = Thread(row.status, row.resolved_at)
        elif ref is not None:
            thread = Thread(TicketStatus.NEW)  # opened earlier in this batch
        elif signed_numbers([*mail.in_reply_to, *mail.references, *mail.markers], policy.secret) or (
            subject_numbers(mail.subject, policy.subject_token)
        ):
            return None
        elif mail.key in known.answered:
            return None  # a reply to it came first: find_thread decides whether it joins that
    decision = decide(mail, policy, thread, now)
    if decision.outcome not in _WRITTEN_HERE:
        return None
    if decision.outcome is not Outcome.NEW_TICKET:
        return Step(index, mail, decision.kind, decision.outcome, ref)
    address = sender_address(mail)
    assert address is not None
    customer = known.customers.get(address)
    if customer is None:
        customer = NewCustomer(address, (mail.from_name or "").strip() or address)
        known.customers[address] = customer
    if isinstance(customer, int):
        name, language = known.names.get(customer, (address, None))
    else:
        name, language = customer.display_name, None
    step = Step(
        index,
        mail,
        decision.kind,
        decision.outcome,
        NewTicket(customer, (mail.subject or "(no subject)")[:300]),
        customer_name=name,
        customer_language=language,
    )
    sender = (mail.from_address or "").lower()
    sent = known.acks_sent.get(sender, 0)
    if may_acknowledge(mailbox, policy, sender, failing=sender in known.failing, sent_last_hour=sent):
        step.acknowledge = True
        known.acks_sent[sender] = sent + 1
    return step


async def ingest_batch(
    uow: UnitOfWork,
    mailbox: MailboxPolicy,
    policy: EmailPolicy,
    mails: Sequence[InboundEmail],
    now: datetime | None = None,
) -> list[Ingested]:
    """Store and thread ``mails`` (in mailbox order) in the caller's transaction, as of ``now``
    (the current time by default); the caller commits, together with its checkpoint. Duplicates
    (stored before, or twice in the batch) are reported as such and written once."""
    now = now or utcnow()
    known = await _prefetch(uow, mails, now)
    results: dict[int, Ingested] = {}
    pending: list[Step] = []

    async def flush_pending() -> None:
        if pending:
            for step, result in zip(
                pending, await write_steps(uow, pending, known.tickets, mailbox, policy, now), strict=True
            ):
                results[step.index] = result
                if isinstance(step.ticket, NewTicket) and step.ticket.row is not None:
                    known.ticket_of_key[step.mail.key] = step.ticket.row.id
                    known.tickets[step.ticket.row.id] = step.ticket.row
                    if isinstance(step.ticket.customer, NewCustomer) and step.ticket.customer.row is not None:
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
        parent = parent_key(mail)
        if parent is not None:
            known.answered.add(parent)
        if mail.bounce is not None and not is_loop(mail, policy):
            failed = [a.lower() for a in mail.bounce.failed_recipients]
            if all(later_senders.get(a, -1) < index for a in failed):
                deferred.append((index, mail))
                continue
        step = _decide(index, mail, known, mailbox, policy, now)
        if step is not None:
            pending.append(step)
            if step.ticket is not None:
                known.ticket_of_key[mail.key] = step.ticket
            continue
        await flush_pending()
        result = await ingest_one(uow, mailbox, policy, mail, now)
        results[index] = result
        if result.ticket_id is not None:
            ticket = await uow.session.get_one(Ticket, result.ticket_id)
            known.ticket_of_key[mail.key] = ticket.id
            known.tickets[ticket.id] = ticket
            address = sender_address(mail)
            if address is not None and result.outcome in (Outcome.NEW_TICKET, Outcome.LINKED):
                known.customers.setdefault(address, ticket.customer_id)
        if result.acknowledgment_id is not None and mail.from_address:
            sender = mail.from_address.lower()
            known.acks_sent[sender] = known.acks_sent.get(sender, 0) + 1
    await flush_pending()
    for index, mail in deferred:
        results[index] = await ingest_one(uow, mailbox, policy, mail, now)
    return [results[i] for i in range(len(mails))]


async def ingest(
    uow: UnitOfWork,
    mailbox: MailboxPolicy,
    policy: EmailPolicy,
    mail: InboundEmail,
    now: datetime | None = None,
) -> Ingested:
    """One message (a batch of one) as of ``now``; the caller commits."""
    return (await ingest_batch(uow, mailbox, policy, [mail], now))[0]
