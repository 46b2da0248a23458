"""Settling texts whose hand-over is unknown ("unconfirmed"): by asking the gateway what it holds,
and by turning claims their sender never answered into unconfirmed texts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import UnitOfWork
from crm_core.models import Interaction, OutboxChannel, OutboxEntry, OutboxStatus, SmsMessage
from crm_core.services.sms_outbound import (
    FAILED,
    QUEUED,
    UNCONFIRMED,
    _carrier_refused,
    _locked,
    _move,
    _remember_sid,
    entry_of,
    status_event,
)
from crm_core.services.sms_types import SmsStatusUpdate


@dataclass(frozen=True, slots=True)
class Reconcile:
    """How unconfirmed texts are settled by asking the gateway what it has."""

    settle_after_seconds: float = 30.0
    """Asked about once unconfirmed this long (its receipt may still come on its own)."""
    absent_after_seconds: float = 600.0
    """Not found this long after it was handed over: it never reached the gateway (whose lists
    may lag by a little), so it is sent again."""
    stale_claim_seconds: float = 300.0
    """A text claimed this long ago and never answered (its sender stopped mid-send) may have
    left: it becomes unconfirmed."""
    max_resends: int = 1
    """How many times a text Twilio has no record of is sent again; after that it fails."""


async def unconfirm_stale_claims(uow: UnitOfWork, policy: Reconcile, now: datetime) -> list[int]:
    """Texts whose sender stopped between claiming and recording the gateway's answer (a crash):
    they may have left, so they are unconfirmed (and reconciled), never lost in "queued"."""
    cutoff = now - timedelta(seconds=policy.stale_claim_seconds)
    candidates = list(
        await uow.session.scalars(
            select(OutboxEntry.sms_message_id)
            .where(
                OutboxEntry.channel == OutboxChannel.SMS,
                OutboxEntry.status == OutboxStatus.CLAIMED,
                OutboxEntry.claimed_at <= cutoff,
            )
            .order_by(OutboxEntry.id)
            .limit(100)
        )
    )
    stopped = "the sender stopped while handing it over; asking Twilio whether it left"
    settled: list[int] = []
    for message_id in candidates:
        # Locked text first, then its outbox row, as every other writer does; checked again.
        assert message_id is not None
        row = await _locked(uow.session, message_id)
        entry = await entry_of(uow.session, message_id)
        if entry is None or entry.status != OutboxStatus.CLAIMED or entry.claimed_at is None:
            continue
        if entry.claimed_at > cutoff:
            continue
        entry.status = OutboxStatus.UNCONFIRMED
        entry.last_error = stopped
        entry.updated_at = now  # asked about once unconfirmed long enough, on the same clock
        if row is not None and row.status == QUEUED and row.message_sid is None:
            row.status = UNCONFIRMED
            row.error_message = stopped
            uow.record(status_event(row))
        settled.append(message_id)
    return settled


async def unconfirmed_to_settle(
    session: AsyncSession, policy: Reconcile, now: datetime, limit: int = 50
) -> list[tuple[SmsMessage, OutboxEntry]]:
    """Unconfirmed texts (with their outbox rows) old enough to ask the gateway about, oldest
    first."""
    cutoff = now - timedelta(seconds=policy.settle_after_seconds)
    rows = await session.execute(
        select(SmsMessage, OutboxEntry)
        .join(OutboxEntry, OutboxEntry.sms_message_id == SmsMessage.id)
        .where(
            OutboxEntry.channel == OutboxChannel.SMS,
            OutboxEntry.status == OutboxStatus.UNCONFIRMED,
            OutboxEntry.updated_at <= cutoff,
            SmsMessage.message_sid.is_(None),
        )
        .order_by(SmsMessage.id)
        .limit(limit)
    )
    return [(row, entry) for row, entry in rows.tuples()]


async def settle_found(
    uow: UnitOfWork, message_id: int, candidates: Sequence[SmsStatusUpdate], now: datetime
) -> SmsMessage | None:
    """The gateway has texts like this one: the first not already another row's is this one
    (found at ``now``). Returns the row when it was settled."""
    row = await _locked(uow.session, message_id)
    if row is None or row.status != UNCONFIRMED or row.message_sid is not None:
        return None
    sids = [c.message_sid for c in candidates]
    taken = set(
        await uow.session.scalars(select(SmsMessage.message_sid).where(SmsMessage.message_sid.in_(sids)))
    )
    found = next((c for c in candidates if c.message_sid not in taken), None)
    if found is None:
        return None
    await _remember_sid(uow.session, row, found.message_sid)
    row.sent_at = row.sent_at or now
    row.error_message = None
    row.status = QUEUED  # handed over after all; its status moves on from there
    error = f"Twilio error {found.error_code}" if found.error_code is not None else None
    await _move(uow.session, row, found.status, found.error_code, error)
    uow.record(status_event(row))
    await _carrier_refused(uow, row, found.error_code)
    return row


async def settle_absent(uow: UnitOfWork, message_id: int, policy: Reconcile, now: datetime) -> bool:
    """The gateway has no such text long after it was handed over: it never arrived, so it goes
    back to the queue to be sent once more (counted in ``resends``); one already sent again
    ``max_resends`` times fails instead, saying why, and is never sent a third time. True when
    it was settled either way."""
    row = await _locked(uow.session, message_id)
    entry = await entry_of(uow.session, message_id)
    if row is None or row.status != UNCONFIRMED or row.message_sid is not None:
        return False
    if entry is None or entry.status != OutboxStatus.UNCONFIRMED or entry.claimed_at is None:
        return False
    if now - entry.claimed_at < timedelta(seconds=policy.absent_after_seconds):
        return False
    if entry.resends >= policy.max_resends:
        row.status = FAILED
        row.error_message = (
            f"Twilio has no record of it after it was sent {entry.resends + 1} times without an answer; "
            "not sent again"
        )
        entry.status = OutboxStatus.FAILED
    else:
        row.status = QUEUED
        row.error_message = "Twilio has no record of it; sending it again"
        entry.status = OutboxStatus.QUEUED
        entry.claimed_at = None
        entry.next_attempt_at = None
        entry.resends += 1
    entry.last_error = row.error_message
    if row.interaction_id is not None:
        interaction = await uow.session.get(Interaction, row.interaction_id)
        if interaction is not None:
            interaction.status = row.status
    uow.record(status_event(row))
    return True
