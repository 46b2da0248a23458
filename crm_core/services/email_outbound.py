"""Outbound mail: written to the outbox first by :func:`queue_email` (with its Message-ID and an
interaction; with or without a ticket), then claimed and delivered by
:func:`crm_core.services.email_sending.deliver_due`, one message at a time: marked sent in one
commit the moment the server takes it, before the SMTP session ends (a crash after that commit
sends nothing again; one inside it resends the message with the same Message-ID when the lease
ends); retried with exponential backoff on temporary failures, marked failed with the server's
reply on permanent ones. The outbox's life cycle (:mod:`crm_core.outbox`): its claim, its reading
of the provider's :class:`~crm_core.errors.DeliveryError`, its retry rule, and the steps a
producer plugs in (a suppression check, a throttle per sending address)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core import events
from crm_core.db import UnitOfWork
from crm_core.email_ports import MailAttachment, OutboundEmail
from crm_core.models import EmailAttachment, EmailKind, EmailMessage, EmailStatus, Interaction, Ticket, utcnow
from crm_core.models.outbox import OutboxChannel, OutboxEntry, OutboxStatus
from crm_core.outbox.rules import RetryRule
from crm_core.rules.email_refs import body_marker, message_key, new_message_id
from crm_core.services.email_participants import add_participant_rows
from crm_core.types import Channel, Direction

log = logging.getLogger(__name__)

AUTOMATIC_HEADERS = {"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"}


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a mailbox writes as."""

    mailbox: str
    address: str
    display_name: str | None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float = 30.0
    max_seconds: float = 3600.0
    max_attempts: int = 10
    # A claimed message not reported back within this time (a crash mid-send) is tried again;
    # the lease starts again as its hand-over begins (``email.claim_lease_seconds``).
    lease_seconds: float = 300.0

    @property
    def rule(self) -> RetryRule:
        """The outbox's retry rule, counted in attempts."""
        return RetryRule(
            first_seconds=self.base_seconds, max_seconds=self.max_seconds, max_attempts=self.max_attempts
        )

    def delay(self, attempts: int) -> timedelta:
        return self.rule.wait(attempts)


