"""Outbound mail: written to the outbox first by :func:`queue_email` (with its Message-ID and an
interaction; with or without a ticket), then claimed and delivered by :func:`deliver_due`, one
message at a time: marked sent in one commit the moment the server takes it, before the SMTP
session ends (a crash after that commit sends nothing again; one inside it resends the message with
the same Message-ID when the lease ends); retried with exponential backoff on temporary failures,
marked failed with the server's reply on permanent ones. The outbox's life cycle
(:mod:`crm_core.outbox`): its claim, its reading of the provider's
:class:`~crm_core.errors.DeliveryError`, its retry rule, and the steps a producer plugs in (a
suppression check, a throttle per sending address)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core import events
from crm_core.db import UnitOfWork
from crm_core.email_ports import DeliveryError, MailAttachment, MailTransport, OutboundEmail
from crm_core.models import EmailAttachment, EmailKind, EmailMessage, EmailStatus, Interaction, Ticket, utcnow
from crm_core.outbox.claim import claim
from crm_core.outbox.rules import RetryRule, Stage, after_failure
from crm_core.outbox.steps import UNLIMITED, Suppression, Throttle, pace
from crm_core.ports import Clock
from crm_core.rules.email_refs import body_marker, message_key, new_message_id
from crm_core.services.email_participants import add_participants
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
    # the lease starts again as its hand-over begins.
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
    customer_id: int,
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
) -> EmailMessage:
    """An outbox row (with its interaction and attachments) ready to be added to the session.
    With a ticket, a signed Message-ID and the hidden ticket marker in every body; without one
    (``ticket_number`` None), neither. ``meta`` is added to the interaction's."""
    now = utcnow()
    if ticket_number is None:
        message_id = new_message_id(None, b"", domain)
        text_body, html_body = f"{text.rstrip()}\n", html
    else:
        marker = body_marker(ticket_number, secret)
        message_id = new_message_id(ticket_number, secret, domain)
        text_body = f"{text.rstrip()}\n\n{marker}\n"
        html_body = f'{html}<div style="display:none">{marker}</div>' if html else None
    key = message_key(message_id)
    interaction = Interaction(
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
        next_attempt_at=now,
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
) -> EmailMessage:
    """Write one message to the outbox (the sender delivers it after the commit), logged as an
    outbound email interaction on ``customer_id`` (by default the ticket's customer).

    Without a ticket (a broadcast, a transcript of a chat that has none) it carries no ticket
    marker and adds no participants; ``customer_id`` is then required. ``meta`` is added to the
    interaction's."""
    if customer_id is None:
        if ticket is None:
            raise ValueError("an email without a ticket needs its customer")
        customer_id = ticket.customer_id
    email = build_outbound(
        ticket_id=ticket.id if ticket is not None else None,
        ticket_number=ticket.number if ticket is not None else None,
        customer_id=customer_id,
        identity=identity,
        secret=secret,
        domain=domain,
        kind=kind,
        to=to,
        subject=subject,
        text=text,
        html=html,
        cc=cc,
        in_reply_to=in_reply_to,
        references=references,
        automatic=automatic,
        author_id=author_id,
        attachments=attachments,
        meta=meta,
    )
    uow.session.add(email)
    await uow.session.flush()
    assert email.interaction is not None
    uow.record(interaction_logged(email.interaction))
    uow.record(await delivery_event(uow.session, email))
    if ticket is not None:
        await add_participants(uow.session, ticket.id, [*to, *cc])
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


async def claim_due(
    uow: UnitOfWork, retry: RetryPolicy, *, limit: int = 20, now: datetime | None = None
) -> list[OutboundEmail]:
    """Take up to ``limit`` due messages (the outbox's claim) and lease them; commits."""
    return [claimed.outbound for claimed in await _claim(uow, retry, limit, now)]


@dataclass(frozen=True, slots=True)
class _Claimed:
    """A claimed message, with what recording its acceptance needs (read at the claim, so that
    the acceptance is written without reading anything first)."""

    outbound: OutboundEmail
    attempt: int  # the claim's attempt number, which names the claim
    interaction_id: int | None
    ticket_id: int | None
    agent_id: int | None  # whom its delivery event is for


async def _claim(
    uow: UnitOfWork, retry: RetryPolicy, limit: int, now: datetime | None = None
) -> list[_Claimed]:
    """:func:`claim_due`, with each claim's attempt number and the facts of its acceptance."""
    session = uow.session
    now = now or utcnow()
    ids = await claim(
        session,
        EmailMessage,
        where=[
            EmailMessage.direction == Direction.OUTBOUND,
            EmailMessage.status.in_([EmailStatus.QUEUED, EmailStatus.SENDING]),
            EmailMessage.next_attempt_at <= now,
        ],
        values={
            "status": EmailStatus.SENDING,
            "attempts": EmailMessage.attempts + 1,
            "next_attempt_at": now + timedelta(seconds=retry.lease_seconds),
        },
        order_by=(EmailMessage.next_attempt_at, EmailMessage.id),
        limit=limit,
    )
    rows = {
        row.id: row
        for row in await session.scalars(
            select(EmailMessage).where(EmailMessage.id.in_(ids)).execution_options(populate_existing=True)
        )
    }
    claimed: list[_Claimed] = []
    for id_ in ids:
        row = rows[id_]
        attachments = (
            await session.scalars(select(EmailAttachment).where(EmailAttachment.email_id == row.id))
        ).all()
        agent_id = row.author_id
        if agent_id is None and row.ticket_id is not None:
            agent_id = await session.scalar(select(Ticket.assignee_id).where(Ticket.id == row.ticket_id))
        claimed.append(
            _Claimed(outbound_of(row, attachments), row.attempts, row.interaction_id, row.ticket_id, agent_id)
        )
    await uow.commit()
    return claimed


