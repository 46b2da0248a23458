"""A Redis server of a test's own on a spare port, keeping nothing on disk: the test may empty it
or restart it (it comes back empty) as an outage would, never touching the shared one."""

from __future__ import annotations

import asyncio
import subprocess

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.support.waiting import eventually, free_port


class SpareRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        assert self._process is None, "already running"
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        self._process = subprocess.Popen(
            [*command, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await eventually(self._answers, 15, "the spare Redis answers")

    async def stop(self) -> None:
        """Gone at once, as a crash: open connections drop."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            await asyncio.to_thread(process.wait, 15)

    async def restart(self) -> None:
        """Stopped and started again on the same port: empty."""
        await self.stop()
        await self.start()

    async def flushall(self) -> None:
        client = Redis.from_url(self.url)
        try:
            await client.flushall()
        finally:
            await client.aclose()

    async def _answers(self) -> bool:
        client = Redis.from_url(self.url)
        try:
            return bool(await client.ping())
        except (OSError, RedisError):
            return False
        finally:
            await client.aclose()
