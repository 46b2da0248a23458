"""Outbound texts: queued in the outbox (with their segments and encoding) before anything is sent,
and moved forward by the gateway's answer and the delivery receipts that follow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core import events
from crm_core.contact_points import normalize_phone
from crm_core.db import UnitOfWork
from crm_core.errors import InvalidInput
from crm_core.models import Interaction, OutboxChannel, OutboxEntry, OutboxStatus, SmsMessage
from crm_core.outbox import claim as outbox_claim
from crm_core.outbox.rules import RetryRule
from crm_core.outbox.steps import Suppression
from crm_core.rules.sms_segments import count_segments
from crm_core.rules.sms_status import should_apply
from crm_core.services.interactions import log_interaction
from crm_core.services.sms_suppression import (
    REASON_CARRIER,
    UNSUBSCRIBED_RECIPIENT,
    SmsSuppressed,
    check_not_suppressed,
    suppress,
    suppression_of,
)
from crm_core.services.sms_types import SmsStatusUpdate
from crm_core.types import Channel, Direction

MAX_BODY = 1600  # Twilio's limit for one (concatenated) message
QUEUED = "queued"
UNCONFIRMED = "unconfirmed"
FAILED = "failed"
NOT_SENT_YET = "not sent yet, will try again: "
"""How a queued text's error message starts while it waits to be tried again."""
KIND_OPT_OUT_CONFIRMATION = "opt-out-confirmation"
"""The one text confirming an opt-out: the only text ever sent to a suppressed number."""


def status_event(row: SmsMessage) -> events.DomainEvent:
    """Delivery state for the agent who sent the text (their socket shows it live)."""
    return events.sms_status(
        {
            "agent_id": row.agent_id,
            "message_id": row.id,
            "message_sid": row.message_sid,
            "ticket_id": row.ticket_id,
            "customer_id": row.customer_id,
            "status": row.status,
            "error_code": row.error_code,
            "error_message": row.error_message,
        },
    )


