"""Inbound mail to tickets, exactly once: the decision, and the single-message path.

The message row is inserted first, keyed by its Message-ID (or a stable hash): a second delivery,
or the same mail in another of our mailboxes, stops there. Then, in the same transaction: loop
and bounce checks, threading (In-Reply-To/References, signed refs, subject token from a known
sender, else a new ticket), the interaction, attachments, participants and the acknowledgment in
the outbox. The IMAP loop commits its UID checkpoint in that transaction too.

:func:`decide` is the one threading decision: :func:`ingest_one` asks the database for what it
needs, :func:`crm_core.services.email_batch.ingest_batch` answers it from what it read up front
for a whole batch (and hands this path what it cannot answer). Acknowledgments are written by
:func:`crm_core.services.email_acks.write_acknowledgments` on both paths.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.contact_points import normalize_email
from crm_core.db import UnitOfWork
from crm_core.email_ports import InboundEmail
from crm_core.errors import InvalidInput
from crm_core.models import (
    Customer,
    EmailAddressHealth,
    EmailAttachment,
    EmailKind,
    EmailMailboxState,
    EmailMessage,
    EmailStatus,
    Ticket,
    utcnow,
)
from crm_core.rules.email_loops import MailKind, classify
from crm_core.rules.email_refs import is_our_message_id, message_key, signed_numbers, subject_numbers
from crm_core.rules.email_threading import ThreadAction, reply_action
from crm_core.rules.ticket_status import TicketStatus
from crm_core.services.email_acks import (
    AckRequest,
    AckTemplate,
    acknowledgment_facts,
    may_acknowledge,
    write_acknowledgments,
)
from crm_core.services.email_outbound import Identity, delivery_event
from crm_core.services.email_participants import add_participants, may_write_to
from crm_core.services.identity import resolve_email
from crm_core.services.interactions import log_interaction
from crm_core.services.sla import customers_wrote
from crm_core.services.tickets import SlaPolicy, find_by_number, open_ticket, reopen_for_customer, system_note
from crm_core.sql import insert_ignore
from crm_core.types import Channel, Direction


@dataclass(frozen=True, slots=True)
class MailboxPolicy:
    name: str
    address: str
    display_name: str | None = None
    team_id: int | None = None
    language: str = "en"
    acknowledge: bool = True
    templates: Mapping[str, AckTemplate] = field(default_factory=dict)

    @property
    def identity(self) -> Identity:
        return Identity(self.name, self.address.lower(), self.display_name)


@dataclass(frozen=True, slots=True)
class EmailPolicy:
    secret: bytes
    domain: str
    our_addresses: frozenset[str]
    sla: SlaPolicy
    subject_token: str = "[#{number}]"  # noqa: S105 - a format, not a secret
    reopen_window: timedelta = timedelta(days=7)
    acks_per_hour: int = 3


class Outcome(enum.StrEnum):
    DUPLICATE = "duplicate"
    NEW_TICKET = "new_ticket"
    THREADED = "threaded"
    REOPENED = "reopened"
    LINKED = "linked"
    AUTO_REPLY = "auto_reply"
    IGNORED = "ignored"
    BOUNCE = "bounce"
    LOOP = "loop"


@dataclass(frozen=True, slots=True)
class Ingested:
    outcome: Outcome
    email_id: int | None = None
    ticket_id: int | None = None
    acknowledgment_id: int | None = None


async def known_keys(session: AsyncSession, keys: Sequence[str]) -> set[str]:
    """Which of these message keys are already stored (checked before fetching bodies)."""
    if not keys:
        return set()
    rows = await session.scalars(select(EmailMessage.message_key).where(EmailMessage.message_key.in_(keys)))
    return set(rows)


async def load_checkpoint(session: AsyncSession, mailbox: str) -> tuple[int | None, int]:
    state = await session.get(EmailMailboxState, mailbox)
    return (state.uidvalidity, state.last_uid) if state is not None else (None, 0)


async def save_checkpoint(
    session: AsyncSession, mailbox: str, uidvalidity: int, last_uid: int, now: datetime | None = None
) -> None:
    """Record progress (at ``now``, the current time by default); meant for the transaction that
    stored the messages up to ``last_uid``."""
    now = now or utcnow()
    state = await session.get(EmailMailboxState, mailbox, with_for_update=True)
    if state is None:
        await insert_ignore(
            session,
            EmailMailboxState,
            {"mailbox": mailbox, "uidvalidity": uidvalidity, "last_uid": last_uid, "updated_at": now},
            ["mailbox"],
        )
        return
    if state.uidvalidity != uidvalidity:
        state.uidvalidity, state.last_uid = uidvalidity, last_uid
    else:
        state.last_uid = max(state.last_uid, last_uid)
    state.updated_at = now


def parent_key(mail: InboundEmail) -> str | None:
    """The key of the message ``mail`` answers: its In-Reply-To, else its last References entry."""
    parents = mail.in_reply_to or mail.references[-1:]
    return message_key(parents[0]) if parents else None


def inbound_row(mail: InboundEmail, mailbox: MailboxPolicy, kind: EmailKind, now: datetime) -> dict[str, Any]:
    """The ``email_messages`` columns of an inbound message, before its ticket is known."""
    return {
        "message_key": mail.key,
        "message_id": mail.message_id,
        "direction": Direction.INBOUND,
        "kind": kind,
        "status": EmailStatus.RECEIVED,
        "mailbox": mailbox.name,
        "from_address": (mail.from_address or "")[:320] or None,
        "from_name": (mail.from_name or "")[:200] or None,
        "to_addresses": list(mail.to),
        "cc_addresses": list(mail.cc),
        "subject": mail.subject,
        "in_reply_to": mail.in_reply_to[0] if mail.in_reply_to else None,
        "reference_ids": list(mail.references)[-50:],
        "parent_key": parent_key(mail),
        "text_body": mail.text,
        "html_body": mail.html,
        "visible_text": mail.visible_text,
        "headers": dict(mail.headers),
        "defects": list(mail.defects),
        "language": mail.language,
        "raw_sha256": mail.raw_sha256,
        "raw_size": mail.raw_size,
        "sent_date": mail.date,
        "attempts": 0,
        "created_at": now,
    }


async def _insert_message(
    uow: UnitOfWork, mailbox: MailboxPolicy, mail: InboundEmail, now: datetime
) -> int | None:
    values = inbound_row(mail, mailbox, EmailKind.MESSAGE, now)
    new_id = await insert_ignore(uow.session, EmailMessage, values, ["message_key"])
    return int(new_id) if new_id is not None else None


async def _ticket_by_message_ids(session: AsyncSession, ids: Sequence[str]) -> Ticket | None:
    keys = [message_key(i) for i in ids]
    if not keys:
        return None
    rows = (
        await session.execute(
            select(EmailMessage.message_key, EmailMessage.ticket_id).where(
                EmailMessage.message_key.in_(keys), EmailMessage.ticket_id.is_not(None)
            )
        )
    ).all()
    by_key = {k: t for k, t in rows}
    for key in keys:
        if key in by_key:
            return await session.get(Ticket, by_key[key])
    return None


async def find_thread(session: AsyncSession, mail: InboundEmail, policy: EmailPolicy) -> Ticket | None:
    """The ticket this mail continues, in the documented order; None for a new conversation.
    The same wherever the mail stands in its batch: a reply stored before the message it
    answers makes that message join the reply's ticket (4)."""
    # (1) In-Reply-To, then References newest first, against every Message-ID we know.
    chain = [*mail.in_reply_to, *reversed(mail.references)]
    ticket = await _ticket_by_message_ids(session, chain)
    if ticket is not None:
        return ticket
    # (2) Our signed ref, in a Message-ID we sent or in the hidden body marker.
    for number in signed_numbers([*chain, *mail.markers], policy.secret):
        ticket = await find_by_number(session, number)
        if ticket is not None:
            return ticket
    # (3) The subject token, only from the ticket's customer or a participant.
    if mail.from_address:
        for number in subject_numbers(mail.subject, policy.subject_token):
            ticket = await find_by_number(session, number)
            if ticket is not None and await may_write_to(session, ticket, mail.from_address):
                return ticket
        # (4) A reply to this mail that arrived first (mailbox order is not the order of
        # writing), only from the reply's ticket's customer or a participant.
        ticket = await _ticket_of_replies(session, mail)
        if ticket is not None and await may_write_to(session, ticket, mail.from_address):
            return ticket
    return None


