"""`contact-center serve` killed (SIGKILL) inside a batch of mail and started again: every message
is stored once, opens one ticket and gets one acknowledgment; the mailbox ends flagged or moved.

The service runs as its own process with batch size 8 over 30 messages. The crash points are
chosen from outside, on the wire, never by code in the service:

- after the FETCH of bodies: a proxy between the service and Dovecot kills the service as soon
  as it has forwarded the tagged completion of the second body FETCH;
- after parse, before commit: as the service asks for the third batch's bodies, the test takes
  the database's write lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``LOCK TABLE
  email_mailbox_states IN EXCLUSIVE MODE``, so a batch's writes go through and it waits at its
  checkpoint, the last statement before COMMIT). It kills the service once the raw bytes of every
  message of that batch are in the content store (the parser writes them there) and, on
  PostgreSQL, once a batch waits for the lock. The lock only delays; no commit can slip in;
- after commit, before the flag or move: the proxy holds back the second ``UID STORE`` (or
  ``UID MOVE``) and kills the service instead of forwarding it;
- during the SMTP hand-over of an acknowledgment: see :func:`test_killed_while_handing_an_acknowledgment_to_smtp`;
- once the SMTP server took an acknowledgment, as the service ends the session: see
  :func:`test_killed_once_the_smtp_server_took_an_acknowledgment`.

What "exactly once" means for SMTP: the outbox claims a message (status ``sending`` with a lease
of :attr:`RetryPolicy.lease_seconds`), hands it over and marks it sent. A sender killed after the
server took the message (it answered, or would have answered, 250 to the end of DATA) but before
the row was marked sent cannot know whether it was taken; SMTP has no way to ask. The sender
marks it sent in one commit as soon as the 250 arrives, before it ends the session, so that
window is one commit long. When the lease
ends the message is sent again with the same Message-ID, Date and body, so a receiver that drops
repeated Message-IDs sees it once. Messages are handed over one at a time, so a crash repeats at
most one message; one the server had not taken yet arrives exactly once. The tests move the
lease's end back instead of waiting 300 s: it is the time another instance would wait before
taking over a message claimed by a process that went silent.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any, Literal

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from channels.email.content_store import ContentStore
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import (
    EmailKind,
    EmailMailboxState,
    EmailMessage,
    EmailStatus,
    OutboxEntry,
    OutboxStatus,
    Ticket,
)
from crm_core.services.email_outbound import RetryPolicy
from crm_core.types import Direction
from tests.conftest import isolated_settings
from tests.email_servers import Dovecot, ReceivedMail, SmtpSink, make_mail
from tests.support.imap_proxy import Completion, ImapCommand, ImapProxy
from tests.support.service_process import ServiceProcess, service_environment, write_settings
from tests.support.waiting import eventually, free_port, until

MESSAGES = 30
BATCH = 8
PROCESSED = "Processed"


def key_of(uid: int) -> str:
    """The Message-ID of the message with ``uid`` (the mailbox is new: UIDs count from 1)."""
    return f"crash-{uid}@example.org"


def mail(uid: int) -> bytes:
    return make_mail(sender=f"customer{uid}@example.org", subject=f"Order {uid}", message_id=key_of(uid))


def batch_of(index: int) -> range:
    """The UIDs of the ``index``-th batch (from 1)."""
    return range((index - 1) * BATCH + 1, min(index * BATCH, MESSAGES) + 1)


@dataclass
class CrashingSink(SmtpSink):
    """An SMTP sink that kills the service inside its ``crash_at``-th DATA, before answering it:
    after taking the message (``accept``: a server that had queued it when the connection
    dropped) or not."""

    crash_at: int = 0
    accept: bool = False
    # Kill at the QUIT that follows the ``quit_crash_at``-th message taken (0: never).
    quit_crash_at: int = 0
    service: ServiceProcess | None = None
    datas: int = 0
    crashed_on: str | None = None  # the Message-ID being handed over at the kill

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.datas += 1
        if self.datas != self.crash_at or self.service is None:
            return await super().handle_DATA(server, session, envelope)
        raw = bytes(envelope.original_content or envelope.content)
        self.crashed_on = message_id(raw)
        if self.accept:
            self.received.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), raw))
        self.service.kill()
        return "250 OK" if self.accept else "451 4.3.0 Connection lost before the message was taken"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        taken = len(self.received)
        if self.quit_crash_at and taken == self.quit_crash_at and self.service is not None:
            self.crashed_on = message_id(self.received[-1].raw)
            self.service.kill()
        return "221 Bye"


def message_id(raw: bytes) -> str:
    return str(message_from_bytes(raw)["Message-ID"]).strip().strip("<>")


@dataclass
class State:
    """What the database holds."""

    inbound: list[str]
    tickets: int
    acks: dict[str, EmailMessage]  # by Message-ID
    checkpoint: int

    @property
    def sending(self) -> set[str]:
        """Acknowledgments claimed by a sender that never said how the hand-over ended."""
        return {mid for mid, row in self.acks.items() if row.status == EmailStatus.SENDING}


async def state_of(uow_factory: UnitOfWorkFactory) -> State:
    async with uow_factory() as uow:
        s = uow.session
        inbound = list(
            await s.scalars(
                select(EmailMessage.message_key).where(EmailMessage.direction == Direction.INBOUND)
            )
        )
        tickets = await s.scalar(select(func.count()).select_from(Ticket))
        acks = list(
            await s.scalars(select(EmailMessage).where(EmailMessage.kind == EmailKind.ACKNOWLEDGMENT))
        )
        mailbox = await s.get(EmailMailboxState, "support")
    return State(
        inbound=inbound,
        tickets=int(tickets or 0),
        acks={str(row.message_id): row for row in acks},
        checkpoint=mailbox.last_uid if mailbox is not None else 0,
    )


def assert_consistent_after_kill(state: State) -> None:
    """A batch, its tickets, its acknowledgments and its checkpoint commit together: what is
    stored is exactly the messages up to the checkpoint, and nothing of a batch cut short."""
    assert sorted(state.inbound) == sorted(key_of(uid) for uid in range(1, state.checkpoint + 1))
    assert state.tickets == len(state.inbound) == len(state.acks), state


async def end_send_leases(uow_factory: UnitOfWorkFactory) -> None:
    """What :attr:`RetryPolicy.lease_seconds` of waiting does: the claims of the killed process
    run out (their end moves back by the lease's length)."""
    lease = timedelta(seconds=RetryPolicy().lease_seconds)
    async with uow_factory() as uow:
        for row in await uow.session.scalars(
            select(OutboxEntry).where(OutboxEntry.status == OutboxStatus.CLAIMED)
        ):
            assert row.next_attempt_at is not None
            row.next_attempt_at -= lease
        await uow.commit()


@dataclass
class Rig:
    """Dovecot with the 30 messages, the proxy in front of it, the SMTP sink and the service."""

    login: str
    after: Literal["seen", "move"]
    dovecot: Dovecot
    proxy: ImapProxy
    sink: CrashingSink
    service: ServiceProcess
    uow_factory: UnitOfWorkFactory
    store: ContentStore
    database_url: str
    interrupted: set[str] = field(default_factory=set)

    async def killed(self, what: str, timeout: float = 30) -> State:
        """Wait for the kill the crash point makes, then check what it left behind."""
        with self.service.explained():
            await until(lambda: not self.service.running, timeout, f"the service is killed {what}")
        assert not self.proxy.errors, self.proxy.errors
        self.proxy.on_command = self.proxy.on_completion = None
        self.sink.service = None
        state = await state_of(self.uow_factory)
        assert_consistent_after_kill(state)
        self.interrupted = state.sending
        return state

    async def restart_and_finish(self) -> State:
        await end_send_leases(self.uow_factory)
        await self.service.start()

        async def everything_done() -> bool:
            state = await state_of(self.uow_factory)
            sent = [r for r in state.acks.values() if r.status == EmailStatus.SENT]
            return len(state.inbound) == MESSAGES and len(sent) == MESSAGES

        with self.service.explained():
            await eventually(everything_done, 60, "all mail stored and acknowledged after the restart")
            await eventually(self.mailbox_done, 30, "the mailbox flags or moves every message")
        await self.service.stop()
        return await state_of(self.uow_factory)

    async def mailbox_done(self) -> bool:
        if self.after == "seen":
            return await self.dovecot.uids(self.login, criteria="UNSEEN") == []
        inbox = await self.dovecot.uids(self.login)
        return inbox == [] and len(await self.dovecot.uids(self.login, folder=PROCESSED)) == MESSAGES

    def assert_exactly_once(self, state: State) -> None:
        """One message, one ticket and one acknowledgment row per mail; each acknowledgment
        reached the SMTP server once, except at most one whose hand-over the kill cut short
        after the server took it, which came a second time with the same Message-ID."""
        assert Counter(state.inbound) == Counter(key_of(uid) for uid in range(1, MESSAGES + 1))
        assert state.tickets == MESSAGES
        assert len(state.acks) == MESSAGES
        assert len({row.ticket_id for row in state.acks.values()}) == MESSAGES
        assert all(row.status == EmailStatus.SENT for row in state.acks.values())
        delivered = Counter(message_id(m.raw) for m in self.sink.received)
        assert set(delivered) == set(state.acks)
        repeated = {mid: n for mid, n in delivered.items() if n > 1}
        assert len(repeated) <= 1 and set(repeated) <= self.interrupted, (repeated, self.interrupted)
        assert all(n == 2 for n in repeated.values()), repeated
        for mid in repeated:
            copies = [m.message for m in self.sink.received if message_id(m.raw) == mid]
            assert len({(c["Date"], c["Subject"], c.get_content()) for c in copies}) == 1
        recipients = Counter(r for m in self.sink.received for r in m.recipients)
        assert set(recipients) == {f"customer{uid}@example.org" for uid in range(1, MESSAGES + 1)}


@pytest_asyncio.fixture(loop_scope="session")
async def rig(
    request: pytest.FixtureRequest,
    settings: Settings,
    uow_factory: UnitOfWorkFactory,
    dovecot: Dovecot,
    tmp_path: Path,
) -> AsyncIterator[Rig]:
    after: Literal["seen", "move"] = getattr(request, "param", "seen")
    login = "crash-" + secrets.token_hex(4)
    await dovecot.append(login, *(mail(uid) for uid in range(1, MESSAGES + 1)))
    if after == "move":
        await dovecot.create_folder(login, PROCESSED)
    proxy = ImapProxy(dovecot.host, dovecot.port)
    await proxy.start()
    sink = CrashingSink("127.0.0.1", free_port())
    sink.start()
    port = free_port()
    config = write_settings(
        tmp_path / "settings.toml",
        {
            "email": {
                "mailboxes": [
                    {
                        "name": "support",
                        "address": "support@example.com",
                        "display_name": "Example Support",
                        "imap_host": "127.0.0.1",
                        "imap_port": proxy.port,
                        "imap_tls": "none",
                        "login": login,
                        "password_env": "CC_TEST_IMAP_PASSWORD",
                        "after": after,
                        "move_to": PROCESSED if after == "move" else "",
                        "acknowledgments": {
                            "en": {
                                "subject": "Got it {{ subject_token }}",
                                "body": "Ticket {{ ticket_number }}.",
                            }
                        },
                    }
                ],
                "smtp": {"host": sink.host, "port": sink.port, "tls": "none"},
                "attachment_dir": str(tmp_path / "mail"),
                "batch_size": BATCH,
                "poll_seconds": 0.5,
                "outbox_poll_seconds": 0.1,
                "reconnect_min_seconds": 0.1,
                "reconnect_max_seconds": 0.5,
            }
        },
    )
    env = service_environment(settings, port, isolated_settings(settings).redis.key_prefix)
    env["CC_TEST_IMAP_PASSWORD"] = dovecot.password
    service = ServiceProcess(config, env, port, tmp_path / "service.log")
    sink.service = service
    try:
        yield Rig(
            login,
            after,
            dovecot,
            proxy,
            sink,
            service,
            uow_factory,
            ContentStore(tmp_path / "mail"),
            settings.database.url,
        )
    finally:
        service.kill()
        sink.stop()
        await proxy.close()


async def test_killed_after_the_bodies_were_fetched(rig: Rig) -> None:
    """Dovecot has sent the second batch's bodies (the FETCH is complete at the service) and the
    service dies before storing them: they are fetched again and stored once."""
    body_fetches: list[Completion] = []

    async def kill_after_second_body_fetch(done: Completion) -> None:
        if done.command.fetches_bodies:
            body_fetches.append(done)
            if len(body_fetches) == 2:
                rig.service.kill()

    rig.proxy.on_completion = kill_after_second_body_fetch
    await rig.service.start()
    await rig.killed("after the second batch's bodies were fetched")
    assert body_fetches[1].status == "OK" and len(body_fetches[1].bodies) == BATCH
    rig.assert_exactly_once(await rig.restart_and_finish())


class WriteLock:
    """The database's write lock held by the test: SQLite's own (``BEGIN IMMEDIATE``), or on
    PostgreSQL the checkpoint table's, which a batch's last statement before COMMIT needs."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self.sqlite_path = url.database if url.get_backend_name() == "sqlite" else None
        self.pg_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any = None

    async def take(self) -> None:
        if self.sqlite_path is not None:
            self._sqlite = await asyncio.to_thread(self._sqlite_lock, self.sqlite_path)
        else:
            self._pg = await asyncpg.connect(self.pg_dsn)
            await self._pg.execute("BEGIN")
            await self._pg.execute("LOCK TABLE email_mailbox_states IN EXCLUSIVE MODE")

    @staticmethod
    def _sqlite_lock(path: str) -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")
        return conn

    async def waited_on(self) -> bool:
        """Whether a transaction of the service waits for the lock (PostgreSQL only; SQLite
        shows no such thing: True)."""
        if self._pg is None:
            return True
        waiting = await self._pg.fetchval(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'email_mailbox_states'::regclass"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return bool(waiting)

    async def release(self) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("ROLLBACK")
            self._sqlite.close()
            self._sqlite = None
        if self._pg is not None:
            await self._pg.execute("ROLLBACK")
            await self._pg.close()
            self._pg = None


async def test_killed_after_parsing_before_the_commit(rig: Rig) -> None:
    """The third batch is parsed (its raw messages are in the content store) while the test holds
    the write lock taken as that batch was asked for, so no batch open by then can commit; the
    kill loses the parsed work and rolls back the open transaction. All of it is redone once."""
    lock = WriteLock(rig.database_url)
    body_requests: list[ImapCommand] = []
    third: list[Completion] = []

    async def lock_before_third_body_fetch(command: ImapCommand) -> bool:
        if command.fetches_bodies:
            body_requests.append(command)
            if len(body_requests) == 3:
                await lock.take()
        return True

    async def keep_third_bodies(done: Completion) -> None:
        if len(body_requests) == 3 and done.command is body_requests[2]:
            third.append(done)

    rig.proxy.on_command = lock_before_third_body_fetch
    rig.proxy.on_completion = keep_third_bodies
    try:
        await rig.service.start()
        await until(lambda: third, 30, "the third batch's bodies are fetched")
        assert len(third[0].bodies) == BATCH
        shas = [hashlib.sha256(raw).hexdigest() for raw in third[0].bodies]
        await until(lambda: all(rig.store.exists(sha) for sha in shas), 30, "the third batch is parsed")
        await eventually(lock.waited_on, 30, "a batch waits at its checkpoint")
        rig.service.kill()
        at_kill = await rig.killed("after parsing, before the commit")
    finally:
        await lock.release()
    assert not set(at_kill.inbound) & {key_of(uid) for uid in batch_of(3)}
    rig.assert_exactly_once(await rig.restart_and_finish())


@pytest.mark.parametrize("rig", ["seen", "move"], indirect=True)
async def test_killed_after_the_commit_before_the_flag_or_move(rig: Rig) -> None:
    """The second batch is committed with its checkpoint; its ``UID STORE`` (or ``UID MOVE``)
    never reaches Dovecot. After the restart the stored messages are flagged (moved) without
    being stored again."""
    flags: list[ImapCommand] = []

    async def hold_second_flag(command: ImapCommand) -> bool:
        if command.name not in ("UID STORE", "UID MOVE"):
            return True
        flags.append(command)
        if len(flags) < 2:
            return True
        rig.service.kill()
        return False

    rig.proxy.on_command = hold_second_flag
    await rig.service.start()
    at_kill = await rig.killed("before the second batch is flagged or moved")
    assert at_kill.checkpoint == max(batch_of(2))
    if rig.after == "seen":
        assert await rig.dovecot.uids(rig.login, criteria="UNSEEN") == list(range(BATCH + 1, MESSAGES + 1))
    else:
        assert await rig.dovecot.uids(rig.login) == list(range(BATCH + 1, MESSAGES + 1))
    assert [c.name for c in rig.proxy.held] == ["UID STORE" if rig.after == "seen" else "UID MOVE"]
    rig.assert_exactly_once(await rig.restart_and_finish())


@pytest.mark.parametrize("accepted", [False, True], ids=["not-taken", "taken"])
async def test_killed_while_handing_an_acknowledgment_to_smtp(rig: Rig, accepted: bool) -> None:
    """The SMTP server kills the service inside the fifth DATA, before its reply. Not taken: the
    acknowledgment arrives once, after the restart. Taken (queued, and the 250 lost with the
    connection): it arrives twice with the same Message-ID, and no other message repeats."""
    rig.sink.crash_at = 5
    rig.sink.accept = accepted
    await rig.service.start()
    await rig.killed("inside the fifth DATA")
    interrupted = rig.sink.crashed_on
    assert interrupted is not None and interrupted in rig.interrupted
    final = await rig.restart_and_finish()
    rig.assert_exactly_once(final)
    copies = sum(message_id(m.raw) == interrupted for m in rig.sink.received)
    assert copies == (2 if accepted else 1)
    assert final.acks[interrupted].attempts == 2


async def test_killed_once_the_smtp_server_took_an_acknowledgment(rig: Rig) -> None:
    """The server answered 250 to the fifth DATA and the service is killed as it says QUIT: the
    acceptance was committed before, so the restarted service sends nothing again."""
    rig.sink.quit_crash_at = 5
    await rig.service.start()
    at_kill = await rig.killed("as it ends the fifth SMTP session")
    taken = rig.sink.crashed_on
    assert taken is not None and at_kill.acks[taken].status == EmailStatus.SENT
    assert taken not in rig.interrupted
    final = await rig.restart_and_finish()
    rig.assert_exactly_once(final)
    delivered = Counter(message_id(m.raw) for m in rig.sink.received)
    assert set(delivered.values()) == {1}, delivered
    assert final.acks[taken].attempts == 1
