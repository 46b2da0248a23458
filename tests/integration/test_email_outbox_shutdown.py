"""An outbox round stopped by a shutdown gives back at once the mail it claimed but had not begun
to hand over (another sender sends it now, not when the lease ends); the message inside its SMTP
session, which the server may have taken, keeps its lease."""

from __future__ import annotations

import asyncio
from pathlib import Path

from channels.email.content_store import ContentStore
from crm_core.db import UnitOfWorkFactory
from crm_core.email_ports import Accepted, OutboundEmail
from crm_core.models import EmailStatus
from crm_core.services.email_sending import deliver_due
from tests.support.email_outbox import FAST, email, new_ticket_with_ack
from tests.support.waiting import until


class Server:
    """Records the hand-overs; with ``stall`` the first one hangs after DATA, before the 250."""

    def __init__(self, *, stall: bool = False) -> None:
        self.handed: list[int] = []
        self.stalled = asyncio.Event()
        self._stall = stall

    async def deliver(self, email: OutboundEmail, accepted: Accepted) -> str:
        self.handed.append(email.email_id)
        if self._stall:
            self.stalled.set()
            await asyncio.Event().wait()
        await accepted("250 OK")
        return "250 OK"


async def test_a_stopped_round_gives_back_what_it_had_not_begun_to_hand_over(
    uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path)
    ids = [await new_ticket_with_ack(uow_factory, store, f"stop-{n}@example.org") for n in range(3)]
    slow = Server(stall=True)
    round_ = asyncio.create_task(deliver_due(uow_factory, slow, FAST))
    await until(slow.stalled.is_set, 10, "the first message is inside its hand-over")
    round_.cancel()
    await asyncio.gather(round_, return_exceptions=True)

    in_flight, *never_begun = slow.handed + [i for i in ids if i not in slow.handed]
    assert slow.handed == [in_flight]
    assert (await email(uow_factory, in_flight)).status == EmailStatus.SENDING
    for email_id in never_begun:
        row = await email(uow_factory, email_id)
        assert (row.status, row.attempts) == (EmailStatus.QUEUED, 0), (email_id, row.status, row.attempts)

    # Another sender (another instance) sends them at once; the one in flight waits for its lease.
    other = Server()
    assert await deliver_due(uow_factory, other, FAST) == len(never_begun)
    assert sorted(other.handed) == sorted(never_begun)
    for email_id in never_begun:
        assert (await email(uow_factory, email_id)).status == EmailStatus.SENT
    assert (await email(uow_factory, in_flight)).status == EmailStatus.SENDING
