"""IMAP ingestion against a real Dovecot: new mail, threading, duplicates, two mailboxes,
post-processing, UIDVALIDITY, a failing mailbox beside a working one, and IDLE."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from channels.email.content_store import ContentStore
from crm_core.db import UnitOfWorkFactory
from crm_core.models import EmailKind, EmailMailboxState, EmailMessage, Ticket
from crm_core.services.email_ingest import load_checkpoint
from tests.email_servers import Dovecot, make_mail
from tests.support.mailbox_watcher import login, watcher
from tests.support.waiting import until

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "email"


async def tickets(uow_factory: UnitOfWorkFactory) -> int:
    async with uow_factory() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(Ticket)) or 0)


async def test_new_mail_threading_and_post_processing(
    dovecot: Dovecot, uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> None:
    user = login()
    store = ContentStore(tmp_path)
    await dovecot.append(
        user,
        make_mail(message_id="imap-1@example.org"),
        (FIXTURES / "gb2312.eml").read_bytes(),
        (FIXTURES / "malformed.eml").read_bytes(),
        (FIXTURES / "autoreply_outlook.eml").read_bytes(),
    )
    w = watcher(dovecot, uow_factory, store, user)
    assert await w.run_once() == 4
    assert await tickets(uow_factory) == 3
    async with uow_factory() as uow:
        ack = await uow.session.scalar(
            select(EmailMessage).where(EmailMessage.kind == EmailKind.ACKNOWLEDGMENT)
        )
        assert ack is not None
        validity, last = await load_checkpoint(uow.session, "support")
    assert validity is not None and last == 4
    assert await dovecot.uids(user, criteria="UNSEEN") == []
    # Replies: by In-Reply-To (our acknowledgment), by References only, by subject token.
    async with uow_factory() as uow:
        ticket = await uow.session.get_one(Ticket, ack.ticket_id)
    await dovecot.append(
        user,
        make_mail(subject="Re: Help", message_id="imap-2@example.org", in_reply_to=ack.message_id),
        make_mail(subject="more", message_id="imap-3@example.org", references="<imap-1@example.org>"),
        make_mail(subject=f"Re: [#{ticket.number}]", message_id="imap-4@example.org"),
        make_mail(sender="mallory@evil.example", subject=f"[#{ticket.number}]", message_id="imap-5@x"),
    )
    assert await w.run_once() == 4
    async with uow_factory() as uow:
        rows = dict(
            (
                await uow.session.execute(
                    select(EmailMessage.message_key, EmailMessage.ticket_id).where(
                        EmailMessage.message_key.in_(
                            ["imap-2@example.org", "imap-3@example.org", "imap-4@example.org", "imap-5@x"]
                        )
                    )
                )
            ).all()
        )
    assert (
        rows["imap-2@example.org"]
        == rows["imap-3@example.org"]
        == rows["imap-4@example.org"]
        == ack.ticket_id
    )
    assert rows["imap-5@x"] not in (None, ack.ticket_id)


async def test_duplicates_and_the_same_mail_in_two_mailboxes(
    dovecot: Dovecot, uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> None:
    support, sales = login(), login()
    store = ContentStore(tmp_path)
    raw = make_mail(message_id="both@example.org", to="support@example.com, sales@example.com")
    await dovecot.append(support, raw, raw)
    await dovecot.append(sales, raw)
    assert await watcher(dovecot, uow_factory, store, support).run_once() == 1
    assert await watcher(dovecot, uow_factory, store, sales, name="sales").run_once() == 0
    assert await tickets(uow_factory) == 1


async def test_move_and_leave_and_uidvalidity_change(
    dovecot: Dovecot, uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> None:
    moved, left = login(), login()
    store = ContentStore(tmp_path)
    await dovecot.create_folder(moved, "Processed")
    await dovecot.append(moved, make_mail(message_id="mv-1@x"), make_mail(message_id="mv-2@x"))
    await dovecot.append(left, make_mail(message_id="lv-1@x"))
    assert (
        await watcher(dovecot, uow_factory, store, moved, after="move", move_to="Processed").run_once() == 2
    )
    assert await dovecot.uids(moved) == []
    assert len(await dovecot.uids(moved, folder="Processed")) == 2
    leave = watcher(dovecot, uow_factory, store, left, name="left", after="leave")
    assert await leave.run_once() == 1
    assert await dovecot.uids(left, criteria="UNSEEN") != []
    # The server renumbers the folder: everything is looked at again, nothing stored twice.
    async with uow_factory() as uow:
        state = await uow.session.get_one(EmailMailboxState, "left")
        state.uidvalidity = 1
        await uow.commit()
    await dovecot.append(left, make_mail(message_id="lv-2@x"))
    assert await leave.run_once() == 1
    assert await tickets(uow_factory) == 4


async def test_a_failing_mailbox_does_not_stop_the_others_and_idle_wakes_up(
    dovecot: Dovecot, uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> None:
    good = login()
    store = ContentStore(tmp_path)
    broken = watcher(dovecot, uow_factory, store, login(), name="broken", port=1)
    # Neither polling nor the periodic re-IDLE can stand in for the server's push here.
    working = watcher(dovecot, uow_factory, store, good, idle=True, idle_seconds=600, poll_seconds=600)
    tasks = [asyncio.create_task(broken.run()), asyncio.create_task(working.run())]
    try:
        await dovecot.append(good, make_mail(message_id="idle-1@x"))
        await until(lambda: working.ingested == 1, 15, "the first message ingested")
        await until(lambda: working.state == "idle", 15, "the watcher waiting in IDLE")
        await dovecot.append(good, make_mail(message_id="idle-2@x"))
        # Only the server's EXISTS push during IDLE can bring it in this soon.
        await until(lambda: working.ingested == 2, 5, "the message pushed during IDLE ingested")
        await until(lambda: broken.failures >= 2, 15, "the broken mailbox retried")
        assert broken.ingested == 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_messages_stored_but_not_yet_flagged_are_flagged_on_reconnect(
    dovecot: Dovecot, uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> None:
    user = login()
    store = ContentStore(tmp_path)
    await dovecot.append(user, make_mail(message_id="fl-1@x"), make_mail(message_id="fl-2@x"))
    # Stored and checkpointed, then the process died before flagging them.
    assert await watcher(dovecot, uow_factory, store, user, after="leave").run_once() == 2
    assert len(await dovecot.uids(user, criteria="UNSEEN")) == 2
    assert await watcher(dovecot, uow_factory, store, user).run_once() == 0
    assert await dovecot.uids(user, criteria="UNSEEN") == []
    assert await tickets(uow_factory) == 2
