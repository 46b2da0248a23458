"""Per-visitor and per-address message limits counted here first, shared in batches.

A fixed window per key, like the service's other limits. Each hit is counted in this process;
the count reaches the shared counter (Redis, so the limit holds across instances) once a batch
of hits has gathered, and a batch is smaller the nearer the last known total is to the limit:
far from the limit a message costs no round trip, near it every hit is checked. Instances can
together overshoot a limit by at most a quarter of the headroom they last saw, so the limit
holds approximately, as the protocol promises. A key known to be over its limit is refused here
without asking again until its window ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

MAX_BATCH = 20
MAX_KEYS = 100_000


class SharedCounter(Protocol):
    async def add(self, key: str, amount: int, window: int, window_seconds: int) -> int:
        """Add ``amount`` to ``key`` in ``window`` (expiring with it); the window's new total."""
        ...


@dataclass(slots=True)
class _Count:
    window: int
    shared: int = 0  # the total last read from the shared counter (this process's hits included)
    pending: int = 0  # hits counted here, not yet added to the shared counter


class BatchedRateLimit:
    """Fixed-window limits; exact in one process (``shared`` None), approximate across many."""

    def __init__(self, shared: SharedCounter | None, *, clock: Callable[[], float] = time.time) -> None:
        self._shared = shared
        self._clock = clock
        self._counts: dict[str, _Count] = {}

    async def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        """Count one attempt; False once more than ``limit`` fall in the window."""
        window = int(self._clock() // window_seconds)
        count = self._counts.get(key)
        if count is None or count.window != window:
            if len(self._counts) >= MAX_KEYS:
                self._counts = {k: c for k, c in self._counts.items() if c.window == window}
            count = self._counts[key] = _Count(window)
        count.pending += 1
        if self._shared is None or count.shared > limit:
            return count.shared + count.pending <= limit
        batch = min(MAX_BATCH, max(1, (limit - count.shared) // 4))
        if count.pending >= batch or count.shared + count.pending > limit:
            amount, count.pending = count.pending, 0
            try:
                total = await self._shared.add(key, amount, window, window_seconds)
            except BaseException:
                count.pending += amount
                raise
            count.shared = max(count.shared, total)
        return count.shared + count.pending <= limit

    def refund(self, key: str, window_seconds: int) -> None:
        """Give back one attempt counted in the current window: it turned out to cost nothing (a
        resend of what is stored already). Settled with the shared counter at its next batch."""
        count = self._counts.get(key)
        if count is not None and count.window == int(self._clock() // window_seconds):
            count.pending -= 1
