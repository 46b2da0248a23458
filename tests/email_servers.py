"""Real mail servers for the email tests: Dovecot (IMAP) from a throw-away config, aiosmtpd (SMTP).

Registered as a pytest plugin from tests/conftest.py. Without Dovecot installed, the tests that
need it are skipped with the command that installs it. The TLS variants use a throw-away CA made
with the ``openssl`` command (:func:`make_mail_pki`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import pytest
import pytest_asyncio
from aioimaplib import IMAP4

from tests.support.waiting import free_port

DOVECOT = os.environ.get("DOVECOT_BINARY", "/usr/sbin/dovecot")
INSTALL_HINT = "Dovecot is not installed: run `apt-get install -y dovecot-imapd`"
IMAP_PASSWORD = "imap-secret"
OPENSSL = os.environ.get("OPENSSL_BINARY", "/usr/bin/openssl")


def _dovecot_ssl(imaps_port: int, pki: MailPki | None) -> tuple[str, str]:
    """The global ``ssl`` settings and the imaps listener's body: TLS off, or STARTTLS on the plain
    listener and implicit TLS on ``imaps_port``."""
    if pki is None:
        return "ssl = no", "port = 0"
    settings = (
        f"ssl = yes\nssl_cert = <{pki.cert_file}\nssl_key = <{pki.key_file}\nssl_min_protocol = TLSv1.2"
    )
    return settings, f"address = 127.0.0.1\n    port = {imaps_port}\n    ssl = yes"


def _dovecot_config(root: Path, port: int, imaps_port: int = 0, pki: MailPki | None = None) -> str:
    ssl_settings, imaps = _dovecot_ssl(imaps_port, pki)
    return f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl_settings}
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
    {imaps}
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


def _running(pid: int) -> bool:
    """Whether ``pid`` is alive: not gone, and not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the process itself
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Dovecot:
    """A running Dovecot; every login works with :data:`IMAP_PASSWORD`."""

    root: Path
    port: int
    host: str = "127.0.0.1"
    password: str = IMAP_PASSWORD
    # With TLS: the implicit-TLS port (the plain port then offers STARTTLS) and the CA to trust.
    imaps_port: int = 0
    ca_file: Path | None = None

    def stop(self) -> None:
        """Kill the server and its processes outright: a throw-away server has nothing to save,
        and Dovecot's own shutdown (SIGTERM) takes about a second. The master leads its process
        group; once killed it is only waiting to be reaped by init (a zombie), which counts as gone."""
        pid_file = self.root / "run" / "master.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().strip())
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.02)

    def tls_logins(self, login: str) -> int:
        """How many logins of ``login`` the server saw over TLS (from its log)."""
        log = self.root / "dovecot.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        return sum(f"Login: user=<{login}>" in line and ", TLS," in line for line in lines)

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


