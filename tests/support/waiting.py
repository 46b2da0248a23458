"""Waiting for a condition instead of sleeping: each wait fails when its deadline passes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15, what: str = "") -> Any:
    """The first truthy value ``check`` returns; raises AssertionError after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not met within {timeout} s: {what or getattr(check, '__name__', check)}")
        await asyncio.sleep(0.02)


async def until(condition: Callable[[], Any], timeout: float = 15, what: str = "") -> Any:
    """Like :func:`eventually` for a plain (not awaitable) condition."""

    async def check() -> Any:
        return condition()

    return await eventually(check, timeout, what or getattr(condition, "__name__", ""))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
