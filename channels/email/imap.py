"""IMAP ingestion with aioimaplib: one watcher per mailbox, IDLE or polling, fetch by UID.

Each round: UID SEARCH above the checkpoint; fetch only the Message-ID headers and skip what is
already stored; fetch the remaining bodies; parse them and hand them, with the new checkpoint,
to the mailbox's intake (:class:`crm_core.email_ports.MailboxIntake`, which stores them in one
transaction); then flag, move or leave them. A crash anywhere repeats at most the last batch,
which the stored Message-IDs make harmless. The watcher speaks IMAP and MIME; what is stored,
threaded or quarantined is the intake's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import re
import ssl
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aioimaplib import IMAP4, IMAP4_SSL, STOP_WAIT_SERVER_PUSH, AioImapException, Command

from channels.email.content_store import ContentStore
from channels.email.parsing import header_message_key, parse_message
from crm_core.email_ports import InboundEmail, MailboxIntake, UnreadableMail

log = logging.getLogger(__name__)

_UID_RE = re.compile(rb"\bUID (\d+)")
_UIDVALIDITY_RE = re.compile(rb"UIDVALIDITY (\d+)")


class ImapError(Exception):
    """The server refused a command or the connection failed."""


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verifies the server's certificate and host name, against ``ca_file`` (PEM) when given,
    else against the system's trust store."""
    return ssl.create_default_context(cafile=ca_file)


@dataclass(frozen=True, slots=True)
class ImapAccount:
    name: str
    host: str
    port: int
    tls: Literal["ssl", "starttls", "none"]
    login: str
    password: str
    folder: str = "INBOX"
    after: Literal["seen", "move", "leave"] = "seen"
    move_to: str = ""
    ca_file: Path | None = None  # CA bundle to verify the server with instead of the system's

    def __repr__(self) -> str:  # the password never reaches a log line
        return f"ImapAccount({self.name!r}, {self.login}@{self.host}:{self.port}/{self.folder})"


@dataclass(frozen=True, slots=True)
class WatchOptions:
    max_attachment_bytes: int = 25 * 1024 * 1024
    batch_size: int = 50
    poll_seconds: float = 60.0
    idle: bool = True
    idle_seconds: float = 300.0
    backoff_min: float = 1.0
    backoff_max: float = 300.0
    timeout: float = 60.0
    # Worker processes parsing MIME beside the one writing to the database (0: parse inline).
    parse_processes: int = 0


def fetched_literals(lines: Sequence[Any]) -> dict[int, bytes]:
    """UID -> literal from an aioimaplib FETCH response (UID before or after the literal)."""
    found: dict[int, bytes] = {}
    for index, line in enumerate(lines):
        if not isinstance(line, bytearray) or index == 0:
            continue
        head = bytes(lines[index - 1])
        match = _UID_RE.search(head)
        if match is None and index + 1 < len(lines):
            match = _UID_RE.search(bytes(lines[index + 1]))
        if match is not None:
            found[int(match.group(1))] = bytes(line)
    return found


def _check(response: Any, what: str) -> Any:
    if response.result != "OK":
        detail = b" ".join(bytes(x) for x in response.lines[-1:]).decode("utf-8", "replace")
        raise ImapError(f"{what}: {response.result} {detail}")
    return response


class _DropWatch:
    """Told by the client library when the server's connection drops: the commands under way fail
    at once (the library would leave them waiting until their timeout, a minute by default) and
    an IDLE stops waiting for a push that cannot come."""

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol

    def __call__(self, exc: Exception | None) -> None:
        protocol = self.protocol
        for command in [protocol.pending_sync_command, *protocol.pending_async_commands.values()]:
            if command is not None:
                command.close(b"connection lost", "KO")
        protocol.idle_queue.put_nowait(STOP_WAIT_SERVER_PUSH)


def _dropped(client: IMAP4) -> bool:
    transport = client.protocol.transport
    return transport is not None and transport.is_closing()


def _close(client: IMAP4) -> None:
    """Drop a connection that never got as far as a session (a logout needs one)."""
    if client.protocol.transport is not None:
        client.protocol.transport.close()


