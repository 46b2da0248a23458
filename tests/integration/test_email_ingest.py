"""Inbound mail to tickets in the core: exactly once, threading order, loops, bounces, reopening."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from channels.email.content_store import ContentStore
from channels.email.parsing import parse_message
from crm_core.db import UnitOfWorkFactory
from crm_core.models import (
    EmailAddressHealth,
    EmailKind,
    EmailMessage,
    EmailStatus,
    Interaction,
    Ticket,
    TicketComment,
    utcnow,
)
from crm_core.rules.email_refs import body_marker
from crm_core.rules.ticket_status import TicketStatus
from crm_core.services.email_batch import ingest, ingest_batch
from crm_core.services.email_ingest import (
    EmailPolicy,
    Ingested,
    MailboxPolicy,
    Outcome,
    known_keys,
    load_checkpoint,
    save_checkpoint,
)
from crm_core.services.tickets import SlaPolicy
from tests.email_servers import make_mail

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "email"
SECRET = b"test-secret-key-for-email"
SUPPORT = MailboxPolicy(name="support", address="support@example.com", display_name="Support")
SALES = MailboxPolicy(name="sales", address="sales@example.com")
POLICY = EmailPolicy(
    secret=SECRET,
    domain="example.com",
    our_addresses=frozenset({"support@example.com", "sales@example.com"}),
    sla=SlaPolicy(),
    reopen_window=timedelta(hours=24),
    acks_per_hour=2,
)


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "mail")


async def deliver(
    uow_factory: UnitOfWorkFactory,
    store: ContentStore,
    raw: bytes,
    mailbox: MailboxPolicy = SUPPORT,
    policy: EmailPolicy = POLICY,
) -> Ingested:
    mail = parse_message(raw, store, max_attachment_bytes=100_000)
    async with uow_factory() as uow:
        result = await ingest(uow, mailbox, policy, mail)
        await uow.commit()
    return result


async def ticket_of(uow_factory: UnitOfWorkFactory, ticket_id: int | None) -> Ticket:
    assert ticket_id is not None
    async with uow_factory() as uow:
        return await uow.session.get_one(Ticket, ticket_id)


async def ack_of(uow_factory: UnitOfWorkFactory, result: Ingested) -> EmailMessage:
    assert result.acknowledgment_id is not None
    async with uow_factory() as uow:
        return await uow.session.get_one(EmailMessage, result.acknowledgment_id)


async def count(uow_factory: UnitOfWorkFactory, model: type, *where: object) -> int:
    async with uow_factory() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_new_mail_opens_a_ticket_for_the_team_and_queues_an_acknowledgment(
    uow_factory: UnitOfWorkFactory, store: ContentStore, staff: object
) -> None:
    team_id = staff.red.id  # type: ignore[attr-defined]
    mailbox = MailboxPolicy(name="support", address="support@example.com", team_id=team_id)
    result = await deliver(uow_factory, store, (FIXTURES / "plain_utf8.eml").read_bytes(), mailbox)
    assert result.outcome is Outcome.NEW_TICKET
    ticket = await ticket_of(uow_factory, result.ticket_id)
    assert ticket.team_id == team_id and ticket.subject == "Problema con la factura — ñandú"
    assert ticket.source_channel == "email"
    ack = await ack_of(uow_factory, result)
    assert ack.status is EmailStatus.QUEUED and ack.kind is EmailKind.ACKNOWLEDGMENT
    assert ack.to_addresses == ["ana@example.org"]
    assert f"[#{ticket.number}]" in ack.subject
    assert ack.headers == {"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"}
    assert ack.in_reply_to == "CAF1plain.utf8@mail.example.org"
    assert ack.message_id and ack.message_id.startswith(f"T{ticket.number}-")
    assert body_marker(ticket.number, SECRET) in ack.text_body
    assert await count(uow_factory, Interaction, Interaction.ticket_id == ticket.id) == 2


async def test_duplicate_delivery_and_second_mailbox_make_one_ticket(
    uow_factory: UnitOfWorkFactory, store: ContentStore
) -> None:
    raw = make_mail(message_id="dup-1@example.org")
    first = await deliver(uow_factory, store, raw)
    again = await deliver(uow_factory, store, raw)
    copy = await deliver(uow_factory, store, b"Delivered-To: sales@example.com\r\n" + raw, SALES)
    assert first.outcome is Outcome.NEW_TICKET
    assert again.outcome is Outcome.DUPLICATE and copy.outcome is Outcome.DUPLICATE
    assert await count(uow_factory, Ticket) == 1
    async with uow_factory() as uow:
        assert await known_keys(uow.session, ["dup-1@example.org", "other@x"]) == {"dup-1@example.org"}
    without_id = make_mail(without_message_id=True, body="no id")
    assert (await deliver(uow_factory, store, without_id)).outcome is Outcome.NEW_TICKET
    assert (await deliver(uow_factory, store, without_id, SALES)).outcome is Outcome.DUPLICATE


async def test_threading_by_in_reply_to_references_and_hidden_marker(
    uow_factory: UnitOfWorkFactory, store: ContentStore
) -> None:
    first = await deliver(uow_factory, store, make_mail(message_id="t-1@example.org"))
    ack = await ack_of(uow_factory, first)
    by_reply_to = await deliver(
        uow_factory,
        store,
        make_mail(subject="Re: x", message_id="t-2@example.org", in_reply_to=ack.message_id),
    )
    by_references = await deliver(
        uow_factory,
        store,
        make_mail(subject="again", message_id="t-3@example.org", references="<unknown@x> <t-1@example.org>"),
    )
    ticket = await ticket_of(uow_factory, first.ticket_id)
    # A provider rewrote our Message-ID: the signed ref in the quoted body still threads it.
    by_marker = await deliver(
        uow_factory,
        store,
        make_mail(
            subject="hm", message_id="t-4@example.org", body=f"ok\n> {body_marker(ticket.number, SECRET)}"
        ),
    )
    forged = await deliver(
        uow_factory,
        store,
        make_mail(subject="hm", message_id="t-5@example.org", body=f"[ref:T{ticket.number}-000000000000]"),
    )
    assert [r.outcome for r in (by_reply_to, by_references, by_marker)] == [Outcome.THREADED] * 3
    assert {r.ticket_id for r in (by_reply_to, by_references, by_marker)} == {first.ticket_id}
    assert forged.outcome is Outcome.NEW_TICKET and forged.ticket_id != first.ticket_id


async def test_subject_token_only_from_customer_or_participant(
    uow_factory: UnitOfWorkFactory, store: ContentStore
) -> None:
    first = await deliver(
        uow_factory, store, make_mail(message_id="s-1@example.org", cc="colleague@example.org")
    )
    ticket = await ticket_of(uow_factory, first.ticket_id)
    token = f"Re: Help please [#{ticket.number}]"
    own = await deliver(uow_factory, store, make_mail(subject=token, message_id="s-2@example.org"))
    colleague = await deliver(
        uow_factory,
        store,
        make_mail(sender="colleague@example.org", subject=token, message_id="s-3@example.org"),
    )
    stranger = await deliver(
        uow_factory,
        store,
        make_mail(sender="mallory@evil.example", subject=token, message_id="s-4@example.org"),
    )
    assert own.ticket_id == first.ticket_id and colleague.ticket_id == first.ticket_id
    assert stranger.outcome is Outcome.NEW_TICKET and stranger.ticket_id != first.ticket_id


async def test_auto_replies_never_loop_and_attach_without_reopening(
    uow_factory: UnitOfWorkFactory, store: ContentStore
) -> None:
    first = await deliver(uow_factory, store, make_mail(sender="kai@client.example", message_id="a-1@x"))
    ack = await ack_of(uow_factory, first)
    ooo = make_mail(
        sender="kai@client.example",
        subject="Automatic reply",
        message_id="a-2@x",
        in_reply_to=ack.message_id,
        headers={"Auto-Submitted": "auto-replied"},
    )
    attached = await deliver(uow_factory, store, ooo)
    assert attached.outcome is Outcome.AUTO_REPLY and attached.ticket_id == first.ticket_id
    assert attached.acknowledgment_id is None
    for name in ("autoreply_outlook.eml", "autoreply_gmail.eml", "autoreply_legacy.eml", "list_mail.eml"):
        result = await deliver(uow_factory, store, (FIXTURES / name).read_bytes())
        assert result.outcome is Outcome.IGNORED, name
    robot = await deliver(uow_factory, store, make_mail(sender="noreply@shop.example", message_id="a-3@x"))
    ours = await deliver(uow_factory, store, make_mail(sender="sales@example.com", message_id="a-4@x"))
    assert robot.outcome is Outcome.IGNORED and ours.outcome is Outcome.LOOP
    assert await count(uow_factory, Ticket) == 1
    assert await count(uow_factory, EmailMessage, EmailMessage.kind == EmailKind.ACKNOWLEDGMENT) == 1


async def test_acknowledgments_are_rate_limited_per_sender(
    uow_factory: UnitOfWorkFactory, store: ContentStore
) -> None:
    results = [
        await deliver(uow_factory, store, make_mail(subject=f"issue {n}", message_id=f"r-{n}@x"))
        for n in range(4)
    ]
    assert all(r.outcome is Outcome.NEW_TICKET for r in results)
    assert [r.acknowledgment_id is not None for r in results] == [True, True, False, False]
    # The hour counts back from now over the acknowledgments sent: once they are older, one goes out.
    async with uow_factory() as uow:
        await uow.session.execute(
            update(EmailMessage)
            .where(EmailMessage.kind == EmailKind.ACKNOWLEDGMENT)
            .values(created_at=utcnow() - timedelta(minutes=61))
        )
        await uow.commit()
    later = await deliver(uow_factory, store, make_mail(subject="issue 5", message_id="r-5@x"))
    assert later.acknowledgment_id is not None


async def test_bounce_marks_the_outbound_message_and_the_address(
    uow_factory: UnitOfWorkFactory, store: ContentStore
) -> None:
    first = await deliver(uow_factory, store, make_mail(sender="gone@example.org", message_id="b-1@x"))
    ack = await ack_of(uow_factory, first)
    dsn = (
        (FIXTURES / "dsn_postfix.eml")
        .read_bytes()
        .replace(b"T1000-0123456789ab.5f3e2a1b9c0d7e6f@support.example.com", (ack.message_id or "").encode())
    )
    result = await deliver(uow_factory, store, dsn)
    assert result.outcome is Outcome.BOUNCE and result.ticket_id == first.ticket_id
    bounced = await ack_of(uow_factory, first)
    assert bounced.status is EmailStatus.BOUNCED and "User unknown" in (bounced.last_error or "")
    delivery = [e.payload for e in uow_factory.publisher.events if e.name == "email.delivery"]
    assert {"email_id": bounced.id, "status": "bounced"}.items() <= delivery[-1].items()
    async with uow_factory() as uow:
        health = await uow.session.get(EmailAddressHealth, "gone@example.org")
        assert health is not None and health.failing
    assert await count(uow_factory, Ticket) == 1
    notes = await count(uow_factory, TicketComment, TicketComment.ticket_id == first.ticket_id)
    assert notes == 1
    # No more acknowledgments to a failing address.
    again = await deliver(uow_factory, store, make_mail(sender="gone@example.org", message_id="b-2@x"))
    assert again.outcome is Outcome.NEW_TICKET and again.acknowledgment_id is None


async def test_reply_reopens_within_the_window_and_links_after_it(
    uow_factory: UnitOfWorkFactory, store: ContentStore
) -> None:
    first = await deliver(uow_factory, store, make_mail(message_id="w-1@x"))
    async with uow_factory() as uow:
        ticket = await uow.session.get_one(Ticket, first.ticket_id)
        ticket.status, ticket.resolved_at = TicketStatus.RESOLVED, utcnow() - timedelta(hours=1)
        await uow.commit()
    reopened = await deliver(uow_factory, store, make_mail(message_id="w-2@x", in_reply_to="w-1@x"))
    assert reopened.outcome is Outcome.REOPENED
    assert (await ticket_of(uow_factory, first.ticket_id)).status is TicketStatus.OPEN
    async with uow_factory() as uow:
        ticket = await uow.session.get_one(Ticket, first.ticket_id)
        ticket.status, ticket.resolved_at = TicketStatus.RESOLVED, utcnow() - timedelta(hours=48)
        await uow.commit()
    linked = await deliver(uow_factory, store, make_mail(message_id="w-3@x", in_reply_to="w-1@x"))
    assert linked.outcome is Outcome.LINKED
    new = await ticket_of(uow_factory, linked.ticket_id)
    assert new.linked_ticket_id == first.ticket_id and new.status is TicketStatus.NEW
    assert (await ticket_of(uow_factory, first.ticket_id)).status is TicketStatus.RESOLVED


async def test_malformed_and_legacy_mail_still_open_tickets(
    uow_factory: UnitOfWorkFactory, store: ContentStore
) -> None:
    for name in ("malformed.eml", "gb2312.eml", "shift_jis.eml", "attachment_large.eml"):
        result = await deliver(uow_factory, store, (FIXTURES / name).read_bytes())
        assert result.outcome is Outcome.NEW_TICKET, name
    async with uow_factory() as uow:
        broken = await uow.session.scalar(
            select(EmailMessage).where(EmailMessage.message_key == "malformed-1@example.org")
        )
        assert broken is not None and broken.defects and broken.raw_sha256
        large = await uow.session.scalar(
            select(EmailMessage).where(EmailMessage.message_key == "big-1@example.de")
        )
        assert large is not None
        note = await uow.session.scalar(
            select(TicketComment).where(TicketComment.ticket_id == large.ticket_id)
        )
        assert note is not None and "app.log" in note.body


async def test_checkpoint_follows_uidvalidity(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        assert await load_checkpoint(uow.session, "support") == (None, 0)
        await save_checkpoint(uow.session, "support", 7, 10)
        await uow.commit()
    async with uow_factory() as uow:
        await save_checkpoint(uow.session, "support", 7, 4)
        await uow.commit()
    async with uow_factory() as uow:
        assert await load_checkpoint(uow.session, "support") == (7, 10)
        await save_checkpoint(uow.session, "support", 8, 2)
        await uow.commit()
    async with uow_factory() as uow:
        assert await load_checkpoint(uow.session, "support") == (8, 2)


async def test_a_batch_threads_within_itself_and_mixes_both_paths(
    uow_factory: UnitOfWorkFactory, store: ContentStore
) -> None:
    earlier = await deliver(uow_factory, store, make_mail(sender="old@example.org", message_id="x-0@x"))
    earlier_ticket = await ticket_of(uow_factory, earlier.ticket_id)
    raws = [
        make_mail(sender="new@example.org", message_id="x-1@x"),
        make_mail(sender="new@example.org", message_id="x-2@x", in_reply_to="x-1@x"),
        make_mail(sender="new@example.org", message_id="x-1@x"),  # the same mail again
        make_mail(sender="old@example.org", subject=f"Re: [#{earlier_ticket.number}]", message_id="x-3@x"),
        make_mail(sender="new@example.org", message_id="x-4@x", references="<x-2@x>"),
        make_mail(sender="other@example.org", message_id="x-5@x", headers={"List-Id": "<l.example>"}),
        make_mail(sender="third@example.org", message_id="x-6@x"),
    ]
    mails = [parse_message(raw, store, max_attachment_bytes=1000) for raw in raws]
    async with uow_factory() as uow:
        results = await ingest_batch(uow, SUPPORT, POLICY, mails)
        await uow.commit()
    outcomes = [r.outcome for r in results]
    assert outcomes == [
        Outcome.NEW_TICKET,
        Outcome.THREADED,
        Outcome.DUPLICATE,
        Outcome.THREADED,
        Outcome.THREADED,
        Outcome.IGNORED,
        Outcome.NEW_TICKET,
    ]
    assert results[0].ticket_id == results[1].ticket_id == results[4].ticket_id
    assert results[3].ticket_id == earlier.ticket_id
    assert results[6].ticket_id not in (results[0].ticket_id, earlier.ticket_id)
    assert results[0].acknowledgment_id is not None and results[6].acknowledgment_id is not None
    numbers = set()
    for result in (results[0], results[6]):
        numbers.add((await ticket_of(uow_factory, result.ticket_id)).number)
    assert len(numbers) == 2 and earlier_ticket.number not in numbers
    assert await count(uow_factory, EmailMessage, EmailMessage.direction == "inbound") == 7


async def test_a_broken_acknowledgment_template_is_noted_not_fatal(
    uow_factory: UnitOfWorkFactory, store: ContentStore
) -> None:
    from crm_core.services.email_acks import AckTemplate

    mailbox = MailboxPolicy(
        name="support", address="support@example.com", templates={"en": AckTemplate("{{ nope }}", "x")}
    )
    result = await deliver(uow_factory, store, make_mail(message_id="tpl-1@x"), mailbox)
    assert result.outcome is Outcome.NEW_TICKET and result.acknowledgment_id is None
    async with uow_factory() as uow:
        note = await uow.session.scalar(
            select(TicketComment).where(TicketComment.ticket_id == result.ticket_id)
        )
    assert note is not None and "No acknowledgment sent" in note.body
