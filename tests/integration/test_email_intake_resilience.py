"""Mail intake off the beaten path, against a real Dovecot: MIME parsed in worker processes
(``email.parse_processes``), and an IMAP connection dropped in the middle of a FETCH or an IDLE."""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from channels.email import imap as imap_channel
from channels.email.content_store import ContentStore
from channels.email.imap import ImapAccount, MailboxWatcher, WatchOptions
from contact_center.app import create_app
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import EmailMessage
from crm_core.services.email_ingest import EmailPolicy, MailboxPolicy
from crm_core.services.email_intake import EmailIntake
from crm_core.services.tickets import SlaPolicy
from crm_core.types import Direction
from tests.conftest import Staff
from tests.email_servers import Dovecot, SmtpSink, make_mail
from tests.support.imap_proxy import ImapProxy
from tests.support.mail_app import PASSWORD_ENV, MailApp, mail_settings
from tests.support.waiting import eventually


def deeply_nested(depth: int, message_id: str) -> bytes:
    """A message whose multiparts nest ``depth`` deep: Python's email package gives up on it
    (RecursionError), so it can only be quarantined."""
    head = (
        "From: deep@example.org\r\nTo: support@example.com\r\nSubject: nested\r\n"
        f"Message-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n"
    ).encode()
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth)
    )
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return head + opening + b"Content-Type: text/plain\r\n\r\nhello" + closing