def start_dovecot(root: Path, pki: MailPki | None = None) -> Dovecot:
    """Dovecot on a free port; with ``pki`` also IMAPS on a second one and STARTTLS on the first."""
    if not Path(DOVECOT).exists():
        pytest.skip(INSTALL_HINT)
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("mail", "home"):
        shutil.chown(root / sub, "dovecot", "dovecot")
    root.chmod(0o755)
    port = free_port()
    imaps_port = free_port() if pki is not None else 0
    config = root / "dovecot.conf"
    config.write_text(_dovecot_config(root, port, imaps_port, pki))
    # The daemon keeps its standard streams: a pipe here would never reach end-of-file.
    errors = root / "start.err"
    with errors.open("wb") as err:
        code = subprocess.call([DOVECOT, "-c", str(config)], stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    if code != 0:
        raise RuntimeError(f"dovecot did not start: {errors.read_text()}")
    server = Dovecot(
        root=root, port=port, imaps_port=imaps_port, ca_file=pki.ca_file if pki is not None else None
    )
    for listening in (port, imaps_port):
        if listening and not _wait_listening(listening):
            server.stop()
            log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
            raise RuntimeError(f"dovecot did not listen on {listening}: {log[-2000:]}")
    return server


def _wait_listening(port: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
        time.sleep(0.05)
    return False


@dataclass(frozen=True)
class MailPki:
    """A throw-away CA and the server certificates it signed (PEM files)."""

    ca_file: Path
    cert_file: Path  # for localhost and 127.0.0.1
    key_file: Path
    other_cert_file: Path  # for mail.example.test only: a host name that does not match
    other_key_file: Path

    def server_context(self, *, other_host: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if other_host:
            context.load_cert_chain(self.other_cert_file, self.other_key_file)
        else:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _openssl(*args: str | Path) -> None:
    result = subprocess.run([OPENSSL, *map(str, args)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _server_certificate(directory: Path, name: str, ca: Path, ca_key: Path, names: str) -> tuple[Path, Path]:
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    extensions = directory / f"{name}.ext"
    extensions.write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\n"
        f"subjectAltName = {names}\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid, issuer\n"
    )
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", csr, "-subj", f"/CN={name}",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial", f"0x{os.urandom(8).hex()}",
        "-days", "2", "-sha256", "-extfile", extensions, "-out", cert,
    )  # fmt: skip
    return cert, key


def make_mail_pki(directory: Path) -> MailPki:
    """A CA valid for two days and two server certificates it signed, made with the openssl CLI."""
    if not Path(OPENSSL).exists():
        pytest.skip(f"{OPENSSL} is not installed: run `apt-get install -y openssl`")
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    _openssl(
        "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", ca_key, "-out", ca, "-days", "2", "-sha256", "-subj", "/CN=Contact Center Test CA",
        "-addext", "basicConstraints = critical, CA:TRUE",
        "-addext", "keyUsage = critical, keyCertSign, cRLSign",
    )  # fmt: skip
    cert, key = _server_certificate(directory, "localhost", ca, ca_key, "DNS:localhost, IP:127.0.0.1")
    other_cert, other_key = _server_certificate(directory, "other", ca, ca_key, "DNS:mail.example.test")
    return MailPki(ca, cert, key, other_cert, other_key)


@pytest.fixture(scope="session")
def mail_pki(tmp_path_factory: pytest.TempPathFactory) -> MailPki:
    return make_mail_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One Dovecot per test run; tests use their own logins (each login is its own mailbox).

    Its directory is under the system temp dir: the mail processes run as the dovecot user, who
    cannot enter pytest's private (0700) temp tree.
    """
    with _throwaway_dovecot("cc-dovecot-", tls=False) as server:
        yield server


@pytest.fixture(scope="session")
def dovecot_tls() -> Iterator[Dovecot]:
    """A second Dovecot with TLS: IMAPS on ``imaps_port``, STARTTLS on ``port`` (where plain logins
    still work, so the helpers need no TLS), certificates from its own throw-away CA."""
    with _throwaway_dovecot("cc-dovecot-tls-", tls=True) as server:
        yield server


@contextlib.contextmanager
def _throwaway_dovecot(prefix: str, *, tls: bool) -> Iterator[Dovecot]:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        server = start_dovecot(root, make_mail_pki(root / "pki") if tls else None)
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
    tls: bool = False  # the message came over an encrypted connection

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpSink:
    """An aiosmtpd server on loopback recording every message; ``reply`` makes it refuse DATA.

    ``tls``: "starttls" requires STARTTLS before anything else, "ssl" speaks TLS from the start;
    both with ``server_context`` (see :meth:`MailPki.server_context`).
    """

    host: str
    port: int
    received: list[ReceivedMail] = field(default_factory=list)
    reply: str | None = None
    controller: Any = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    tls: Literal["none", "starttls", "ssl"] = "none"
    server_context: ssl.SSLContext | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.reply is not None:
            return self.reply
        raw = envelope.original_content or envelope.content
        encrypted = server.transport.get_extra_info("ssl_object") is not None
        self.received.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), bytes(raw), encrypted))
        self.arrived.set()
        return "250 OK"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        tls: dict[str, Any] = {}
        if self.tls == "starttls":
            tls = {"tls_context": self.server_context, "require_starttls": True}
        elif self.tls == "ssl":
            tls = {"ssl_context": self.server_context}
        self.controller = Controller(self, hostname=self.host, port=self.port, **tls)
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