async def _accept(uow: UnitOfWork, claimed: _Claimed, reply: str, now: datetime | None = None) -> None:
    """Record that the server took the message: two UPDATEs and the commit, nothing read first,
    so the time in which a crash sends it again is one commit long. Recorded whoever holds the
    claim now (another sender that took it over then finds it sent and leaves it)."""
    session = uow.session
    email_id = claimed.outbound.email_id
    done = await session.execute(
        update(EmailMessage)
        .where(
            EmailMessage.id == email_id,
            EmailMessage.status.in_([EmailStatus.SENDING, EmailStatus.QUEUED]),
        )
        .values(status=EmailStatus.SENT, last_error=None, next_attempt_at=None, delivered_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    if getattr(done, "rowcount", 0) != 1:
        await uow.rollback()
        return
    if claimed.interaction_id is not None:
        await session.execute(
            update(Interaction)
            .where(Interaction.id == claimed.interaction_id)
            .values(status=str(EmailStatus.SENT))
            .execution_options(synchronize_session=False)
        )
    uow.record(
        events.email_delivery(
            {
                "agent_id": claimed.agent_id,
                "email_id": email_id,
                "ticket_id": claimed.ticket_id,
                "interaction_id": claimed.interaction_id,
                "status": str(EmailStatus.SENT),
                "attempts": claimed.attempt,
                "error": None,
            },
        )
    )
    await uow.commit()
    log.debug("email %s taken by the server: %s", email_id, reply)


async def _still_ours(
    uow: UnitOfWork, email_id: int, attempt: int, retry: RetryPolicy, now: datetime | None = None
) -> bool:
    """Renew the lease of a claimed message just before handing it over, if the claim is still
    this sender's: a round longer than the lease lets another instance claim what this one has
    not sent yet, and then only that instance sends it. Commits."""
    renewed = await uow.session.execute(
        update(EmailMessage)
        .where(
            EmailMessage.id == email_id,
            EmailMessage.status == EmailStatus.SENDING,
            EmailMessage.attempts == attempt,
        )
        .values(next_attempt_at=(now or utcnow()) + timedelta(seconds=retry.lease_seconds))
        .execution_options(synchronize_session=False)
    )
    await uow.commit()
    return bool(getattr(renewed, "rowcount", 0) == 1)


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


async def _record(
    uow: UnitOfWork,
    email_id: int,
    status: EmailStatus,
    error: str | None,
    next_at: datetime | None,
    now: datetime | None = None,
) -> None:
    row = await uow.session.get(EmailMessage, email_id, with_for_update=True)
    if row is None or row.status not in (EmailStatus.SENDING, EmailStatus.QUEUED):
        return
    row.status = status
    row.last_error = error
    row.next_attempt_at = next_at
    if status is EmailStatus.SENT:
        row.delivered_at = now or utcnow()
    if row.interaction_id is not None:
        interaction = await uow.session.get(Interaction, row.interaction_id)
        if interaction is not None:
            interaction.status = str(status)
    uow.record(await delivery_event(uow.session, row))
    await uow.commit()


async def _refusal(
    uow_factory: Callable[[], UnitOfWork], suppression: Suppression[EmailMessage], email_id: int
) -> str | None:
    async with uow_factory() as uow:
        row = await uow.session.get(EmailMessage, email_id)
        return await suppression.refusal(uow.session, row) if row is not None else None


async def deliver_due(
    uow_factory: Callable[[], UnitOfWork],
    transport: MailTransport,
    retry: RetryPolicy,
    *,
    limit: int = 20,
    suppression: Suppression[EmailMessage] | None = None,
    throttle: Throttle = UNLIMITED,
    clock: Clock | None = None,
) -> int:
    """One outbox round: claim, check the producer's ``suppression`` (none by default), wait for
    the sending address's turn (``throttle``), send, record. Returns how many messages were
    attempted."""

    def now() -> datetime | None:
        return clock.now() if clock is not None else None

    async with uow_factory() as uow:
        claimed = await _claim(uow, retry, limit, now())
    for item in claimed:
        outbound, attempt = item.outbound, item.attempt
        if suppression is not None:
            refused = await _refusal(uow_factory, suppression, outbound.email_id)
            if refused is not None:
                async with uow_factory() as uow:
                    await _record(uow, outbound.email_id, EmailStatus.FAILED, refused, None, now())
                continue
        await pace(throttle, outbound.from_address)
        async with uow_factory() as uow:
            if not await _still_ours(uow, outbound.email_id, attempt, retry, now()):
                log.info("email %s was taken over by another sender", outbound.email_id)
                continue

        async def accepted(reply: str, item: _Claimed = item) -> None:
            async with uow_factory() as uow:
                await _accept(uow, item, reply, now())

        try:
            await transport.deliver(outbound, accepted)
        except DeliveryError as exc:
            error = str(exc)
            async with uow_factory() as uow:
                row = await uow.session.get(EmailMessage, outbound.email_id)
                attempts = row.attempts if row is not None else retry.max_attempts
                first_try_at = row.created_at if row is not None else utcnow()
            # Mail servers answer: a mail transport's error is never unconfirmed.
            decided = after_failure(
                exc, retry.rule, attempts=attempts, first_try_at=first_try_at, now=now() or utcnow()
            )
            status, next_at = EmailStatus.FAILED, None
            if decided.stage is Stage.QUEUED:
                status, next_at = EmailStatus.QUEUED, decided.retry_at
            log.warning("email %s not delivered (%s): %s", outbound.email_id, status, error)
            async with uow_factory() as uow:
                await _record(uow, outbound.email_id, status, error, next_at, now())
    return len(claimed)
