"""A customer writing back restarts the SLA clock whichever way they write: a mail reply (through
the single-message and the batch ingest paths alike) or a chat message on a chat with a ticket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select

from channels.email.content_store import ContentStore
from channels.email.parsing import parse_message
from crm_core.db import UnitOfWorkFactory
from crm_core.email_ports import InboundEmail
from crm_core.models import ChatSender, Role, SlaPolicyRecord, Ticket, TicketSla
from crm_core.rules.ticket_status import TicketStatus
from crm_core.services import chat
from crm_core.services.email_batch import ingest_batch
from crm_core.services.email_ingest import EmailPolicy, Ingested, MailboxPolicy, Outcome, ingest_one
from crm_core.services.tickets import SlaPolicy, comment, update_ticket
from crm_core.visibility import Viewer
from tests.conftest import Staff
from tests.email_servers import make_mail

pytestmark = pytest.mark.asyncio(loop_scope="session")
T0 = datetime(2026, 1, 12, 14, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
MAILBOX = MailboxPolicy(name="support", address="support@example.com")
POLICY = EmailPolicy(
    secret=b"sla-replies",
    domain="example.com",
    our_addresses=frozenset({"support@example.com"}),
    sla=SlaPolicy(),
)


async def _policy(uow_factory: UnitOfWorkFactory) -> None:
    """Always open: first response in 30 minutes, next response in 15."""
    async with uow_factory() as uow:
        uow.session.add(
            SlaPolicyRecord(
                name="Replies", first_response_minutes=30, next_response_minutes=15, resolution_minutes=480
            )
        )
        await uow.commit()


async def _clock(uow_factory: UnitOfWorkFactory, ticket_id: int) -> tuple[Ticket, TicketSla]:
    async with uow_factory() as uow:
        ticket = await uow.session.get_one(Ticket, ticket_id)
        sla = await uow.session.get_one(TicketSla, ticket_id)
        return ticket, sla


async def _answer(
    uow_factory: UnitOfWorkFactory, agent: Viewer, ticket_id: int, at: datetime, status: TicketStatus
) -> None:
    async with uow_factory() as uow:
        await comment(uow, agent, ticket_id, "Which model? / 哪个型号?", internal=False, now=at)
        await update_ticket(uow, agent, ticket_id, {"status": status}, sla=SlaPolicy(), now=at)
        await uow.commit()


async def _mail_scenario(
    uow_factory: UnitOfWorkFactory, agent: Viewer, store: ContentStore, path: str
) -> list[tuple[Outcome, TicketStatus, datetime | None, datetime | None]]:
    """A ticket opened by mail, answered and set pending; the customer's reply (through ``path``)
    reopens it; answered again, the customer's next mail asks for the next response."""
    sender = f"{path}@example.org"

    async def receive(message_id: str, at: datetime, parent: str | None = None) -> Ingested:
        raw = make_mail(sender=sender, subject="路由器 down", message_id=message_id, in_reply_to=parent)
        mail = parse_message(raw, store, max_attachment_bytes=10**6)
        async with uow_factory() as uow:
            if path == "single":
                result = await ingest_one(uow, MAILBOX, POLICY, mail, at)
            else:
                (result,) = await ingest_batch(uow, MAILBOX, POLICY, [mail], at)
            await uow.commit()
        return result

    opened = await receive(f"first-{path}@example.org", T0)
    assert opened.outcome is Outcome.NEW_TICKET and opened.ticket_id is not None
    ticket_id = opened.ticket_id
    await _answer(uow_factory, agent, ticket_id, T0 + 5 * MINUTE, TicketStatus.PENDING)
    seen = []
    for n, (at, answered_as) in enumerate([(T0 + 60 * MINUTE, TicketStatus.OPEN), (T0 + 90 * MINUTE, None)]):
        reply = await receive(f"reply-{n}-{path}@example.org", at, f"first-{path}@example.org")
        assert reply.ticket_id == ticket_id
        ticket, sla = await _clock(uow_factory, ticket_id)
        seen.append((reply.outcome, ticket.status, sla.paused_since, sla.next_response_due_at))
        if answered_as is not None:
            await _answer(uow_factory, agent, ticket_id, at + 10 * MINUTE, answered_as)
    return seen


async def test_a_mail_reply_resumes_a_pending_clock_and_asks_for_the_next_response_on_both_paths(
    uow_factory: UnitOfWorkFactory, staff: Staff, tmp_path: Path
) -> None:
    await _policy(uow_factory)
    agent = Viewer(agent_id=staff.admin.id, role=Role.ADMIN)
    store = ContentStore(tmp_path)
    single = await _mail_scenario(uow_factory, agent, store, "single")
    batch = await _mail_scenario(uow_factory, agent, store, "batch")
    expected = [
        # Pending, then the reply at +60: open again, the clock runs, an answer is due in 15 minutes.
        (Outcome.REOPENED, TicketStatus.OPEN, None, T0 + 75 * MINUTE),
        # Answered at +70 (the clock stopped), the customer writes at +90 on the open ticket.
        (Outcome.THREADED, TicketStatus.OPEN, None, T0 + 105 * MINUTE),
    ]
    assert single == expected
    assert batch == single  # both paths decide, and act, the same


