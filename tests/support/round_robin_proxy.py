"""A load balancer on a loopback port in front of several instances of the service.

Each new TCP connection goes to the next instance in turn; an instance that refuses the
connection (killed, not yet started) is passed over for the next, as a load balancer's health
check would. A connection whose instance dies is dropped, as it would be in production: HTTP
clients retry and sockets reconnect to an instance that is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools


class RoundRobinProxy:
    def __init__(self, upstream_ports: list[int], host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstreams = list(upstream_ports)
        self.port = 0  # chosen at the first start, kept afterwards
        self.accepted = 0  # connections accepted so far
        self._turn = itertools.count()
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        relays, self._relays = set(self._relays), set()
        for task in relays:
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        first = next(self._turn)
        for offset in range(len(self.upstreams)):
            port = self.upstreams[(first + offset) % len(self.upstreams)]
            with contextlib.suppress(OSError):
                return await asyncio.open_connection(self.host, port)
        raise ConnectionRefusedError("no instance is up")

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        self.accepted += 1
        server_writer: asyncio.StreamWriter | None = None
        try:
            server_reader, server_writer = await self._connect()
            pumps = [
                asyncio.create_task(_pump(client_reader, server_writer)),
                asyncio.create_task(_pump(server_reader, client_writer)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except (OSError, asyncio.CancelledError):
            pass  # the proxy stops: the connection ends here
        finally:
            for writer in (client_writer, server_writer):
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()
            self._relays.discard(task)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