def all_seen(dovecot: Dovecot, login: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await dovecot.uids(login, criteria="UNSEEN") == []

    return check


async def inbound_keys(uow_factory: UnitOfWorkFactory) -> list[str]:
    async with uow_factory() as uow:
        rows = await uow.session.scalars(
            select(EmailMessage.message_key).where(EmailMessage.direction == Direction.INBOUND)
        )
        return sorted(rows)


async def test_mail_is_parsed_in_worker_processes_and_what_breaks_the_parser_is_quarantined(
    settings: Settings,
    uow_factory: UnitOfWorkFactory,
    staff: Staff,
    dovecot: Dovecot,
    smtp_sink: SmtpSink,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    login = "workers-" + secrets.token_hex(4)
    keys = [f"worker-{n}@example.org" for n in range(5)]
    mails = [make_mail(subject=f"order {n}", message_id=key) for n, key in enumerate(keys)]
    deep = deeply_nested(3000, "deep@example.org")
    await dovecot.append(login, mails[0], mails[1], deep, mails[2], mails[3], mails[4])

    def parsed_here(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("parsed in the service's own process")

    # Only the workers parse: they are fresh interpreters, which this patch does not reach.
    monkeypatch.setattr(imap_channel, "parse_message", parsed_here)
    monkeypatch.setenv(PASSWORD_ENV, dovecot.password)
    configured = mail_settings(
        settings, dovecot, smtp_sink, login, staff.red.id, tmp_path, parse_processes=1, batch_size=2
    )
    async with TestClient(TestServer(create_app(configured))) as client:

        async def all_stored() -> bool:
            return await inbound_keys(uow_factory) == sorted(keys)

        await eventually(all_stored, timeout=60, what="the five messages are stored")
        admin = await MailApp(client, login).sign_in(staff.admin)

        async def quarantined() -> list[dict[str, Any]]:
            resp = await admin.get("/api/v1/email-quarantine")
            assert resp.status == 200, await resp.text()
            return list((await resp.json())["items"])

        (item,) = await eventually(quarantined, what="the message the parser gave up on is quarantined")
        assert item["mailbox"] == "support" and "RecursionError" in item["error"], item
        raw = await admin.get(item["raw_url"])
        assert raw.status == 200 and await raw.read() == deep
        await eventually(all_seen(dovecot, login), what="the mailbox moved past it")
        assert multiprocessing.active_children(), "no worker process parsed the mail"
    assert multiprocessing.active_children() == []  # the workers stop with the service
    assert await inbound_keys(uow_factory) == sorted(keys)  # each once


async def test_a_connection_dropped_in_the_middle_of_a_fetch_loses_and_doubles_nothing(
    dovecot: Dovecot, uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> None:
    login = "dropped-" + secrets.token_hex(4)
    keys = [f"dropped-{n}@example.org" for n in range(7)]
    await dovecot.append(login, *(make_mail(subject=f"order {n}", message_id=k) for n, k in enumerate(keys)))
    proxy = ImapProxy(dovecot.host, dovecot.port)
    await proxy.start()
    bodies_seen = 0
    dropped = False

    async def drop_after_two_bodies(response: bytes) -> bool:
        """Once: two messages of the first batch through, then the connection is gone."""
        nonlocal bodies_seen, dropped
        if b"BODY[] {" in response.upper():
            bodies_seen += 1
        if bodies_seen == 2 and not dropped:
            dropped = True
            return False
        return True

    proxy.on_response = drop_after_two_bodies
    account = ImapAccount(
        name="support", host="127.0.0.1", port=proxy.port, tls="none", login=login, password=dovecot.password
    )
    policy = EmailPolicy(
        secret=b"drop-test-secret",
        domain="example.com",
        our_addresses=frozenset({"support@example.com"}),
        sla=SlaPolicy(),
    )
    watcher = MailboxWatcher(
        account,
        EmailIntake(uow_factory, MailboxPolicy(name="support", address="support@example.com"), policy),
        ContentStore(tmp_path),
        # The drop fails the FETCH at once: the command timeout is far longer than the wait below.
        WatchOptions(batch_size=3, backoff_min=0.05, backoff_max=0.2, timeout=60),
    )
    task = asyncio.create_task(watcher.run())
    try:

        async def all_in() -> bool:
            return await inbound_keys(uow_factory) == sorted(keys)

        await eventually(all_in, timeout=30, what="every message is stored after the reconnect")
        await eventually(all_seen(dovecot, login), what="every message is flagged seen")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await proxy.close()
    assert dropped and bodies_seen > 2  # in the middle of the first FETCH, with more to come
    assert watcher.failures >= 1
    assert sum(c.name == "LOGIN" for c in proxy.commands) >= 2  # it connected again
    assert await inbound_keys(uow_factory) == sorted(keys)  # each message once


async def test_a_connection_dropped_during_idle_is_noticed_at_once(
    dovecot: Dovecot, uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> None:
    """No push can come over a dropped connection: the watcher reconnects at once instead of
    waiting out the IDLE (a minute here) and the command timeout (another)."""
    login = "idle-drop-" + secrets.token_hex(4)
    await dovecot.append(login, make_mail(subject="first", message_id="idle-drop-1@example.org"))
    proxy = ImapProxy(dovecot.host, dovecot.port)
    await proxy.start()
    idles = 0

    async def drop_the_first_idle(response: bytes) -> bool:
        nonlocal idles
        if response.startswith(b"+ "):  # the server's go-ahead for IDLE
            idles += 1
            return idles != 1
        return True

    proxy.on_response = drop_the_first_idle
    account = ImapAccount(
        name="support", host="127.0.0.1", port=proxy.port, tls="none", login=login, password=dovecot.password
    )
    policy = EmailPolicy(
        secret=b"idle-drop-secret",
        domain="example.com",
        our_addresses=frozenset({"support@example.com"}),
        sla=SlaPolicy(),
    )
    watcher = MailboxWatcher(
        account,
        EmailIntake(uow_factory, MailboxPolicy(name="support", address="support@example.com"), policy),
        ContentStore(tmp_path),
        WatchOptions(backoff_min=0.05, backoff_max=0.2, idle_seconds=60, timeout=60),
    )
    task = asyncio.create_task(watcher.run())
    try:

        async def dropped() -> bool:
            return idles >= 1 and watcher.failures >= 1

        await eventually(dropped, timeout=20, what="the first IDLE is dropped and noticed")
        await dovecot.append(login, make_mail(subject="second", message_id="idle-drop-2@example.org"))

        async def both_in() -> bool:
            return await inbound_keys(uow_factory) == ["idle-drop-1@example.org", "idle-drop-2@example.org"]

        await eventually(both_in, timeout=20, what="mail after the drop is stored over a new connection")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await proxy.close()
    assert sum(c.name == "LOGIN" for c in proxy.commands) >= 2