def build_outbound(
    *,
    ticket_id: int | None,
    ticket_number: int | None,
    customer_id: int | None,
    identity: Identity,
    secret: bytes,
    domain: str,
    kind: EmailKind,
    to: Sequence[str],
    subject: str,
    text: str,
    html: str | None = None,
    cc: Sequence[str] = (),
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    automatic: bool = False,
    author_id: int | None = None,
    attachments: Sequence[MailAttachment] = (),
    meta: Mapping[str, object] | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """An outbox row (with its interaction and attachments) ready to be added to the session,
    written at ``now`` (the current time by default). With a ticket, a signed Message-ID and the
    hidden ticket marker in every body; without one (``ticket_number`` None), neither. ``meta``
    is added to the interaction's. With no ``customer_id`` (a notice to staff) nothing is logged
    on a customer's timeline."""
    now = now or utcnow()
    if ticket_number is None:
        message_id = new_message_id(None, b"", domain)
        text_body, html_body = f"{text.rstrip()}\n", html
    else:
        marker = body_marker(ticket_number, secret)
        message_id = new_message_id(ticket_number, secret, domain)
        text_body = f"{text.rstrip()}\n\n{marker}\n"
        html_body = f'{html}<div style="display:none">{marker}</div>' if html else None
    key = message_key(message_id)
    interaction = (
        None
        if customer_id is None
        else Interaction(
            channel=Channel.EMAIL,
            direction=Direction.OUTBOUND,
            customer_id=customer_id,
            agent_id=author_id,
            ticket_id=ticket_id,
            external_id=key,
            status="queued",
            started_at=now,
            subject=subject[:500],
            body=text.strip(),
            meta={"kind": str(kind), "to": list(to), **(meta or {})},
            created_at=now,
        )
    )
    return EmailMessage(
        message_key=key,
        message_id=message_id,
        direction=Direction.OUTBOUND,
        kind=kind,
        status=EmailStatus.QUEUED,
        mailbox=identity.mailbox,
        ticket_id=ticket_id,
        customer_id=customer_id,
        author_id=author_id,
        from_address=identity.address,
        from_name=identity.display_name,
        recipient=to[0] if to else None,
        to_addresses=list(to),
        cc_addresses=list(cc),
        subject=subject,
        in_reply_to=in_reply_to,
        reference_ids=list(references)[-20:],
        text_body=text_body,
        html_body=html_body,
        visible_text=text.strip(),
        headers=dict(AUTOMATIC_HEADERS) if automatic else {},
        defects=[],
        attempts=0,
        sent_date=now,
        created_at=now,
        interaction=interaction,
        attachments=[
            EmailAttachment(
                filename=a.filename,
                content_type=a.content_type,
                size=a.size,
                sha256=a.sha256,
                content_id=a.content_id,
                inline=a.inline,
            )
            for a in attachments
        ],
    )


def interaction_logged(interaction: Interaction) -> events.DomainEvent:
    return events.interaction_logged(
        {
            "interaction_id": interaction.id,
            "customer_id": interaction.customer_id,
            "channel": str(interaction.channel),
            "direction": str(interaction.direction),
            "agent_id": interaction.agent_id,
            "ticket_id": interaction.ticket_id,
        },
    )


@dataclass(frozen=True, slots=True)
class EmailDraft:
    """One outbound message as its producer asks for it (an agent's reply, an acknowledgment, a
    transcript, a broadcast). With a ``ticket`` it carries the ticket's marker and its recipients
    become the ticket's participants; without one ``customer_id`` names whom it is logged on.
    A notice to staff (``to_staff``: an escalation) is logged on no customer at all."""

    identity: Identity
    kind: EmailKind
    to: Sequence[str]
    subject: str
    text: str
    ticket: Ticket | None = None
    customer_id: int | None = None
    html: str | None = None
    cc: Sequence[str] = ()
    in_reply_to: str | None = None
    references: Sequence[str] = ()
    automatic: bool = False
    author_id: int | None = None
    attachments: Sequence[MailAttachment] = ()
    meta: Mapping[str, object] | None = None
    to_staff: bool = False

    def row(self, secret: bytes, domain: str, now: datetime | None = None) -> EmailMessage:
        """The outbox row, its interaction (logged on ``customer_id``, by default the ticket's
        customer) and its attachments, written at ``now``, ready to be added to the session."""
        customer_id = self.customer_id
        if customer_id is None and not self.to_staff:
            if self.ticket is None:
                raise ValueError("an email without a ticket needs its customer")
            customer_id = self.ticket.customer_id
        return build_outbound(
            ticket_id=self.ticket.id if self.ticket is not None else None,
            ticket_number=self.ticket.number if self.ticket is not None else None,
            customer_id=customer_id,
            identity=self.identity,
            secret=secret,
            domain=domain,
            kind=self.kind,
            to=self.to,
            subject=self.subject,
            text=self.text,
            html=self.html,
            cc=self.cc,
            in_reply_to=self.in_reply_to,
            references=self.references,
            automatic=self.automatic,
            author_id=self.author_id,
            attachments=self.attachments,
            meta=self.meta,
            now=now,
        )


def outbox_entry(email: EmailMessage) -> OutboxEntry:
    """The outbox row that delivers a flushed message: due at once, keyed by its Message-ID."""
    return OutboxEntry(
        channel=OutboxChannel.EMAIL,
        idempotency_key=f"email:{email.message_key}",
        status=OutboxStatus.QUEUED,
        sender_key=email.from_address or "",
        attempts=0,
        next_attempt_at=email.created_at,
        email_message_id=email.id,
        created_at=email.created_at,
        updated_at=email.created_at,
    )


async def queue_emails(
    uow: UnitOfWork,
    drafts: Sequence[EmailDraft],
    *,
    secret: bytes,
    domain: str,
    announce: bool = True,
    now: datetime | None = None,
) -> list[EmailMessage]:
    """The one way mail enters the outbox: write each draft's row, interaction and attachments
    in the caller's unit of work (one flush for all; the sender delivers them after the commit),
    log the interactions, and make the recipients of ticketed mail the tickets' participants.

    ``announce`` also tells the sender (or else the ticket's assignee) that each is queued; the
    ingest's acknowledgments, which nobody waits for, are not announced until they are sent.
    Written, and due, at ``now`` (the producer's clock; the current time by default)."""
    if not drafts:
        return []
    session = uow.session
    emails = [draft.row(secret, domain, now) for draft in drafts]
    session.add_all(emails)
    await session.flush()
    session.add_all([outbox_entry(email) for email in emails])
    for email in emails:
        if email.interaction is not None:
            uow.record(interaction_logged(email.interaction))
        if announce:
            uow.record(await delivery_event(session, email))
    await add_participant_rows(
        session,
        [
            (draft.ticket.id, address)
            for draft in drafts
            if draft.ticket is not None
            for address in [*draft.to, *draft.cc]
        ],
    )
    return emails


async def queue_email(
    uow: UnitOfWork,
    *,
    ticket: Ticket | None,
    identity: Identity,
    secret: bytes,
    domain: str,
    kind: EmailKind,
    to: Sequence[str],
    subject: str,
    text: str,
    html: str | None = None,
    cc: Sequence[str] = (),
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    automatic: bool = False,
    author_id: int | None = None,
    attachments: Sequence[MailAttachment] = (),
    customer_id: int | None = None,
    meta: Mapping[str, object] | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """:func:`queue_emails` for one message (announced as queued).

    Without a ticket (a broadcast, a transcript of a chat that has none) it carries no ticket
    marker and adds no participants; ``customer_id`` is then required. ``meta`` is added to the
    interaction's."""
    draft = EmailDraft(
        identity=identity,
        kind=kind,
        to=to,
        subject=subject,
        text=text,
        ticket=ticket,
        customer_id=customer_id,
        html=html,
        cc=cc,
        in_reply_to=in_reply_to,
        references=references,
        automatic=automatic,
        author_id=author_id,
        attachments=attachments,
        meta=meta,
    )
    (email,) = await queue_emails(uow, [draft], secret=secret, domain=domain, now=now)
    return email


async def delivery_event(session: AsyncSession, row: EmailMessage) -> events.DomainEvent:
    """``email.delivery`` for an outbound message's current state, for its sender (or else the
    ticket's assignee) on their socket."""
    agent_id = row.author_id
    if agent_id is None and row.ticket_id is not None:
        agent_id = await session.scalar(select(Ticket.assignee_id).where(Ticket.id == row.ticket_id))
    return events.email_delivery(
        {
            "agent_id": agent_id,
            "email_id": row.id,
            "ticket_id": row.ticket_id,
            "interaction_id": row.interaction_id,
            "status": str(row.status),
            "attempts": row.attempts,
            "error": row.last_error,
        },
    )


def outbound_of(row: EmailMessage, attachments: Sequence[EmailAttachment]) -> OutboundEmail:
    """The composable form of an outbox row (for sending, and for downloading what was sent)."""
    return OutboundEmail(
        email_id=row.id,
        message_id=row.message_id or row.message_key,
        from_address=row.from_address or "",
        from_name=row.from_name,
        to=tuple(row.to_addresses),
        cc=tuple(row.cc_addresses),
        subject=row.subject,
        text=row.text_body,
        html=row.html_body,
        in_reply_to=row.in_reply_to,
        references=tuple(row.reference_ids),
        headers=dict(row.headers),
        date=row.sent_date or row.created_at,
        attachments=tuple(
            MailAttachment(a.filename, a.content_type, a.size, a.sha256, a.content_id, a.inline)
            for a in attachments
        ),
    )