async def queue_sms(
    uow: UnitOfWork,
    *,
    customer_id: int,
    to: str,
    from_: str,
    body: str,
    kind: str = "message",
    agent_id: int | None = None,
    ticket_id: int | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> SmsMessage:
    """Write the text (status "queued") and its outbox row, and log it as an outbound SMS
    interaction, in the caller's unit of work, at ``now`` (the producer's clock; the current time
    by default: a text's retries count their wait from it). ``idempotency_key`` is the outbox's: a second text
    under the same key fails the flush (``IntegrityError``).

    A suppressed number is refused here (:class:`SmsSuppressed`), before anything is stored,
    except for the confirmation of its opt-out.
    """
    session = uow.session
    if kind != KIND_OPT_OUT_CONFIRMATION:
        await check_not_suppressed(session, to)
    count = count_segments(body)
    row = SmsMessage(
        direction=Direction.OUTBOUND,
        kind=kind,
        customer_id=customer_id,
        ticket_id=ticket_id,
        agent_id=agent_id,
        from_number=from_,
        to_number=to,
        body=body,
        media=[],
        encoding=count.encoding.value,
        segments=count.segments,
        status=QUEUED,
        **({"created_at": now, "updated_at": now} if now is not None else {}),
    )
    session.add(row)
    await session.flush()
    session.add(
        OutboxEntry(
            channel=OutboxChannel.SMS,
            idempotency_key=outbox_key(idempotency_key, row.id),
            status=OutboxStatus.QUEUED,
            sender_key=from_,
            attempts=0,
            resends=0,
            sms_message_id=row.id,
            **({"created_at": now, "updated_at": now} if now is not None else {}),
        )
    )
    await session.flush()  # a key written twice at once fails here, inside the caller's savepoint
    logged = await log_interaction(
        uow,
        channel=Channel.SMS,
        direction=Direction.OUTBOUND,
        customer_id=customer_id,
        agent_id=agent_id,
        ticket_id=ticket_id,
        status=QUEUED,
        body=body,
        meta={
            "sms_message_id": row.id,
            "from": from_,
            "to": to,
            "encoding": count.encoding.value,
            "segments": count.segments,
            "kind": kind,
        },
        now=now,
    )
    row.interaction_id = logged.interaction.id
    return row


class IdempotencyKeyReused(InvalidInput):
    """An idempotency key used before for a different text (another body, recipient, ticket or
    customer): refused rather than answered with the earlier text."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"the idempotency key {key!r} was used before for a different text; use a new key for a new text",
            "Idempotency-Key",
        )


def outbox_key(idempotency_key: str | None, message_id: int) -> str:
    """A text's key in the outbox (unique across channels): its producer's key, else its id."""
    return f"sms:{idempotency_key}" if idempotency_key else f"sms:#{message_id}"


def agent_key(agent_id: int | None, idempotency_key: str | None) -> str | None:
    """The outbox's idempotency key for an agent's own key (each agent's keys are their own)."""
    return f"{agent_id}:{idempotency_key}" if idempotency_key else None


@dataclass(frozen=True, slots=True)
class AgentText:
    """What an agent asked to send, to tell a repeat from a different text under the same key."""

    customer_id: int
    ticket_id: int | None
    """The ticket texted from (None: texted from the customer)."""
    text: str
    to: str | None

    def repeats(self, row: SmsMessage, region: str) -> bool:
        if row.body != self.text or row.customer_id != self.customer_id:
            return False
        if self.ticket_id is not None and row.ticket_id != self.ticket_id:
            return False
        return self.to is None or normalize_phone(self.to, region, "to") == row.to_number


async def earlier_text(session: AsyncSession, key: str, request: AgentText, region: str) -> SmsMessage | None:
    """The text sent earlier under ``key`` (an :func:`agent_key`); :class:`IdempotencyKeyReused`
    when it was another."""
    existing: SmsMessage | None = await session.scalar(
        select(SmsMessage)
        .join(OutboxEntry, OutboxEntry.sms_message_id == SmsMessage.id)
        .where(OutboxEntry.idempotency_key == outbox_key(key, 0))
    )
    if existing is not None and not request.repeats(existing, region):
        raise IdempotencyKeyReused(key.split(":", 1)[1])
    return existing


async def _locked(session: AsyncSession, message_id: int) -> SmsMessage | None:
    found: SmsMessage | None = await session.scalar(
        select(SmsMessage).where(SmsMessage.id == message_id).with_for_update()
    )
    return found


FINAL = (OutboxStatus.SENT, OutboxStatus.FAILED, OutboxStatus.REFUSED)


async def entry_of(session: AsyncSession, message_id: int) -> OutboxEntry | None:
    """The outbox row delivering text ``message_id``, locked."""
    found: OutboxEntry | None = await session.scalar(
        select(OutboxEntry).where(OutboxEntry.sms_message_id == message_id).with_for_update()
    )
    return found


async def _settle_entry(
    session: AsyncSession, message_id: int, status: OutboxStatus, error: str | None = None
) -> None:
    """Move a text's outbox row to a final ``status`` (handed over, refused or failed)."""
    entry = await entry_of(session, message_id)
    if entry is not None and entry.status not in FINAL:
        entry.status = status
        entry.last_error = error[:500] if error is not None else None
        entry.next_attempt_at = None


async def _remember_sid(session: AsyncSession, row: SmsMessage, sid: str) -> bool:
    """The gateway named the text ``sid``: it was handed over, whatever its outbox row said."""
    if row.message_sid is not None:
        return False
    row.message_sid = sid
    await _settle_entry(session, row.id, OutboxStatus.SENT)
    if row.interaction_id is not None:
        interaction = await session.get(Interaction, row.interaction_id)
        if interaction is not None and interaction.external_id is None:
            interaction.external_id = sid
    return True


async def _move(
    session: AsyncSession, row: SmsMessage, status: str, error_code: int | None, error: str | None
) -> bool:
    if not should_apply(row.status, status):
        return False
    row.status = status
    if error_code is not None:
        row.error_code = error_code
    if error is not None:
        row.error_message = error[:500]
    if row.interaction_id is not None:
        interaction = await session.get(Interaction, row.interaction_id)
        if interaction is not None:
            interaction.status = status
            if error_code is not None:
                interaction.meta = {**interaction.meta, "error_code": error_code}
    return True


async def _carrier_refused(uow: UnitOfWork, row: SmsMessage, code: int | None) -> None:
    if code == UNSUBSCRIBED_RECIPIENT:
        await suppress(
            uow, row.to_number, reason=REASON_CARRIER, customer_id=row.customer_id, error_code=code
        )


class SmsOptOuts:
    """The texts' suppression check: a number that opted out receives nothing but the confirmation
    of its opt-out (which goes out only while it stays opted out)."""

    async def refusal(self, session: AsyncSession, row: SmsMessage) -> str | None:
        found = await suppression_of(session, row.to_number)
        if row.kind == KIND_OPT_OUT_CONFIRMATION:
            return (
                None
                if found is not None
                else f"{row.to_number} opted back in before the confirmation went out"
            )
        if found is not None:
            return str(SmsSuppressed(row.to_number, found.reason, found.keyword))
        return None


OPT_OUTS = SmsOptOuts()


@dataclass(frozen=True, slots=True)
class ClaimedText:
    """A text one sender claimed, and whose turn it takes on the throttle."""

    row: SmsMessage
    sender_key: str


async def claim(
    uow: UnitOfWork,
    message_id: int,
    *,
    now: datetime,
    suppression: Suppression[SmsMessage] = OPT_OUTS,
) -> ClaimedText | None:
    """Take a queued text for sending; None when another sender took it (or it is not queued).

    The outbox's claim of its row (claimed at ``now``): whichever instance wins sends it, and
    only once. A number suppressed since the text was queued fails it here (its outbox row
    refused), before the network.
    """
    session = uow.session
    taken = await outbox_claim.claim(
        session,
        OutboxEntry,
        where=[
            OutboxEntry.sms_message_id == message_id,
            OutboxEntry.status == OutboxStatus.QUEUED,
            OutboxEntry.claimed_at.is_(None),
        ],
        values={
            "status": OutboxStatus.CLAIMED,
            "claimed_at": now,
            "attempts": OutboxEntry.attempts + 1,
        },
    )
    if not taken:
        return None
    row = await _locked(session, message_id)
    entry = await entry_of(session, message_id)
    assert row is not None and entry is not None
    await session.refresh(row)
    refused = await suppression.refusal(session, row)
    if refused is not None:
        await _move(session, row, "failed", None, refused)
        await _settle_entry(session, message_id, OutboxStatus.REFUSED, refused)
        uow.record(status_event(row))
        return None
    return ClaimedText(row, entry.sender_key)


async def release_claim(uow: UnitOfWork, message_id: int, claimed_at: datetime | None) -> bool:
    """Give back a claim whose hand-over never began (its sender is stopping): queued and
    claimable at once. Only the claim made at ``claimed_at`` is released. True when it was."""
    released = await uow.session.execute(
        update(OutboxEntry)
        .where(
            OutboxEntry.sms_message_id == message_id,
            OutboxEntry.status == OutboxStatus.CLAIMED,
            OutboxEntry.claimed_at == claimed_at,
        )
        .values(status=OutboxStatus.QUEUED, claimed_at=None, attempts=OutboxEntry.attempts - 1)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(released, "rowcount", 0) == 1)


async def record_handed_over(uow: UnitOfWork, message_id: int, sid: str, now: datetime) -> SmsMessage | None:
    """The gateway accepted the text and named it ``sid`` (sent at ``now``)."""
    row = await _locked(uow.session, message_id)
    if row is None:
        return None
    changed = await _remember_sid(uow.session, row, sid)
    row.sent_at = row.sent_at or now
    if changed and row.status == QUEUED:
        row.error_message = None  # an earlier attempt's "not sent yet" no longer holds
    if changed:
        uow.record(status_event(row))
    return row


async def record_refused(uow: UnitOfWork, message_id: int, code: int | None, error: str) -> SmsMessage | None:
    """The gateway refused the text (Twilio's 21610 also suppresses the number)."""
    row = await _locked(uow.session, message_id)
    if row is None:
        return None
    if await _move(uow.session, row, "failed", code, error):
        uow.record(status_event(row))
    await _settle_entry(uow.session, message_id, OutboxStatus.FAILED, error)
    await _carrier_refused(uow, row, code)
    return row


async def record_unconfirmed(
    uow: UnitOfWork, message_id: int, error: str, now: datetime
) -> SmsMessage | None:
    """No answer from the gateway: the text may have left, so it is not sent again. Unconfirmed
    at ``now``, from which reconciliation counts its wait before asking."""
    row = await _locked(uow.session, message_id)
    if row is None:
        return None
    if row.status == QUEUED and row.message_sid is None:
        row.status = UNCONFIRMED
        row.error_message = error[:500]
        entry = await entry_of(uow.session, message_id)
        if entry is not None:
            entry.status = OutboxStatus.UNCONFIRMED
            entry.last_error = row.error_message
            entry.updated_at = now
        uow.record(status_event(row))
    return row


@dataclass(frozen=True, slots=True)
class SendRetry:
    """When a text that certainly did not reach the gateway (no connection, or rate limited) is
    tried again: after waiting as long as it has waited so far (so the waits double), at least
    ``first_seconds`` and at most ``max_seconds``; after ``give_up_seconds`` it fails. The
    outbox's :class:`~crm_core.outbox.rules.RetryRule`, counted in time (texts keep no count of
    their attempts)."""

    first_seconds: float = 10.0
    max_seconds: float = 600.0
    give_up_seconds: float = 24 * 3600.0

    @property
    def rule(self) -> RetryRule:
        return RetryRule(
            first_seconds=self.first_seconds,
            max_seconds=self.max_seconds,
            give_up_seconds=self.give_up_seconds,
            grows_with_wait=True,
        )

    def due_at(self, queued_at: datetime, last_try_at: datetime) -> datetime:
        return last_try_at + self.rule.wait(1, last_try_at - queued_at)


async def retry_later(
    uow: UnitOfWork, message_id: int, error: str, retry: SendRetry, now: datetime
) -> SmsMessage | None:
    """The gateway cannot have acted (no connection, or rate limited): the text goes back to the
    queue with the reason, and the sweep tries it again once :meth:`SendRetry.due_at`. One that
    could not be sent for ``give_up_seconds`` fails, saying why."""
    row = await _locked(uow.session, message_id)
    if row is None or row.status != QUEUED or row.message_sid is not None:
        return row
    waited = now - row.created_at
    entry = await entry_of(uow.session, message_id)
    if retry.rule.gives_up(attempts=1, first_try_at=row.created_at, now=now):
        failed = f"not sent after {_hours(waited)}: {error}"
        await _move(uow.session, row, "failed", None, failed)
        await _settle_entry(uow.session, message_id, OutboxStatus.FAILED, failed)
    else:
        row.error_message = f"{NOT_SENT_YET}{error}"[:500]
        if entry is not None:
            entry.status = OutboxStatus.QUEUED
            entry.claimed_at = None
            entry.last_error = error[:500]
            entry.next_attempt_at = retry.due_at(row.created_at, now)
    uow.record(status_event(row))
    return row


def _hours(waited: timedelta) -> str:
    return f"{waited.total_seconds() / 3600:.1f} hours"


async def waiting_ids(session: AsyncSession, limit: int, now: datetime) -> list[int]:
    """Queued texts nobody has taken, oldest first, that are due (the sweep sends them): new ones
    at once, those that could not be sent before once their wait is over (``next_attempt_at``,
    set by :func:`retry_later` from its :class:`SendRetry`)."""
    due = await session.scalars(
        select(OutboxEntry.sms_message_id)
        .where(
            OutboxEntry.channel == OutboxChannel.SMS,
            OutboxEntry.status == OutboxStatus.QUEUED,
            OutboxEntry.claimed_at.is_(None),
            or_(OutboxEntry.next_attempt_at.is_(None), OutboxEntry.next_attempt_at <= now),
        )
        .order_by(OutboxEntry.sms_message_id)
        .limit(limit)
    )
    return [id_ for id_ in due if id_ is not None]


async def apply_status(uow: UnitOfWork, update_: SmsStatusUpdate) -> SmsMessage | None:
    """A delivery receipt: moves the text forward only; a repeated or late one changes nothing."""
    session = uow.session
    row = await _locked(session, update_.outbox_id) if update_.outbox_id is not None else None
    if row is not None and row.message_sid not in (None, update_.message_sid):
        row = None
    if row is None:
        row = await session.scalar(
            select(SmsMessage).where(SmsMessage.message_sid == update_.message_sid).with_for_update()
        )
    if row is None or row.direction is not Direction.OUTBOUND:
        return None
    changed = await _remember_sid(session, row, update_.message_sid)
    error = f"Twilio error {update_.error_code}" if update_.error_code is not None else None
    changed = await _move(session, row, update_.status, update_.error_code, error) or changed
    if changed:
        uow.record(status_event(row))
    await _carrier_refused(uow, row, update_.error_code)
    return row