async def _ticket_of_replies(session: AsyncSession, mail: InboundEmail) -> Ticket | None:
    """The ticket of the first stored inbound message answering ``mail``."""
    ticket_id = await session.scalar(
        select(EmailMessage.ticket_id)
        .where(
            EmailMessage.parent_key == mail.key,
            EmailMessage.message_key != mail.key,
            EmailMessage.direction == Direction.INBOUND,
            EmailMessage.ticket_id.is_not(None),
        )
        .order_by(EmailMessage.id)
        .limit(1)
    )
    return await session.get(Ticket, ticket_id) if ticket_id is not None else None


async def _handle_bounce(uow: UnitOfWork, email: EmailMessage, mail: InboundEmail, now: datetime) -> Ingested:
    session = uow.session
    assert mail.bounce is not None
    email.kind = EmailKind.BOUNCE
    keys = [message_key(m) for m in mail.bounce.original_message_ids]
    originals = (
        list(
            await session.scalars(
                select(EmailMessage).where(
                    EmailMessage.message_key.in_(keys), EmailMessage.direction == Direction.OUTBOUND
                )
            )
        )
        if keys
        else []
    )
    reason = mail.bounce.diagnostic or mail.bounce.status or mail.subject
    failed = list(mail.bounce.failed_recipients)
    for original in originals:
        original.status = EmailStatus.BOUNCED
        original.last_error = reason
        email.ticket_id = email.ticket_id or original.ticket_id
        email.customer_id = email.customer_id or original.customer_id
        if not failed:
            failed = list(original.to_addresses)
    for address in dict.fromkeys(a.lower() for a in failed if "@" in a):
        health = await session.get(EmailAddressHealth, address[:320])
        if health is None:
            session.add(
                EmailAddressHealth(
                    address=address[:320], failing=True, bounces=1, last_reason=reason, last_bounce_at=now
                )
            )
        else:
            health.failing, health.bounces = True, health.bounces + 1
            health.last_reason, health.last_bounce_at = reason, now
    await session.flush()
    for original in originals:
        uow.record(await delivery_event(session, original))
    if email.ticket_id is not None:
        ticket = await session.get_one(Ticket, email.ticket_id)
        note = f"Mail to {', '.join(failed) or 'the customer'} bounced: {reason}"
        await system_note(uow, ticket, note, now)
    return Ingested(Outcome.BOUNCE, email.id, email.ticket_id)


