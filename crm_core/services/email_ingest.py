"""Inbound mail to tickets, exactly once.

The message row is inserted first, keyed by its Message-ID (or a stable hash): a second delivery,
or the same mail in another of our mailboxes, stops there. Then, in the same transaction: loop
and bounce checks, threading (In-Reply-To/References, signed refs, subject token from a known
sender, else a new ticket), the interaction, attachments, participants and the acknowledgment in
the outbox. The IMAP loop commits its UID checkpoint in that transaction too.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

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
from crm_core.rules.email_refs import (
    is_our_message_id,
    message_key,
    signed_numbers,
    subject_numbers,
    subject_token,
    with_token,
)
from crm_core.rules.email_threading import ThreadAction, reply_action
from crm_core.services.email_acks import AckTemplate, pick_template, render
from crm_core.services.email_outbound import Identity, delivery_event, queue_email
from crm_core.services.email_participants import add_participants, may_write_to
from crm_core.services.identity import resolve_email
from crm_core.services.interactions import log_interaction
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


async def save_checkpoint(session: AsyncSession, mailbox: str, uidvalidity: int, last_uid: int) -> None:
    """Record progress; meant for the transaction that stored the messages up to ``last_uid``."""
    state = await session.get(EmailMailboxState, mailbox, with_for_update=True)
    if state is None:
        await insert_ignore(
            session,
            EmailMailboxState,
            {"mailbox": mailbox, "uidvalidity": uidvalidity, "last_uid": last_uid, "updated_at": utcnow()},
            ["mailbox"],
        )
        return
    if state.uidvalidity != uidvalidity:
        state.uidvalidity, state.last_uid = uidvalidity, last_uid
    else:
        state.last_uid = max(state.last_uid, last_uid)
    state.updated_at = utcnow()


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


async def _insert_message(uow: UnitOfWork, mailbox: MailboxPolicy, mail: InboundEmail) -> int | None:
    values = inbound_row(mail, mailbox, EmailKind.MESSAGE, utcnow())
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
    """The ticket this mail continues, in the documented order; None for a new conversation."""
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
    return None


async def _reopen(uow: UnitOfWork, ticket: Ticket) -> None:
    await reopen_for_customer(uow, ticket, "email")


async def _handle_bounce(uow: UnitOfWork, email: EmailMessage, mail: InboundEmail) -> Ingested:
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
    now = utcnow()
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
        await system_note(uow, ticket, f"Mail to {', '.join(failed) or 'the customer'} bounced: {reason}")
    return Ingested(Outcome.BOUNCE, email.id, email.ticket_id)


async def _acknowledge(
    uow: UnitOfWork,
    ticket: Ticket,
    email: EmailMessage,
    mail: InboundEmail,
    mailbox: MailboxPolicy,
    policy: EmailPolicy,
) -> EmailMessage | None:
    session = uow.session
    sender = (mail.from_address or "").lower()
    if not mailbox.acknowledge or not sender or policy.acks_per_hour <= 0:
        return None
    if (health := await session.get(EmailAddressHealth, sender)) is not None and health.failing:
        return None
    sent_last_hour = await session.scalar(
        select(func.count())
        .select_from(EmailMessage)
        .where(
            EmailMessage.recipient == sender,
            EmailMessage.kind == EmailKind.ACKNOWLEDGMENT,
            EmailMessage.created_at >= utcnow() - timedelta(hours=1),
        )
    )
    if (sent_last_hour or 0) >= policy.acks_per_hour:
        return None
    customer = await session.get_one(Customer, ticket.customer_id)
    try:
        subject, body = acknowledgment_text(
            ticket, customer.display_name, customer.preferred_language, mail, mailbox, policy
        )
    except InvalidInput as exc:
        await system_note(uow, ticket, f"No acknowledgment sent: {exc}")
        return None
    return await queue_email(
        uow,
        ticket=ticket,
        identity=mailbox.identity,
        secret=policy.secret,
        domain=policy.domain,
        kind=EmailKind.ACKNOWLEDGMENT,
        to=[sender],
        subject=subject,
        text=body,
        in_reply_to=email.message_id,
        references=[*mail.references, *([email.message_id] if email.message_id else [])],
        automatic=True,
    )


def acknowledgment_text(
    ticket: Ticket,
    customer_name: str,
    customer_language: str | None,
    mail: InboundEmail,
    mailbox: MailboxPolicy,
    policy: EmailPolicy,
) -> tuple[str, str]:
    """Subject (with the ticket token) and body of the acknowledgment; InvalidInput if the
    mailbox's template cannot be rendered."""
    template = pick_template(mailbox.templates, [customer_language, mail.language], mailbox.language)
    subject, body = render(
        template,
        {
            "ticket_number": ticket.number,
            "subject_token": subject_token(ticket.number, policy.subject_token),
            "subject": ticket.subject,
            "customer_name": customer_name,
            "mailbox": mailbox.name,
        },
    )
    return with_token(subject, ticket.number, policy.subject_token), body