def _uid_set(uids: Sequence[int]) -> str:
    return ",".join(str(u) for u in uids)


@dataclass
class Fetched:
    """A batch as parsed: the messages, and those that could not be parsed (raw bytes kept)."""

    parsed: list[tuple[int, InboundEmail]] = field(default_factory=list)
    failed: list[UnreadableMail] = field(default_factory=list)

    def add(self, uid: int, raw: bytes, store: ContentStore, limit: int) -> None:
        try:
            self.parsed.append((uid, parse_message(raw, store, max_attachment_bytes=limit)))
        except Exception as exc:
            log.exception("UID %s could not be parsed", uid)
            sha: str | None = None
            with contextlib.suppress(Exception):
                sha = store.put(raw)
            error = f"{type(exc).__name__}: {exc}"
            self.failed.append(UnreadableMail(uid, raw_sha256=sha, raw_size=len(raw), error=error))


def parse_batch(raws: list[tuple[int, bytes]], store_root: str, limit: int) -> Fetched:
    """Parse in a worker process (module level, so it can be sent there)."""
    store = ContentStore(Path(store_root))
    fetched = Fetched()
    for uid, raw in raws:
        fetched.add(uid, raw, store, limit)
    return fetched


class MailboxWatcher:
    """Keeps one mailbox ingested; :meth:`run` never returns and never lets an error escape."""

    def __init__(
        self, account: ImapAccount, intake: MailboxIntake, store: ContentStore, options: WatchOptions
    ) -> None:
        self.account = account
        self.intake = intake
        self.store = store
        self.options = options
        self.ingested = 0
        self.failures = 0
        self.quarantined = 0
        # What the watcher is doing: connecting, syncing, idle (waiting for the server's push),
        # polling (sleeping between looks) or reconnecting (after a failure).
        self.state = "connecting"
        # For /readyz and /metrics: the last error, and when (epoch seconds) the mailbox was last
        # looked at successfully (a search, a NOOP, or a keep-alive during IDLE).
        self.last_error: str | None = None
        self.last_poll_at: float | None = None
        self._pool: ProcessPoolExecutor | None = None

    @property
    def name(self) -> str:
        return self.account.name

    def close(self) -> None:
        """Stop the parsing processes, if any."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def run(self) -> None:
        delay = self.options.backoff_min
        while True:
            _raise_if_cancelled()
            try:
                await self._session()
                delay = self.options.backoff_min
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                self.state = "reconnecting"
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("mailbox %s: %s; reconnecting in %.0fs", self.account.name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(self.options.backoff_max, delay * 2)

    async def run_once(self) -> int:
        """Connect, ingest everything new, disconnect; returns how many messages were stored."""
        client = await self._connect()
        try:
            uidvalidity = await self._select(client)
            await self._finish_processed(client, uidvalidity)
            return await self.sync(client, uidvalidity)
        finally:
            await self._logout(client)

    async def _session(self) -> None:
        client = await self._connect()
        try:
            uidvalidity = await self._select(client)
            await self._finish_processed(client, uidvalidity)
            use_idle = self.options.idle and client.has_capability("IDLE")
            while True:
                if _dropped(client):
                    raise ImapError("the server closed the connection")
                self.state = "syncing"
                await self.sync(client, uidvalidity)
                self.last_poll_at = time.time()
                if use_idle:
                    # Mail that arrived during the last SEARCH is announced in its response
                    # (which the client library drops), not during IDLE: look once more first.
                    if await self._pending(client, uidvalidity):
                        continue
                    await self._idle(client)
                else:
                    self.state = "polling"
                    await asyncio.sleep(self.options.poll_seconds)
                    _check(await client.noop(), "NOOP")
        finally:
            await self._logout(client)

    async def _connect(self) -> IMAP4:
        account = self.account
        client: IMAP4
        if account.tls == "ssl":
            client = IMAP4_SSL(
                host=account.host,
                port=account.port,
                timeout=self.options.timeout,
                ssl_context=tls_context(account.ca_file),
            )
        else:
            client = IMAP4(host=account.host, port=account.port, timeout=self.options.timeout)
        # Set before the connection is made (a task the client started); IMAP4_SSL takes no callback.
        client.protocol.conn_lost_cb = _DropWatch(client.protocol)
        try:
            await self._open(client)
        except BaseException:
            _close(client)
            raise
        return client

    async def _open(self, client: IMAP4) -> None:
        account = self.account
        try:
            await client.wait_hello_from_server()
            if account.tls == "starttls":
                await self._starttls(client)
        except ssl.SSLCertVerificationError as exc:
            raise ImapError(
                f"{account.host}:{account.port}: TLS certificate not accepted: {exc.verify_message}"
            ) from exc
        except ssl.SSLError as exc:
            raise ImapError(f"{account.host}:{account.port}: TLS failed: {exc}") from exc
        response = await client.login(account.login, account.password)
        if response.result != "OK":
            raise ImapError(f"login as {account.login} refused")

    async def _starttls(self, client: IMAP4) -> None:
        """Upgrade the plain connection (RFC 3501 6.2.1); capabilities are asked for again."""
        protocol = client.protocol
        if not client.has_capability("STARTTLS"):
            raise ImapError(f"{self.account.host}:{self.account.port} does not offer STARTTLS")
        timeout = self.options.timeout
        command = Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        _check(await asyncio.wait_for(protocol.execute(command), timeout), "STARTTLS")
        if protocol.incomplete_line:
            # Bytes sent before the handshake would be read as if they had come over TLS.
            raise ImapError("STARTTLS: unexpected data before the TLS handshake")
        transport = await asyncio.get_running_loop().start_tls(
            protocol.transport,
            protocol,
            tls_context(self.account.ca_file),
            server_hostname=self.account.host,
            ssl_handshake_timeout=timeout,
        )
        protocol.transport = transport
        await asyncio.wait_for(protocol.capability(), timeout)

    async def _select(self, client: IMAP4) -> int:
        response = _check(await client.select(self.account.folder), f"SELECT {self.account.folder}")
        for line in response.lines:
            match = _UIDVALIDITY_RE.search(bytes(line))
            if match:
                return int(match.group(1))
        raise ImapError(f"SELECT {self.account.folder} gave no UIDVALIDITY")

    async def _logout(self, client: IMAP4) -> None:
        if _dropped(client):  # nobody is there to answer a LOGOUT
            return
        with contextlib.suppress(TimeoutError, AioImapException, OSError, AttributeError):
            await asyncio.wait_for(client.logout(), 5)

    async def _idle(self, client: IMAP4) -> None:
        idle = await client.idle_start(timeout=self.options.idle_seconds)
        self.state = "idle"
        try:
            while client.has_pending_idle():
                _raise_if_cancelled()
                push = await client.wait_server_push(timeout=self.options.idle_seconds + 5)
                # Anything but a keep-alive (EXISTS, RECENT, EXPUNGE, FETCH): look again.
                if push == STOP_WAIT_SERVER_PUSH or not all(b"Still here" in bytes(p) for p in push):
                    break
                self.last_poll_at = time.time()
        except TimeoutError:
            pass
        finally:
            client.idle_done()
            await asyncio.wait_for(idle, self.options.timeout)

    async def _finish_processed(self, client: IMAP4, uidvalidity: int) -> None:
        """Flag or move what was stored before a crash but not yet flagged or moved."""
        if self.account.after == "leave":
            return
        stored_validity, last_uid = await self.intake.checkpoint()
        if stored_validity != uidvalidity or last_uid == 0:
            return
        criteria = f"UID 1:{last_uid}" + (" UNSEEN" if self.account.after == "seen" else "")
        response = _check(await client.uid_search(criteria, charset=None), "UID SEARCH")
        uids = [
            int(t)
            for line in response.lines[:-1]
            for t in bytes(line).decode("ascii", "replace").split()
            if t.isdigit() and int(t) <= last_uid
        ]
        size = self.options.batch_size
        for start in range(0, len(uids), size):
            await self._after(client, uids[start : start + size])

    async def _pending(self, client: IMAP4, uidvalidity: int) -> bool:
        stored_validity, last_uid = await self.intake.checkpoint()
        if stored_validity != uidvalidity:
            return True
        return bool(await self._new_uids(client, last_uid))

    async def _new_uids(self, client: IMAP4, last_uid: int) -> list[int]:
        response = _check(await client.uid_search(f"UID {last_uid + 1}:*", charset=None), "UID SEARCH")
        uids: list[int] = []
        for line in response.lines[:-1]:
            text = bytes(line).decode("ascii", "replace")
            if text.startswith("SEARCH"):
                text = text[len("SEARCH") :]
            uids.extend(int(t) for t in text.split() if t.isdigit())
        return sorted(u for u in set(uids) if u > last_uid)

    async def sync(self, client: IMAP4, uidvalidity: int) -> int:
        stored_validity, last_uid = await self.intake.checkpoint()
        if stored_validity is not None and stored_validity != uidvalidity:
            # The server renumbered the folder: rescan it all; stored Message-IDs skip the known.
            log.warning("mailbox %s: UIDVALIDITY changed, rescanning", self.account.name)
            last_uid = 0
        uids = await self._new_uids(client, last_uid)
        size = self.options.batch_size
        batches = [uids[start : start + size] for start in range(0, len(uids), size)]
        if not batches:
            if stored_validity != uidvalidity:
                await self.intake.save_checkpoint(uidvalidity, last_uid)
            return 0
        # The next batch is fetched and parsed while the current one is written.
        upcoming = asyncio.ensure_future(self._fetch(client, batches[0]))
        stored = 0
        try:
            for index, batch in enumerate(batches):
                fetched = await upcoming
                if index + 1 < len(batches):
                    upcoming = asyncio.ensure_future(self._fetch(client, batches[index + 1]))
                batch_end = max(batch)
                report = await self.intake.store_batch(uidvalidity, batch_end, fetched.parsed, fetched.failed)
                await self._after(client, batch)
                self.ingested += report.stored
                self.quarantined += report.quarantined
                stored += report.stored
        finally:
            if not upcoming.done():
                upcoming.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await upcoming
        return stored

    async def _fetch(self, client: IMAP4, uids: list[int]) -> Fetched:
        """The batch's new messages, parsed: bodies are fetched only for unknown Message-IDs."""
        headers = fetched_literals(
            _check(
                await client.uid("fetch", _uid_set(uids), "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"),
                "UID FETCH headers",
            ).lines
        )
        keys: dict[int, str] = {}
        for uid, head in headers.items():
            key = header_message_key(head)
            if key is not None:
                keys[uid] = key
        known = await self.intake.known(list(keys.values()))
        wanted = [u for u in uids if keys.get(u) not in known]
        bodies: dict[int, bytes] = {}
        if wanted:
            bodies = fetched_literals(
                _check(
                    await client.uid("fetch", _uid_set(wanted), "(UID BODY.PEEK[])"), "UID FETCH bodies"
                ).lines
            )
        raws = [(uid, bodies[uid]) for uid in wanted if uid in bodies]
        if self.options.parse_processes > 0 and raws:
            if self._pool is None:
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(self.options.parse_processes, mp_context=context)
            limit = self.options.max_attachment_bytes
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, parse_batch, raws, str(self.store.root), limit
            )
        fetched = Fetched()
        for uid, raw in raws:
            fetched.add(uid, raw, self.store, self.options.max_attachment_bytes)
            await asyncio.sleep(0)  # let the batch being written make progress
        return fetched

    async def _after(self, client: IMAP4, uids: list[int]) -> None:
        if self.account.after == "seen":
            _check(await client.uid("store", _uid_set(uids), "+FLAGS.SILENT", r"(\Seen)"), "UID STORE")
        elif self.account.after == "move":
            _check(await client.uid("move", _uid_set(uids), self.account.move_to), "UID MOVE")


def _raise_if_cancelled() -> None:
    """Python 3.11's ``asyncio.wait_for`` can swallow a cancellation that arrives as its inner
    wait completes (fixed in 3.12); the request is still counted on the task, so the watcher
    stops here instead of waiting through another IDLE."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
