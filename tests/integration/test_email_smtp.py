"""The outbox against a real SMTP server (aiosmtpd on loopback): composition, retries, failures."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from channels.email.content_store import ContentStore
from contact_center.email.desk import EmailDesk
from contact_center.email.wiring import run_outbox
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.email_ports import MailAttachment
from crm_core.models import (
    Customer,
    EmailKind,
    EmailMessage,
    EmailParticipant,
    EmailStatus,
    Interaction,
    OutboxEntry,
    OutboxStatus,
    Ticket,
)
from crm_core.services.email_outbound import EmailDraft, queue_email, queue_emails
from crm_core.services.email_sending import deliver_due
from tests.email_servers import SmtpSink
from tests.support.email_outbox import FAST, POLICY, SUPPORT, email, new_ticket_with_ack, sender
from tests.support.waiting import eventually, free_port


async def test_acknowledgment_is_composed_and_delivered(
    uow_factory: UnitOfWorkFactory, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path)
    ack_id = await new_ticket_with_ack(uow_factory, store, "smtp-1@example.org")
    assert await deliver_due(uow_factory, sender(smtp_sink.port, store), FAST) == 1
    (received,) = await smtp_sink.wait_for(1)
    msg = received.message
    assert received.envelope_from == "support@example.com" and received.recipients == ["ana@example.org"]
    assert msg["Auto-Submitted"] == "auto-replied" and msg["X-Auto-Response-Suppress"] == "All"
    assert msg["In-Reply-To"] == "<smtp-1@example.org>"
    assert str(msg["From"]) == "Example Support <support@example.com>"
    row = await email(uow_factory, ack_id)
    assert msg["Message-ID"] == f"<{row.message_id}>"
    assert row.status is EmailStatus.SENT and row.delivered_at is not None and row.attempts == 1
    async with uow_factory() as uow:
        interaction = await uow.session.get_one(Interaction, row.interaction_id)
        assert interaction.status == "sent" and interaction.direction == "outbound"
    assert await deliver_due(uow_factory, sender(smtp_sink.port, store), FAST) == 0


async def test_smtp_down_then_back_delivers_once_later(
    uow_factory: UnitOfWorkFactory, tmp_path: Path, settings: Settings
) -> None:
    store = ContentStore(tmp_path)
    ack_id = await new_ticket_with_ack(uow_factory, store, "smtp-2@example.org")
    port = free_port()
    desk = EmailDesk(
        policy=POLICY, mailboxes={"support": SUPPORT}, store=store, retry=FAST, settings=settings
    )
    task = asyncio.create_task(run_outbox(desk, uow_factory, sender(port, store), poll_seconds=0.05))
    sink = SmtpSink("127.0.0.1", port)
    try:

        async def retried() -> EmailMessage | None:
            row = await email(uow_factory, ack_id)
            return row if row.attempts >= 2 and row.status is EmailStatus.QUEUED else None

        row = await eventually(retried, what="two failed attempts")
        assert row.last_error and "connection" in row.last_error
        sink.start()
        await sink.wait_for(1)

        async def sent() -> EmailMessage | None:
            row = await email(uow_factory, ack_id)
            return row if row.status is EmailStatus.SENT else None

        row = await eventually(sent, what="the acknowledgment is sent")
        assert row.last_error is None
        # A message queued after it goes out on a later round: by then a second copy of the first
        # would have gone out too.
        await new_ticket_with_ack(uow_factory, store, "smtp-2-later@example.org")
        received = await sink.wait_for(2)
        assert sorted(str(mail.message["In-Reply-To"]) for mail in received) == [
            "<smtp-2-later@example.org>",
            "<smtp-2@example.org>",
        ]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sink.stop()


async def test_5xx_fails_with_the_reply_and_4xx_retries(
    uow_factory: UnitOfWorkFactory, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path)
    ack_id = await new_ticket_with_ack(uow_factory, store, "smtp-3@example.org")
    smtp_sink.reply = "451 4.3.0 try again later"
    await deliver_due(uow_factory, sender(smtp_sink.port, store), FAST)
    row = await email(uow_factory, ack_id)
    assert row.status is EmailStatus.QUEUED and "451" in (row.last_error or "")
    smtp_sink.reply = "554 5.7.1 rejected by policy"

    async def next_attempt() -> int:  # once the retry is due
        return await deliver_due(uow_factory, sender(smtp_sink.port, store), FAST)

    assert await eventually(next_attempt, what="the retry") == 1
    row = await email(uow_factory, ack_id)
    assert row.status is EmailStatus.FAILED and "554 5.7.1 rejected by policy" in (row.last_error or "")
    async with uow_factory() as uow:
        entry = await uow.session.scalar(select(OutboxEntry).where(OutboxEntry.email_message_id == ack_id))
        assert entry is not None and (entry.status, entry.next_attempt_at) == (OutboxStatus.FAILED, None)
    assert await deliver_due(uow_factory, sender(smtp_sink.port, store), FAST) == 0
    assert smtp_sink.received == []


async def test_attachments_and_html_alternative_are_composed(
    uow_factory: UnitOfWorkFactory, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path)
    ack_id = await new_ticket_with_ack(uow_factory, store, "smtp-4@example.org")
    row = await email(uow_factory, ack_id)
    sha = store.put(b"%PDF-1.4 invoice")
    async with uow_factory() as uow:
        ticket = await uow.session.get_one(Ticket, row.ticket_id)
        await queue_email(
            uow,
            ticket=ticket,
            identity=SUPPORT.identity,
            secret=POLICY.secret,
            domain=POLICY.domain,
            kind=EmailKind.REPLY,
            to=["ana@example.org"],
            subject="Your invoice",
            text="Attached.",
            html="<p>Attached.</p>",
            attachments=[MailAttachment("invoice.pdf", "application/pdf", 16, sha)],
        )
        await uow.commit()
    await deliver_due(uow_factory, sender(smtp_sink.port, store), FAST)
    received = await smtp_sink.wait_for(2)
    reply = next(r.message for r in received if r.message["Subject"] == "Your invoice")
    assert reply["Auto-Submitted"] is None
    body = reply.get_body(("html",))
    assert body is not None and "Attached." in body.get_content()
    (attachment,) = list(reply.iter_attachments())
    assert attachment.get_filename() == "invoice.pdf" and attachment.get_content() == b"%PDF-1.4 invoice"
    async with uow_factory() as uow:
        statuses = set(await uow.session.scalars(select(EmailMessage.status)))
    assert EmailStatus.SENT in statuses


async def test_a_notice_to_staff_is_delivered_and_on_no_customers_timeline(
    uow_factory: UnitOfWorkFactory, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    """An escalation notice goes to an agent: delivered through the outbox like any mail, logged on
    no customer (no interaction), announced to nobody's timeline."""
    draft = EmailDraft(
        identity=SUPPORT.identity,
        kind=EmailKind.MESSAGE,
        to=["lead@example.com"],
        subject="Ticket #7: 首次响应已超时 / first response overdue",
        text="Escalation level 2.",
        to_staff=True,
        automatic=True,
    )
    async with uow_factory() as uow:
        (queued,) = await queue_emails(uow, [draft], secret=POLICY.secret, domain=POLICY.domain)
        await uow.commit()
    assert (queued.customer_id, queued.interaction_id, queued.ticket_id) == (None, None, None)
    assert await deliver_due(uow_factory, sender(smtp_sink.port, ContentStore(tmp_path)), FAST) == 1
    (received,) = await smtp_sink.wait_for(1)
    assert received.recipients == ["lead@example.com"]
    assert received.message["Subject"] == "Ticket #7: 首次响应已超时 / first response overdue"
    assert received.message["Auto-Submitted"] is not None  # automatic: no auto-reply loops
    row = await email(uow_factory, queued.id)
    assert row.status is EmailStatus.SENT
    async with uow_factory() as uow:
        assert list(await uow.session.scalars(select(Interaction))) == []


