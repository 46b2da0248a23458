"""A TCP proxy between the service and an IMAP server that reads the exchange as it passes.

The service is configured with the proxy's port; the proxy forwards every byte both ways and
calls the test at protocol moments: before a client command is forwarded (the test may hold it
back for good), after each response has been forwarded (the test may drop the connection there)
and after a command's tagged completion has been forwarded. The test acts there
(kills the service, takes a database lock) from outside: the service has no test code in it.
Responses are read with their literals (``{n}`` and n bytes), so a message body that happens
to contain a line like ``A1 OK`` is never taken for a completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")


@dataclass(frozen=True)
class ImapCommand:
    """A command as the client sent it: ``name`` is upper case, with ``UID`` kept (``UID STORE``)."""

    tag: str
    name: str
    line: bytes

    @property
    def fetches_bodies(self) -> bool:
        return self.name == "UID FETCH" and b"BODY.PEEK[]" in self.line.upper()


@dataclass
class Completion:
    """A command's tagged answer, with the message bodies (``BODY[]`` literals) sent for it."""

    command: ImapCommand
    status: str
    bodies: list[bytes] = field(default_factory=list)


OnCommand = Callable[[ImapCommand], Awaitable[bool]]
OnCompletion = Callable[[Completion], Awaitable[None]]
OnResponse = Callable[[bytes], Awaitable[bool]]


def _command_of(line: bytes) -> ImapCommand:
    words = line.rstrip(b"\r\n").split(b" ", 3)
    tag = words[0].decode("ascii", "replace")
    name = words[1].decode("ascii", "replace").upper() if len(words) > 1 else ""
    if name == "UID" and len(words) > 2:
        name += " " + words[2].decode("ascii", "replace").upper()
    return ImapCommand(tag, name, line)


async def _read_unit(reader: asyncio.StreamReader) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """One command or response, literals included: (all its bytes, [(text before a literal,
    the literal)])."""
    data = bytearray()
    literals: list[tuple[bytes, bytes]] = []
    while True:
        line = await reader.readuntil(b"\r\n")
        data += line
        match = _LITERAL.search(line)
        if match is None:
            return bytes(data), literals
        literal = await reader.readexactly(int(match.group(1)))
        data += literal
        literals.append((line[: match.start()], literal))


class ImapProxy:
    """Listens on a free loopback port; every connection is relayed to ``upstream``."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.on_command: OnCommand | None = None
        self.on_completion: OnCompletion | None = None
        # Called with each response (literals included) once forwarded; False drops the connection
        # right there, both ways, as a network failure in the middle of a command would.
        self.on_response: OnResponse | None = None
        self.commands: list[ImapCommand] = []  # every command forwarded, in order
        self.held: list[ImapCommand] = []  # commands the test kept from the server
        self.errors: list[BaseException] = []  # raised by the test's callbacks (or the relay)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._relays):
            task.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            self._relays.discard(task)
            return
        pending: dict[str, ImapCommand] = {}
        upstream = asyncio.create_task(self._commands(client_reader, server_writer, pending))
        downstream = asyncio.create_task(self._responses(server_reader, client_writer, pending))
        try:
            await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in (upstream, downstream):
                pump.cancel()
            for outcome in await asyncio.gather(upstream, downstream, return_exceptions=True):
                if isinstance(outcome, Exception):
                    self.errors.append(outcome)
            for writer in (client_writer, server_writer):
                writer.close()
            self._relays.discard(task)

    async def _commands(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pending: dict[str, ImapCommand]
    ) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                line = await reader.readuntil(b"\r\n")
                command = _command_of(line)
                hook = self.on_command if _LITERAL.search(line) is None else None
                if hook is not None and not await hook(command):
                    self.held.append(command)
                    continue
                if command.name:  # not the untagged DONE that ends an IDLE
                    pending[command.tag] = command
                self.commands.append(command)
                writer.write(line)
                match = _LITERAL.search(line)
                while match is not None:  # the rest of a command sent with a literal, as it comes
                    writer.write(await reader.readexactly(int(match.group(1))))
                    line = await reader.readuntil(b"\r\n")
                    writer.write(line)
                    match = _LITERAL.search(line)
                await writer.drain()

    async def _responses(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pending: dict[str, ImapCommand]
    ) -> None:
        bodies: list[bytes] = []
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                data, literals = await _read_unit(reader)
                bodies.extend(lit for head, lit in literals if head.upper().endswith(b"BODY[] "))
                writer.write(data)
                await writer.drain()
                if self.on_response is not None and not await self.on_response(data):
                    return
                tag, _, rest = data.partition(b" ")
                command = pending.pop(tag.decode("ascii", "replace"), None)
                if command is None:
                    continue
                completion = Completion(command, rest.split(b" ", 1)[0].decode("ascii", "replace"))
                if command.fetches_bodies:
                    completion.bodies, bodies = bodies, []
                if self.on_completion is not None:
                    await self.on_completion(completion)