def is_loop(mail: InboundEmail, policy: EmailPolicy) -> bool:
    if mail.from_address and mail.from_address.lower() in policy.our_addresses:
        return True
    return bool(mail.message_id and is_our_message_id(mail.message_id, policy.secret, policy.domain))


def sender_address(mail: InboundEmail) -> str | None:
    """The sender's normalized address; None when there is none or it is not a valid one."""
    if not mail.from_address:
        return None
    try:
        return normalize_email(mail.from_address)
    except InvalidInput:
        return None


def needs_thread(mail: InboundEmail, policy: EmailPolicy) -> bool:
    """Whether :func:`decide` looks at the ticket the mail continues (loops and bounces open and
    thread nothing)."""
    return mail.bounce is None and not is_loop(mail, policy)


@dataclass(frozen=True, slots=True)
class Thread:
    """What the decision needs of the ticket a message continues."""

    status: TicketStatus
    resolved_at: datetime | None = None


def answer_due(outcome: Outcome) -> bool:
    """Whether the customer now waits for an answer on the active ticket the message joined (its
    next-response clock starts; :func:`decide` reopens a pending ticket instead)."""
    return outcome is Outcome.THREADED


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    kind: EmailKind

    @property
    def acknowledged(self) -> bool:
        """Whether the message is acknowledged (if :func:`may_acknowledge` allows): it opened a ticket."""
        return self.outcome in (Outcome.NEW_TICKET, Outcome.LINKED)


def decide(mail: InboundEmail, policy: EmailPolicy, thread: Thread | None, now: datetime) -> Decision:
    """What a message not stored before does: the one threading decision of both ingest paths.

    ``thread`` is the ticket it continues (In-Reply-To/References, signed ref, subject token from
    its customer or a participant, or a reply to it stored first), None when there is none. A
    reply to an active ticket is filed on it (one waiting on the customer, pending, opens again);
    a resolved one reopens within the window; later, or once closed, the reply opens a new ticket
    linked to the old one. Auto-replies, and mail without a valid sender, never open anything."""
    if is_loop(mail, policy):
        return Decision(Outcome.LOOP, EmailKind.LOOP)
    if mail.bounce is not None:
        return Decision(Outcome.BOUNCE, EmailKind.BOUNCE)
    kind = classify(mail.headers, mail.from_address)
    automatic = kind is not MailKind.MESSAGE
    email_kind = EmailKind(kind.value)
    if thread is not None:
        action = reply_action(
            thread.status, thread.resolved_at, now, policy.reopen_window, automatic=automatic
        )
        if action is ThreadAction.REOPEN or (not automatic and thread.status is TicketStatus.PENDING):
            return Decision(Outcome.REOPENED, email_kind)
        if action is ThreadAction.NEW_LINKED:
            return Decision(Outcome.LINKED, email_kind)
        return Decision(Outcome.AUTO_REPLY if automatic else Outcome.THREADED, email_kind)
    if automatic or sender_address(mail) is None:
        return Decision(Outcome.IGNORED, email_kind)
    return Decision(Outcome.NEW_TICKET, email_kind)