async def test_an_auto_reply_on_a_pending_ticket_leaves_the_clock_paused(
    uow_factory: UnitOfWorkFactory, staff: Staff, tmp_path: Path
) -> None:
    await _policy(uow_factory)
    agent = Viewer(agent_id=staff.admin.id, role=Role.ADMIN)
    store = ContentStore(tmp_path)
    first = parse_message(
        make_mail(sender="ooo@example.org", message_id="ooo-1@example.org"), store, max_attachment_bytes=10**6
    )
    async with uow_factory() as uow:
        (opened,) = await ingest_batch(uow, MAILBOX, POLICY, [first], T0)
        await uow.commit()
    assert opened.ticket_id is not None
    await _answer(uow_factory, agent, opened.ticket_id, T0 + 5 * MINUTE, TicketStatus.PENDING)
    raw = make_mail(
        sender="ooo@example.org",
        in_reply_to="ooo-1@example.org",
        headers={"Auto-Submitted": "auto-replied"},
        subject="Out of office / 不在办公室",
    )
    async with uow_factory() as uow:
        (auto,) = await ingest_batch(
            uow, MAILBOX, POLICY, [parse_message(raw, store, max_attachment_bytes=10**6)], T0 + 60 * MINUTE
        )
        await uow.commit()
    ticket, sla = await _clock(uow_factory, opened.ticket_id)
    assert auto.outcome is Outcome.AUTO_REPLY
    assert ticket.status is TicketStatus.PENDING and sla.paused_since is not None
    assert sla.next_response_due_at is None


async def test_a_visitors_chat_message_reopens_the_chat_ticket_and_asks_for_the_next_response(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    await _policy(uow_factory)
    agent = Viewer(agent_id=staff.admin.id, role=Role.ADMIN)
    prechat = chat.PreChat(name="Ada 李", email="ada-chat@example.org")
    async with uow_factory() as uow:
        visitor = await chat.touch_visitor(uow, "visitor-sla-1", None, T0)
        _, ticket = await chat.leave_message(
            uow, visitor, prechat, "Router down / 路由器坏了", region="US", origin=None, ip=None,
            sla=SlaPolicy(), now=T0,
        )  # fmt: skip
        await uow.commit()
    ticket_id = ticket.id
    await _answer(uow_factory, agent, ticket_id, T0 + 5 * MINUTE, TicketStatus.PENDING)
    async with uow_factory() as uow:
        visitor = await chat.touch_visitor(uow, "visitor-sla-1", None, T0 + 50 * MINUTE)
        conversation, _ = await chat.start_conversation(
            uow, visitor, prechat, region="US", origin=None, ip=None, now=T0 + 50 * MINUTE
        )
        await uow.commit()
    assert conversation.ticket_id == ticket_id
    # The one-statement path leaves a chat with a ticket to the full one, which keeps the clock.
    async with uow_factory() as uow:
        fast = await chat.add_visitor_message(uow.session, conversation.id, "m1", "E42", T0 + 60 * MINUTE)
        assert fast is None
    for n, at in enumerate([T0 + 60 * MINUTE, T0 + 61 * MINUTE]):
        async with uow_factory() as uow:
            conversation = await uow.session.get_one(type(conversation), conversation.id)
            _, created = await chat.add_message(
                uow, conversation, sender=ChatSender.VISITOR, body=f"型号 E4{n}", client_id=f"m{n}", now=at
            )
            await uow.commit()
        assert created
    ticket, sla = await _clock(uow_factory, ticket_id)
    assert ticket.status is TicketStatus.OPEN and sla.paused_since is None
    # Due 15 minutes after the first message that found nobody answering (the second waits too).
    assert sla.next_response_due_at == T0 + 75 * MINUTE
    await _answer(uow_factory, agent, ticket_id, T0 + 70 * MINUTE, TicketStatus.OPEN)
    async with uow_factory() as uow:
        conversation = await uow.session.get_one(type(conversation), conversation.id)
        await chat.add_message(
            uow,
            conversation,
            sender=ChatSender.VISITOR,
            body="Still down",
            client_id="m9",
            now=T0 + 80 * MINUTE,
        )
        await uow.commit()
    _, sla = await _clock(uow_factory, ticket_id)
    assert sla.next_response_due_at == T0 + 95 * MINUTE


async def test_a_batch_of_replies_reads_the_clocks_of_its_tickets_in_one_query(
    uow_factory: UnitOfWorkFactory, staff: Staff, tmp_path: Path
) -> None:
    await _policy(uow_factory)
    agent = Viewer(agent_id=staff.admin.id, role=Role.ADMIN)
    store = ContentStore(tmp_path)

    def mail(n: int, kind: str, parent: str | None = None) -> InboundEmail:
        raw = make_mail(sender=f"c{n}@example.org", message_id=f"{kind}-{n}@example.org", in_reply_to=parent)
        return parse_message(raw, store, max_attachment_bytes=10**6)

    async with uow_factory() as uow:
        opened = await ingest_batch(uow, MAILBOX, POLICY, [mail(n, "first") for n in range(4)], T0)
        await uow.commit()
    ticket_ids = [r.ticket_id for r in opened if r.ticket_id is not None]
    for ticket_id in ticket_ids[:3]:  # the fourth is still waiting for its first response
        await _answer(uow_factory, agent, ticket_id, T0 + 5 * MINUTE, TicketStatus.OPEN)
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    replies = [mail(n, "again", f"first-{n}@example.org") for n in range(4)]
    event.listen(uow_factory.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with uow_factory() as uow:
            results = await ingest_batch(uow, MAILBOX, POLICY, replies, T0 + 20 * MINUTE)
            await uow.commit()
    finally:
        event.remove(uow_factory.engine.sync_engine, "before_cursor_execute", seen)
    assert [r.outcome for r in results] == [Outcome.THREADED] * 4
    assert sum(s.lstrip().upper().startswith("SELECT") and "FROM ticket_slas" in s for s in statements) == 1
    async with uow_factory() as uow:
        clocks = {
            s.ticket_id: s.next_response_due_at
            for s in await uow.session.scalars(select(TicketSla).where(TicketSla.ticket_id.in_(ticket_ids)))
        }
    assert clocks == dict.fromkeys(ticket_ids[:3], T0 + 35 * MINUTE) | {ticket_ids[3]: None}
