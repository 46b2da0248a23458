"""Two outbox senders (two instances) and a claim whose lease ran out: a message is handed over
by the sender that holds it, never also by the one that lost it."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from channels.email.content_store import ContentStore
from channels.email.parsing import parse_message
from crm_core.db import UnitOfWorkFactory
from crm_core.email_ports import Accepted, OutboundEmail
from crm_core.models import EmailMessage, EmailStatus, OutboxEntry, OutboxStatus, utcnow
from crm_core.services.email_batch import ingest
from crm_core.services.email_ingest import EmailPolicy, MailboxPolicy
from crm_core.services.email_outbound import RetryPolicy
from crm_core.services.email_sending import deliver_due
from crm_core.services.tickets import SlaPolicy
from tests.email_servers import make_mail
from tests.support.waiting import until

POLICY = EmailPolicy(
    secret=b"lease-test-secret",
    domain="example.com",
    our_addresses=frozenset({"support@example.com"}),
    sla=SlaPolicy(),
)
SUPPORT = MailboxPolicy(name="support", address="support@example.com")
SHORT_LEASE = RetryPolicy(lease_seconds=0.5)


class Server:
    """Where both senders hand their mail: records every hand-over by Message-ID."""

    def __init__(self) -> None:
        self.handed: list[str] = []


class Sender:
    """A sender's transport; ``stall`` makes its first hand-over wait until released (a slow
    server) after the server took the message, before its answer reaches the sender."""

    def __init__(self, server: Server, *, stall: bool = False) -> None:
        self.server = server
        self.stalled = asyncio.Event()
        self.release = asyncio.Event()
        self._stall = stall

    async def deliver(self, email: OutboundEmail, accepted: Accepted) -> str:
        self.server.handed.append(email.message_id)
        if self._stall:
            self._stall = False
            self.stalled.set()
            await self.release.wait()
        await accepted("250 OK")
        return "250 OK"


async def lease_end(uow_factory: UnitOfWorkFactory) -> datetime:
    async with uow_factory() as uow:
        ends = await uow.session.scalars(
            select(OutboxEntry.next_attempt_at).where(OutboxEntry.status == OutboxStatus.CLAIMED)
        )
        latest = max(e for e in ends if e is not None)
    return latest if latest.tzinfo else latest.replace(tzinfo=UTC)


async def test_a_sender_whose_lease_ran_out_hands_over_nothing_the_other_took(
    uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path)
    async with uow_factory() as uow:
        for n in range(3):
            mail = parse_message(
                make_mail(sender=f"c{n}@example.org", message_id=f"lease-{n}@example.org"),
                store,
                max_attachment_bytes=10_000,
            )
            assert (await ingest(uow, SUPPORT, POLICY, mail)).acknowledgment_id is not None
        await uow.commit()
    server = Server()
    slow, other = Sender(server, stall=True), Sender(server)
    first = asyncio.create_task(deliver_due(uow_factory, slow, SHORT_LEASE))
    try:
        await asyncio.wait_for(slow.stalled.wait(), 10)  # the first hand-over stalls
        end = await lease_end(uow_factory)
        await until(lambda: utcnow() > end, 10, "the lease runs out")
        # The other instance takes the three messages over and sends them.
        assert await deliver_due(uow_factory, other, SHORT_LEASE) == 3
    finally:
        slow.release.set()
        await first
    handed = Counter(server.handed)
    async with uow_factory() as uow:
        rows = list(
            await uow.session.scalars(select(EmailMessage).where(EmailMessage.direction == "outbound"))
        )
    assert all(row.status is EmailStatus.SENT for row in rows)
    # The stalled message was with the server when the lease ran out: it may come twice (same
    # Message-ID). The two the slow sender had not started are sent once, by the other sender.
    stalled = server.handed[0]
    assert handed[stalled] <= 2
    assert {mid: n for mid, n in handed.items() if mid != stalled} == {
        str(row.message_id): 1 for row in rows if row.message_id != stalled
    }
