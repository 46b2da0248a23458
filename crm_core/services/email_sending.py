"""Delivering the mail outbox: one round claims the due messages, checks each against the
producer's suppression, waits for its sending address's turn, hands it to the transport and
records the answer (:mod:`crm_core.services.email_outbound` writes the messages)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from crm_core import events
from crm_core.clock import SystemClock
from crm_core.db import UnitOfWork
from crm_core.email_ports import DeliveryError, MailTransport, OutboundEmail
from crm_core.models import (
    EmailAttachment,
    EmailMessage,
    EmailStatus,
    Interaction,
    OutboxChannel,
    OutboxEntry,
    OutboxStatus,
    Ticket,
)
from crm_core.outbox.claim import claim
from crm_core.outbox.rules import Stage, after_failure
from crm_core.outbox.steps import UNLIMITED, Suppression, Throttle, pace
from crm_core.ports import Clock
from crm_core.services.email_outbound import RetryPolicy, delivery_event, outbound_of

log = logging.getLogger(__name__)

SYSTEM_CLOCK = SystemClock()


async def claim_due(
    uow: UnitOfWork, retry: RetryPolicy, *, now: datetime, limit: int = 20
) -> list[OutboundEmail]:
    """Take up to ``limit`` messages due at ``now`` (the outbox's claim) and lease them; commits."""
    return [claimed.outbound for claimed in await _claim(uow, retry, limit, now)]


@dataclass(frozen=True, slots=True)
class _Claimed:
    """A claimed message, with what recording its acceptance needs (read at the claim, so that
    the acceptance is written without reading anything first)."""

    outbound: OutboundEmail
    outbox_id: int
    sender_key: str  # whose turn it takes on the throttle
    attempt: int  # the claim's attempt number, which names the claim
    interaction_id: int | None
    ticket_id: int | None
    agent_id: int | None  # whom its delivery event is for


async def _claim(uow: UnitOfWork, retry: RetryPolicy, limit: int, now: datetime) -> list[_Claimed]:
    """:func:`claim_due`, with each claim's attempt number and the facts of its acceptance."""
    session = uow.session
    ids = await claim(
        session,
        OutboxEntry,
        where=[
            OutboxEntry.channel == OutboxChannel.EMAIL,
            OutboxEntry.status.in_([OutboxStatus.QUEUED, OutboxStatus.CLAIMED]),
            OutboxEntry.next_attempt_at <= now,
        ],
        values={
            "status": OutboxStatus.CLAIMED,
            "attempts": OutboxEntry.attempts + 1,
            "claimed_at": now,
            "next_attempt_at": now + timedelta(seconds=retry.lease_seconds),
        },
        order_by=(OutboxEntry.next_attempt_at, OutboxEntry.id),
        limit=limit,
    )
    if not ids:
        await uow.commit()
        return []
    entries = {
        entry.id: entry
        for entry in await session.scalars(
            select(OutboxEntry).where(OutboxEntry.id.in_(ids)).execution_options(populate_existing=True)
        )
    }
    email_ids = [entries[id_].email_message_id for id_ in ids]
    await session.execute(
        update(EmailMessage)
        .where(EmailMessage.id.in_(email_ids))
        .values(status=EmailStatus.SENDING, attempts=EmailMessage.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    rows = {
        row.id: row
        for row in await session.scalars(
            select(EmailMessage)
            .where(EmailMessage.id.in_(email_ids))
            .execution_options(populate_existing=True)
        )
    }
    claimed: list[_Claimed] = []
    for id_ in ids:
        entry = entries[id_]
        assert entry.email_message_id is not None
        row = rows[entry.email_message_id]
        attachments = (
            await session.scalars(select(EmailAttachment).where(EmailAttachment.email_id == row.id))
        ).all()
        agent_id = row.author_id
        if agent_id is None and row.ticket_id is not None:
            agent_id = await session.scalar(select(Ticket.assignee_id).where(Ticket.id == row.ticket_id))
        claimed.append(
            _Claimed(
                outbound_of(row, attachments),
                entry.id,
                entry.sender_key,
                entry.attempts,
                row.interaction_id,
                row.ticket_id,
                agent_id,
            )
        )
    await uow.commit()
    return claimed


async def _accept(uow: UnitOfWork, claimed: _Claimed, reply: str, now: datetime) -> None:
    """Record that the server took the message: three UPDATEs (its outbox row, the message and
    its interaction) and the commit, nothing read first,
    so the time in which a crash sends it again is one commit long. Recorded whoever holds the
    claim now (another sender that took it over then finds it sent and leaves it)."""
    session = uow.session
    email_id = claimed.outbound.email_id
    done = await session.execute(
        update(OutboxEntry)
        .where(
            OutboxEntry.id == claimed.outbox_id,
            OutboxEntry.status.in_([OutboxStatus.CLAIMED, OutboxStatus.QUEUED]),
        )
        .values(status=OutboxStatus.SENT, last_error=None, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    if getattr(done, "rowcount", 0) != 1:
        await uow.rollback()
        return
    await session.execute(
        update(EmailMessage)
        .where(EmailMessage.id == email_id)
        .values(status=EmailStatus.SENT, last_error=None, delivered_at=now)
        .execution_options(synchronize_session=False)
    )
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
    uow: UnitOfWork, outbox_id: int, attempt: int, retry: RetryPolicy, now: datetime
) -> bool:
    """Renew the lease of a claimed message just before handing it over, if the claim is still
    this sender's: a round longer than the lease lets another instance claim what this one has
    not sent yet, and then only that instance sends it. Commits."""
    renewed = await uow.session.execute(
        update(OutboxEntry)
        .where(
            OutboxEntry.id == outbox_id,
            OutboxEntry.status == OutboxStatus.CLAIMED,
            OutboxEntry.attempts == attempt,
        )
        .values(next_attempt_at=now + timedelta(seconds=retry.lease_seconds))
        .execution_options(synchronize_session=False)
    )
    await uow.commit()
    return bool(getattr(renewed, "rowcount", 0) == 1)


async def _record(
    uow: UnitOfWork,
    outbox_id: int,
    status: EmailStatus,
    error: str | None,
    next_at: datetime | None,
    now: datetime,
    *,
    suppressed: bool = False,
) -> None:
    """The outcome of a claim on its outbox row, copied to the message and its interaction."""
    entry = await uow.session.get(OutboxEntry, outbox_id, with_for_update=True)
    if entry is None or entry.status not in (OutboxStatus.CLAIMED, OutboxStatus.QUEUED):
        return
    entry.status = _STAGES[status] if not suppressed else OutboxStatus.REFUSED
    entry.last_error = error
    entry.next_attempt_at = next_at
    row = await uow.session.get(EmailMessage, entry.email_message_id)
    assert row is not None
    row.status = status
    row.last_error = error
    if status is EmailStatus.SENT:
        row.delivered_at = now
    if row.interaction_id is not None:
        interaction = await uow.session.get(Interaction, row.interaction_id)
        if interaction is not None:
            interaction.status = str(status)
    uow.record(await delivery_event(uow.session, row))
    await uow.commit()


_STAGES = {
    EmailStatus.QUEUED: OutboxStatus.QUEUED,
    EmailStatus.SENT: OutboxStatus.SENT,
    EmailStatus.FAILED: OutboxStatus.FAILED,
}


async def _refusal(
    uow_factory: Callable[[], UnitOfWork], suppression: Suppression[EmailMessage], email_id: int
) -> str | None:
    async with uow_factory() as uow:
        row = await uow.session.get(EmailMessage, email_id)
        return await suppression.refusal(uow.session, row) if row is not None else None


async def _release(uow_factory: Callable[[], UnitOfWork], claims: Sequence[_Claimed], now: datetime) -> int:
    """Give back claims this sender never began to hand over: queued again and due at once, the
    attempt not counted. Only a claim still this sender's (its attempt number) is released."""
    released = 0
    async with uow_factory() as uow:
        for item in claims:
            done = await uow.session.execute(
                update(OutboxEntry)
                .where(
                    OutboxEntry.id == item.outbox_id,
                    OutboxEntry.status == OutboxStatus.CLAIMED,
                    OutboxEntry.attempts == item.attempt,
                )
                .values(
                    status=OutboxStatus.QUEUED,
                    attempts=OutboxEntry.attempts - 1,
                    claimed_at=None,
                    next_attempt_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if getattr(done, "rowcount", 0) != 1:
                continue
            released += 1
            await uow.session.execute(
                update(EmailMessage)
                .where(EmailMessage.id == item.outbound.email_id)
                .values(status=EmailStatus.QUEUED, attempts=EmailMessage.attempts - 1)
                .execution_options(synchronize_session=False)
            )
        await uow.commit()
    if released:
        log.info("%d claimed email(s) given back to the queue at shutdown", released)
    return released


async def deliver_due(
    uow_factory: Callable[[], UnitOfWork],
    transport: MailTransport,
    retry: RetryPolicy,
    *,
    limit: int = 20,
    suppression: Suppression[EmailMessage] | None = None,
    throttle: Throttle = UNLIMITED,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """One outbox round: claim, check the producer's ``suppression`` (none by default), wait for
    the sending address's turn (``throttle``), send, record. Returns how many messages were
    attempted.

    Cancelled (a shutdown), the round gives back at once what it claimed but never began to hand
    over, instead of leaving it to its lease; the message inside its SMTP session, which the
    server may have taken, keeps its lease and is never released blindly. Claims, leases, retries
    and deliveries are timed by ``clock`` (the runtime's)."""
    now = clock.now

    async with uow_factory() as uow:
        claimed = await _claim(uow, retry, limit, now())
    waiting = list(claimed)
    try:
        for item in claimed:
            await _deliver(uow_factory, transport, retry, item, waiting, suppression, throttle, now)
    except asyncio.CancelledError:
        await asyncio.shield(_release(uow_factory, waiting, now()))
        raise
    return len(claimed)


async def _deliver(
    uow_factory: Callable[[], UnitOfWork],
    transport: MailTransport,
    retry: RetryPolicy,
    item: _Claimed,
    waiting: list[_Claimed],
    suppression: Suppression[EmailMessage] | None,
    throttle: Throttle,
    now: Callable[[], datetime],
) -> None:
    """One claimed message, taken off ``waiting`` the moment its hand-over begins."""
    outbound, attempt = item.outbound, item.attempt
    if suppression is not None:
        refused = await _refusal(uow_factory, suppression, outbound.email_id)
        if refused is not None:
            waiting.remove(item)
            async with uow_factory() as uow:
                await _record(uow, item.outbox_id, EmailStatus.FAILED, refused, None, now(), suppressed=True)
            return
    await pace(throttle, item.sender_key)
    async with uow_factory() as uow:
        if not await _still_ours(uow, item.outbox_id, attempt, retry, now()):
            waiting.remove(item)
            log.info("email %s was taken over by another sender", outbound.email_id)
            return

    async def accepted(reply: str) -> None:
        async with uow_factory() as uow:
            await _accept(uow, item, reply, now())

    waiting.remove(item)
    try:
        await transport.deliver(outbound, accepted)
    except DeliveryError as exc:
        error = str(exc)
        async with uow_factory() as uow:
            entry = await uow.session.get(OutboxEntry, item.outbox_id)
            attempts = entry.attempts if entry is not None else retry.max_attempts
            first_try_at = entry.created_at if entry is not None else now()
        # Mail servers answer: a mail transport's error is never unconfirmed.
        decided = after_failure(exc, retry.rule, attempts=attempts, first_try_at=first_try_at, now=now())
        status, next_at = EmailStatus.FAILED, None
        if decided.stage is Stage.QUEUED:
            status, next_at = EmailStatus.QUEUED, decided.retry_at
        log.warning("email %s not delivered (%s): %s", outbound.email_id, status, error)
        async with uow_factory() as uow:
            await _record(uow, item.outbox_id, status, error, next_at, now())