async def ingest_one(
    uow: UnitOfWork,
    mailbox: MailboxPolicy,
    policy: EmailPolicy,
    mail: InboundEmail,
    now: datetime | None = None,
) -> Ingested:
    """Store one inbound message and thread it, every case handled, as of ``now`` (the current
    time by default: the reopen window and the SLA count from it); the caller commits.

    :func:`crm_core.services.email_batch.ingest_batch` is the entry point: it handles the common
    cases in bulk and hands the others (bounces, reopening, subject tokens, ...) to this."""
    session = uow.session
    now = now or utcnow()
    email_id = await _insert_message(uow, mailbox, mail, now)
    if email_id is None:
        return Ingested(Outcome.DUPLICATE)
    email = await session.get_one(EmailMessage, email_id)
    for item in mail.attachments:
        session.add(
            EmailAttachment(
                email_id=email_id,
                filename=item.filename,
                content_type=item.content_type,
                size=item.size,
                sha256=item.sha256,
                content_id=item.content_id,
                inline=item.inline,
                skipped_reason=item.skipped_reason,
            )
        )
    found = await find_thread(session, mail, policy) if needs_thread(mail, policy) else None
    thread = Thread(found.status, found.resolved_at) if found is not None else None
    decision = decide(mail, policy, thread, now)
    email.kind = decision.kind
    outcome = decision.outcome
    if outcome is Outcome.BOUNCE:
        return await _handle_bounce(uow, email, mail, now)
    if outcome in (Outcome.LOOP, Outcome.IGNORED):
        await session.flush()
        return Ingested(outcome, email_id)
    if outcome is Outcome.NEW_TICKET:
        assert mail.from_address is not None
        customer = (await resolve_email(uow, mail.from_address, display_name=mail.from_name)).customer
        ticket = await open_ticket(
            uow,
            None,
            customer_id=customer.id,
            subject=(mail.subject or "(no subject)")[:300],
            sla=policy.sla,
            team_id=mailbox.team_id,
            source_channel=Channel.EMAIL,
            category="email",
            now=now,
        )
    else:
        assert found is not None
        ticket = found
        if outcome is Outcome.REOPENED:
            await reopen_for_customer(uow, ticket, "email", now)
        elif answer_due(outcome):
            await customers_wrote(session, [ticket], now)
        elif outcome is Outcome.LINKED:
            ticket = await open_ticket(
                uow,
                None,
                customer_id=found.customer_id,
                subject=mail.subject or found.subject,
                sla=policy.sla,
                team_id=found.team_id,
                source_channel=Channel.EMAIL,
                linked_ticket_id=found.id,
                category="email",
                now=now,
            )

    email.ticket_id = ticket.id
    email.customer_id = ticket.customer_id
    logged = await log_interaction(
        uow,
        channel=Channel.EMAIL,
        direction=Direction.INBOUND,
        customer_id=ticket.customer_id,
        external_id=mail.key,
        ticket_id=ticket.id,
        status=str(email.kind),
        started_at=mail.date,
        subject=mail.subject[:500],
        body=mail.visible_text,
        meta={"mailbox": mailbox.name, "from": mail.from_address},
        now=now,
    )
    email.interaction_id = logged.interaction.id
    if outcome is not Outcome.AUTO_REPLY:
        ours = policy.our_addresses
        await add_participants(
            session,
            ticket.id,
            [a for a in [mail.from_address or "", *mail.cc] if a.lower() not in ours],
            now,
        )
    ticket.updated_at = now
    await session.flush()
    skipped = [a for a in mail.attachments if a.skipped_reason]
    if skipped:
        names = ", ".join(f"{a.filename} ({a.size} bytes)" for a in skipped)
        await system_note(uow, ticket, f"Attachments not stored, {skipped[0].skipped_reason}: {names}", now)
    ack = await _acknowledge(uow, ticket, mail, mailbox, policy, now) if decision.acknowledged else None
    return Ingested(outcome, email_id, ticket.id, ack.id if ack is not None else None)


async def _acknowledge(
    uow: UnitOfWork,
    ticket: Ticket,
    mail: InboundEmail,
    mailbox: MailboxPolicy,
    policy: EmailPolicy,
    now: datetime,
) -> EmailMessage | None:
    sender = (mail.from_address or "").lower()
    failing, sent = await acknowledgment_facts(uow.session, {sender}, now=now)
    if not may_acknowledge(
        mailbox, policy, sender, failing=sender in failing, sent_last_hour=sent.get(sender, 0)
    ):
        return None
    customer = await uow.session.get_one(Customer, ticket.customer_id)
    request = AckRequest(ticket, customer.display_name, customer.preferred_language, mail)
    (ack,) = await write_acknowledgments(uow, [request], mailbox, policy, now)
    return ack