async def test_an_email_without_a_ticket_is_queued_and_delivered(
    uow_factory: UnitOfWorkFactory, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    """A broadcast has no ticket: queued on a customer alone, delivered like any other mail,
    without a ticket's marker or signed Message-ID, and nobody becomes a participant."""
    store = ContentStore(tmp_path)
    async with uow_factory() as uow:
        customer = Customer(display_name="李娜")
        uow.session.add(customer)
        await uow.session.flush()
        queued = await queue_email(
            uow,
            ticket=None,
            customer_id=customer.id,
            identity=SUPPORT.identity,
            secret=POLICY.secret,
            domain=POLICY.domain,
            kind=EmailKind.MESSAGE,
            to=["li.na@example.org"],
            subject="春季优惠 / Spring offer",
            text="您好 李娜: Our spring offer is here.",
        )
        await uow.commit()
    assert queued.ticket_id is None
    assert await deliver_due(uow_factory, sender(smtp_sink.port, store), FAST) == 1
    (received,) = await smtp_sink.wait_for(1)
    assert received.recipients == ["li.na@example.org"]
    assert received.message["Subject"] == "春季优惠 / Spring offer"
    body = received.message.get_body(("plain",))
    assert body is not None and body.get_content().splitlines() == ["您好 李娜: Our spring offer is here."]
    assert received.message["Message-ID"] == f"<{queued.message_id}>"
    assert (queued.message_id or "").startswith("cc.")
    row = await email(uow_factory, queued.id)
    assert row.status is EmailStatus.SENT and row.attempts == 1 and row.ticket_id is None
    async with uow_factory() as uow:
        interaction = await uow.session.get_one(Interaction, row.interaction_id)
        assert (interaction.customer_id, interaction.ticket_id) == (customer.id, None)
        assert interaction.status == "sent"
        assert list(await uow.session.scalars(select(EmailParticipant))) == []
    assert await deliver_due(uow_factory, sender(smtp_sink.port, store), FAST) == 0
