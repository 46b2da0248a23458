"""Clocks: the real one, and one that moves only when told (tests, a discrete-event simulation).

Everything that asks the time takes a :class:`~crm_core.ports.Clock`: wall time (``now()``, aware
UTC), monotonic seconds (``monotonic()``, for intervals and backoffs) and timers
(``call_later``), so the same code runs on real time in production and on simulated time in a
simulation. Pure rules take ``now`` as an argument and ask no clock at all.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from crm_core.ports import Timer

# A round moment to start simulated time at (on a minute and an hour boundary).
SIMULATION_START = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)


class SystemClock:
    """The real time: the system's wall clock, its monotonic clock and the running loop's timers."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def timestamp(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, delay), callback)


class FakeTimer:
    """A timer of a :class:`FakeClock`: it fires when the clock is advanced past it."""

    __slots__ = ("_cancelled", "callback", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self._cancelled = False

    def cancel(self) -> None:
        self._cancelled = True

    def cancelled(self) -> bool:
        return self._cancelled


class FakeClock:
    """Simulated time: frozen until :meth:`advance` (or :meth:`set`) moves it.

    Wall time and monotonic time move together. Timers (:meth:`call_later`) fire in order of their
    time, each with the clock standing at that time, while :meth:`advance` moves past them; a timer
    due now fires at the next :meth:`advance` (``advance(0)`` included), never by itself.
    """

    def __init__(self, start: datetime = SIMULATION_START) -> None:
        if start.tzinfo is None:
            raise ValueError("a clock's time is aware (UTC)")
        self._start = start.astimezone(UTC)
        self._elapsed = 0.0
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    def timestamp(self) -> float:
        return self.now().timestamp()

    def call_later(self, delay: float, callback: Callable[[], object]) -> FakeTimer:
        timer = FakeTimer(self._elapsed + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.when, next(self._order), timer))
        return timer

    @property
    def pending(self) -> int:
        """Timers not yet fired nor cancelled."""
        return sum(1 for _, _, t in self._timers if not t.cancelled())

    def advance(self, seconds: float = 0.0) -> datetime:
        """Move ``seconds`` ahead, firing the timers due on the way; returns the new time."""
        if seconds < 0:
            raise ValueError("time does not go back")
        end = self._elapsed + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled():
                continue
            self._elapsed = max(self._elapsed, when)
            timer.callback()
        self._elapsed = end
        return self.now()

    def set(self, moment: datetime) -> datetime:
        """Move ahead to ``moment`` (firing the timers due by then)."""
        return self.advance((moment - self.now()).total_seconds())
