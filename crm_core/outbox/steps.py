"""The named steps a producer plugs into the outbox: its suppression check (who must not receive
anything) and its sender's throttle (how fast one sender may send)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

Row_contra = TypeVar("Row_contra", contravariant=True)


class Suppression(Protocol[Row_contra]):
    """Checked when a row is claimed, before the network: why it must not go out now, or None."""

    async def refusal(self, session: AsyncSession, row: Row_contra) -> str | None: ...


class Throttle(Protocol):
    """How fast one sender (a phone number, a mailbox address) may send, shared by every instance
    that sends for it."""

    async def acquire(self, sender_key: str) -> float:
        """Take the sender's next turn: the seconds to wait before sending in it (0: now)."""
        ...


class Unlimited:
    """No limit: every turn is now."""

    async def acquire(self, sender_key: str) -> float:
        return 0.0


UNLIMITED = Unlimited()


async def pace(
    throttle: Throttle, sender_key: str, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
) -> float:
    """Wait for the sender's turn; returns how long it waited.

    A real wait (``asyncio.sleep``), not the clock's: the throttle keeps to the provider's rate,
    which runs on real time whatever clock the outbox reads its due times from."""
    wait = await throttle.acquire(sender_key)
    if wait > 0:
        await sleep(wait)
    return wait
