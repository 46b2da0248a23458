"""The application's periodic jobs and background tasks.

Periodic jobs (``every``) run on the runtime's clock: their timers are the clock's timers, so on
the real clock they are the event loop's, and on a simulated clock they run as the simulation
moves time on. One-off background work (``spawn``) is tracked so shutdown cancels and awaits it.
Capabilities take both from the runtime instead of starting schedulers or keeping task sets of
their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from crm_core.clock import SystemClock
from crm_core.ports import Clock, Timer

log = logging.getLogger(__name__)


class _Periodic:
    """One job's timer chain: a run every ``seconds`` on the clock, never two at once."""

    def __init__(
        self, jobs: Jobs, seconds: float, job: Callable[[], Awaitable[Any]], name: str, first_in: float
    ) -> None:
        self._jobs, self._seconds, self._job, self.name = jobs, seconds, job, name
        self._clock = jobs.clock
        self._due = self._clock.monotonic() + first_in
        self._timer: Timer | None = self._clock.call_later(first_in, self._fire)
        self._run: asyncio.Task[Any] | None = None

    def _fire(self) -> None:
        if self._timer is None:
            return
        if self._run is None or self._run.done():  # a run under way: this one is skipped
            self._run = self._jobs._start_run(self._job, self.name)
        now = self._clock.monotonic()
        # Runs missed while the loop was held up are coalesced into the one just started.
        self._due = max(self._due + self._seconds, now)
        self._timer = self._clock.call_later(self._due - now, self._fire)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Jobs:
    """Periodic jobs and background tasks of one runtime, on its ``clock``.

    ``finish_seconds`` is how long shutdown waits for runs under way; it is measured on the
    event loop (real time) whatever the clock, since it bounds how long the process takes to stop.
    """

    def __init__(self, clock: Clock | None = None, *, finish_seconds: float = 5.0) -> None:
        self.clock: Clock = clock or SystemClock()
        self._periodic: dict[str, _Periodic] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._running: set[asyncio.Task[Any]] = set()  # periodic runs under way
        self._finish_seconds = finish_seconds
        self._closed = False

    @contextmanager
    def every(
        self,
        seconds: float,
        job: Callable[[], Awaitable[Any]],
        name: str,
        *,
        first_in: float | None = None,
    ) -> Iterator[None]:
        """Run ``job`` every ``seconds`` of the clock inside the block, the first time ``first_in``
        seconds from now (one interval by default): never two runs at once, missed runs coalesced.
        ``name`` must be unique among the running jobs."""
        if seconds <= 0:
            raise ValueError("a periodic job needs a positive interval")
        if name in self._periodic:
            raise ValueError(f"a periodic job named {name!r} is already running")
        periodic = _Periodic(self, seconds, job, name, seconds if first_in is None else max(0.0, first_in))
        self._periodic[name] = periodic
        try:
            yield
        finally:
            periodic.stop()
            if self._periodic.get(name) is periodic:
                del self._periodic[name]

    def _start_run(self, job: Callable[[], Awaitable[Any]], name: str) -> asyncio.Task[Any] | None:
        if self._closed:
            return None

        async def run() -> None:
            try:
                await job()
            except Exception:
                log.exception("periodic job %s failed", name)

        task = asyncio.get_running_loop().create_task(run(), name=f"every:{name}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    def spawn(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``work`` in the background; its failure is logged, never lost."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        """Stop the periodic jobs (runs under way get ``finish_seconds`` to end, then are
        cancelled), cancel and await every background task."""
        self._closed = True
        for periodic in list(self._periodic.values()):
            periodic.stop()
        self._periodic.clear()
        if self._running:
            await asyncio.wait(list(self._running), timeout=self._finish_seconds)
        # Runs still under way are cancelled like the rest (they give back what they claimed).
        tasks = [*self._tasks, *self._running]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
