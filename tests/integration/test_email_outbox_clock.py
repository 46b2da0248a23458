"""The mail outbox and the acknowledgments on simulated time: a claim's lease and the
acknowledgments' hourly limit are measured on the clock they are given, not the wall clock."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from channels.email.content_store import ContentStore
from channels.email.parsing import parse_message
from crm_core.clock import FakeClock
from crm_core.db import UnitOfWorkFactory
from crm_core.email_ports import Accepted, OutboundEmail
from crm_core.models import EmailKind, EmailMessage, OutboxEntry, OutboxStatus
from crm_core.services.email_batch import ingest
from crm_core.services.email_ingest import EmailPolicy, Ingested, MailboxPolicy
from crm_core.services.email_outbound import RetryPolicy
from crm_core.services.email_sending import deliver_due
from crm_core.services.tickets import SlaPolicy
from tests.email_servers import make_mail

POLICY = EmailPolicy(
    secret=b"clock-test-secret",
    domain="example.com",
    our_addresses=frozenset({"support@example.com"}),
    sla=SlaPolicy(),
    acks_per_hour=2,
)
SUPPORT = MailboxPolicy(name="support", address="support@example.com")
LEASE = RetryPolicy(lease_seconds=300)


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def receive(
    uow_factory: UnitOfWorkFactory, store: ContentStore, clock: FakeClock, sender: str, n: int
) -> Ingested:
    """A new message from ``sender`` (opening a ticket), taken in at the clock's time."""
    mail = parse_message(
        make_mail(sender=sender, message_id=f"clock-{n}@example.org", subject=f"Question {n}"),
        store,
        max_attachment_bytes=10_000,
    )
    async with uow_factory() as uow:
        result = await ingest(uow, SUPPORT, POLICY, mail, clock.now())
        await uow.commit()
    return result


class Transport:
    """A mail server: records what it was handed; ``stall`` holds the first hand-over forever
    (a sender stuck mid-send, as in a crash)."""

    def __init__(self, *, stall: bool = False) -> None:
        self.handed: list[str] = []
        self.stalled = asyncio.Event()
        self._stall = stall

    async def deliver(self, email: OutboundEmail, accepted: Accepted) -> str:
        self.handed.append(email.message_id)
        if self._stall:
            self.stalled.set()
            await asyncio.Event().wait()
        await accepted("250 OK")
        return "250 OK"


async def test_a_mail_lease_runs_out_on_the_simulated_clock_and_another_sender_takes_it(
    uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> None:
    clock = FakeClock()
    store = ContentStore(tmp_path)
    assert (await receive(uow_factory, store, clock, "lease@example.org", 1)).acknowledgment_id is not None
    stuck, other = Transport(stall=True), Transport()
    first = asyncio.create_task(deliver_due(uow_factory, stuck, LEASE, clock=clock))
    try:
        await asyncio.wait_for(stuck.stalled.wait(), 10)
        async with uow_factory() as uow:
            entry = await uow.session.scalar(
                select(OutboxEntry).where(OutboxEntry.status == OutboxStatus.CLAIMED)
            )
            assert entry is not None
            assert entry.claimed_at is not None and aware(entry.claimed_at) == clock.now()
            assert entry.next_attempt_at is not None
            assert aware(entry.next_attempt_at) == clock.now() + timedelta(seconds=300)
        # The lease holds for its 300 simulated seconds, however long the wall clock runs.
        clock.advance(299)
        assert await deliver_due(uow_factory, other, LEASE, clock=clock) == 0
        clock.advance(1)
        assert await deliver_due(uow_factory, other, LEASE, clock=clock) == 1
    finally:
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
    assert other.handed == stuck.handed
    async with uow_factory() as uow:
        entry = await uow.session.scalar(select(OutboxEntry))
        assert entry is not None and entry.status == OutboxStatus.SENT and entry.attempts == 2
        ack = await uow.session.scalar(
            select(EmailMessage).where(EmailMessage.kind == EmailKind.ACKNOWLEDGMENT)
        )
        assert ack is not None and ack.delivered_at is not None
        assert aware(ack.delivered_at) == clock.now()


async def test_the_hourly_acknowledgment_limit_counts_the_hour_before_the_clocks_time(
    uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> None:
    clock = FakeClock()
    store = ContentStore(tmp_path)
    sender = "busy@example.org"
    first = await receive(uow_factory, store, clock, sender, 1)
    clock.advance(20 * 60)
    second = await receive(uow_factory, store, clock, sender, 2)
    clock.advance(20 * 60)
    third = await receive(uow_factory, store, clock, sender, 3)  # two in the last hour: none
    assert first.acknowledgment_id is not None and second.acknowledgment_id is not None
    assert third.acknowledgment_id is None
    # Just over an hour after the first, only the second is in the window: acknowledged again.
    clock.advance(20 * 60 + 1)
    fourth = await receive(uow_factory, store, clock, sender, 4)
    assert fourth.acknowledgment_id is not None
    clock.advance(1)
    assert (await receive(uow_factory, store, clock, sender, 5)).acknowledgment_id is None
    async with uow_factory() as uow:
        written = list(
            await uow.session.scalars(
                select(EmailMessage.created_at)
                .where(EmailMessage.kind == EmailKind.ACKNOWLEDGMENT)
                .order_by(EmailMessage.id)
            )
        )
    start = FakeClock().now()
    assert [aware(at) for at in written] == [
        start,
        start + timedelta(minutes=20),
        start + timedelta(minutes=60, seconds=1),
    ]
