"""Real mail servers for the email tests: Dovecot (IMAP) from a throw-away config, aiosmtpd (SMTP).

Registered as a pytest plugin from tests/conftest.py. Without Dovecot installed, the tests that
need it are skipped with the command that installs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aioimaplib import IMAP4

DOVECOT = os.environ.get("DOVECOT_BINARY", "/usr/sbin/dovecot")
INSTALL_HINT = "Dovecot is not installed: run `apt-get install -y dovecot-imapd`"
IMAP_PASSWORD = "imap-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dovecot_config(root: Path, port: int) -> str:
    return f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
first_valid_gid = 1
passdb {{
  driver = static
  args = password={IMAP_PASSWORD}
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
"""


@dataclass
class Dovecot:
    """A running Dovecot; every login works with :data:`IMAP_PASSWORD`."""

    root: Path
    port: int
    host: str = "127.0.0.1"
    password: str = IMAP_PASSWORD

    def stop(self) -> None:
        pid_file = self.root / "run" / "master.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().strip())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    async def connect(self, login: str, folder: str = "INBOX") -> IMAP4:
        client = IMAP4(host=self.host, port=self.port, timeout=30)
        await client.wait_hello_from_server()
        await client.login(login, self.password)
        await client.select(folder)
        return client

    async def append(self, login: str, *messages: bytes, folder: str = "INBOX") -> None:
        client = IMAP4(host=self.host, port=self.port, timeout=30)
        await client.wait_hello_from_server()
        await client.login(login, self.password)
        try:
            for raw in messages:
                response = await client.append(raw, mailbox=folder)
                assert response.result == "OK", response
        finally:
            await client.logout()

    async def create_folder(self, login: str, folder: str) -> None:
        client = IMAP4(host=self.host, port=self.port, timeout=30)
        await client.wait_hello_from_server()
        await client.login(login, self.password)
        try:
            await client.create(folder)
        finally:
            await client.logout()

    async def uids(self, login: str, folder: str = "INBOX", criteria: str = "ALL") -> list[int]:
        client = await self.connect(login, folder)
        try:
            response = await client.uid_search(criteria, charset=None)
            assert response.result == "OK", response
            return [int(u) for u in response.lines[0].split()] if response.lines[0].strip() else []
        finally:
            await client.logout()


def start_dovecot(root: Path) -> Dovecot:
    if not Path(DOVECOT).exists():
        pytest.skip(INSTALL_HINT)
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("mail", "home"):
        shutil.chown(root / sub, "dovecot", "dovecot")
    root.chmod(0o755)
    port = free_port()
    config = root / "dovecot.conf"
    config.write_text(_dovecot_config(root, port))
    # The daemon keeps its standard streams: a pipe here would never reach end-of-file.
    errors = root / "start.err"
    with errors.open("wb") as err:
        code = subprocess.call([DOVECOT, "-c", str(config)], stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    if code != 0:
        raise RuntimeError(f"dovecot did not start: {errors.read_text()}")
    server = Dovecot(root=root, port=port)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return server
        time.sleep(0.05)
    server.stop()
    log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
    raise RuntimeError(f"dovecot did not listen on {port}: {log[-2000:]}")


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One Dovecot per test run; tests use their own logins (each login is its own mailbox).

    Its directory is under the system temp dir: the mail processes run as the dovecot user, who
    cannot enter pytest's private (0700) temp tree.
    """
    root = Path(tempfile.mkdtemp(prefix="cc-dovecot-"))
    try:
        server = start_dovecot(root)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class ReceivedMail:
    envelope_from: str
    recipients: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpSink:
    """An aiosmtpd server on loopback recording every message; ``reply`` makes it refuse DATA."""

    host: str
    port: int
    received: list[ReceivedMail] = field(default_factory=list)
    reply: str | None = None
    controller: Any = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.reply is not None:
            return self.reply
        raw = envelope.original_content or envelope.content
        self.received.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), bytes(raw)))
        self.arrived.set()
        return "250 OK"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname=self.host, port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    async def wait_for(self, count: int, timeout: float = 15) -> list[ReceivedMail]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} messages, got {len(self.received)}")
            await asyncio.sleep(0.05)
        return self.received


@pytest_asyncio.fixture(loop_scope="session")
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink("127.0.0.1", free_port())
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def make_mail(
    *,
    sender: str = "ana@example.org",
    to: str = "support@example.com",
    subject: str = "Help please",
    body: str = "Something is broken.",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict[str, str] | None = None,
    cc: str | None = None,
    without_message_id: bool = False,
) -> bytes:
    """A well-formed message built with the email package (tests and the benchmark)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    if not without_message_id:
        msg["Message-ID"] = f"<{message_id or os.urandom(8).hex() + '@' + sender.rpartition('@')[2]}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = references
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


async def _ingest_forever(args: Any) -> None:
    """Run one mailbox watcher against the given database until killed (a separate process)."""
    from channels.email.content_store import ContentStore
    from channels.email.imap import ImapAccount, MailboxWatcher, WatchOptions
    from crm_core.db import UnitOfWorkFactory, create_engine
    from crm_core.services.email_ingest import EmailPolicy, MailboxPolicy
    from crm_core.services.tickets import SlaPolicy

    class _NoEvents:
        async def publish(self, events: Any) -> None:
            return None

    engine = create_engine(args.database_url)
    account = ImapAccount("support", "127.0.0.1", args.port, "none", args.login, IMAP_PASSWORD)
    policy = EmailPolicy(
        secret=b"kill-test-secret",
        domain="example.com",
        our_addresses=frozenset({"support@example.com"}),
        sla=SlaPolicy(),
        acks_per_hour=1000,
    )
    watcher = MailboxWatcher(
        account,
        UnitOfWorkFactory(engine, _NoEvents()),
        MailboxPolicy("support", "support@example.com"),
        policy,
        ContentStore(Path(args.store)),
        WatchOptions(batch_size=args.batch, poll_seconds=0.1, idle=False, backoff_min=0.1, backoff_max=0.5),
    )
    await watcher.run()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="ingest one Dovecot mailbox until killed")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--login", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--batch", type=int, default=10)
    asyncio.run(_ingest_forever(parser.parse_args()))