def is_loop(mail: InboundEmail, policy: EmailPolicy) -> bool:
    if mail.from_address and mail.from_address.lower() in policy.our_addresses:
        return True
    return bool(mail.message_id and is_our_message_id(mail.message_id, policy.secret, policy.domain))


async def ingest_one(
    uow: UnitOfWork, mailbox: MailboxPolicy, policy: EmailPolicy, mail: InboundEmail
) -> Ingested:
    """Store one inbound message and thread it, every case handled; the caller commits.

    :func:`crm_core.services.email_batch.ingest_batch` is the entry point: it handles the common
    cases in bulk and hands the others (bounces, reopening, subject tokens, ...) to this."""
    session = uow.session
    email_id = await _insert_message(uow, mailbox, mail)
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
    if is_loop(mail, policy):
        email.kind = EmailKind.LOOP
        await session.flush()
        return Ingested(Outcome.LOOP, email_id)
    if mail.bounce is not None:
        return await _handle_bounce(uow, email, mail)

    kind = classify(mail.headers, mail.from_address)
    automatic = kind is not MailKind.MESSAGE
    email.kind = EmailKind(kind.value)
    ticket = await find_thread(session, mail, policy)
    outcome = Outcome.THREADED
    if ticket is not None:
        action = reply_action(
            ticket.status, ticket.resolved_at, utcnow(), policy.reopen_window, automatic=automatic
        )
        if action is ThreadAction.REOPEN:
            await _reopen(uow, ticket)
            outcome = Outcome.REOPENED
        elif action is ThreadAction.NEW_LINKED:
            ticket = await open_ticket(
                uow,
                None,
                customer_id=ticket.customer_id,
                subject=mail.subject or ticket.subject,
                sla=policy.sla,
                team_id=ticket.team_id,
                source_channel=Channel.EMAIL,
                linked_ticket_id=ticket.id,
                category="email",
            )
            outcome = Outcome.LINKED
        elif automatic:
            outcome = Outcome.AUTO_REPLY
    elif automatic or not mail.from_address:
        await session.flush()
        return Ingested(Outcome.IGNORED, email_id)
    else:
        try:
            customer = (await resolve_email(uow, mail.from_address, display_name=mail.from_name)).customer
        except InvalidInput:
            await session.flush()
            return Ingested(Outcome.IGNORED, email_id)
        ticket = await open_ticket(
            uow,
            None,
            customer_id=customer.id,
            subject=(mail.subject or "(no subject)")[:300],
            sla=policy.sla,
            team_id=mailbox.team_id,
            source_channel=Channel.EMAIL,
            category="email",
        )
        outcome = Outcome.NEW_TICKET

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
    )
    email.interaction_id = logged.interaction.id
    if not automatic:
        ours = policy.our_addresses
        await add_participants(
            session, ticket.id, [a for a in [mail.from_address or "", *mail.cc] if a.lower() not in ours]
        )
    ticket.updated_at = utcnow()
    await session.flush()
    skipped = [a for a in mail.attachments if a.skipped_reason]
    if skipped:
        names = ", ".join(f"{a.filename} ({a.size} bytes)" for a in skipped)
        await system_note(uow, ticket, f"Attachments not stored, {skipped[0].skipped_reason}: {names}")
    ack = None
    if outcome in (Outcome.NEW_TICKET, Outcome.LINKED):
        ack = await _acknowledge(uow, ticket, email, mail, mailbox, policy)
    return Ingested(outcome, email_id, ticket.id, ack.id if ack is not None else None)
