"""The application's one scheduler and its background tasks.

Periodic jobs (``every``) share one APScheduler; one-off background work (``spawn``) is tracked
so shutdown cancels and awaits it. Capabilities take both from the runtime instead of starting
schedulers or keeping task sets of their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)


class Jobs:
    def __init__(self, *, finish_seconds: float = 5.0) -> None:
        self._scheduler: AsyncIOScheduler | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._running: set[asyncio.Task[Any]] = set()  # periodic runs under way
        self._finish_seconds = finish_seconds

    def _started(self) -> AsyncIOScheduler:
        if self._scheduler is None:
            self._scheduler = AsyncIOScheduler()
            self._scheduler.start()
        return self._scheduler

    @contextmanager
    def every(self, seconds: float, job: Callable[[], Awaitable[Any]], name: str) -> Iterator[None]:
        """Run ``job`` every ``seconds`` inside the block: never two runs at once, missed runs
        coalesced. ``name`` must be unique among the running jobs."""
        scheduler = self._started()

        async def run() -> None:
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                await job()
            finally:
                self._running.discard(task)

        scheduler.add_job(run, "interval", seconds=seconds, max_instances=1, coalesce=True, id=name)
        try:
            yield
        finally:
            if scheduler.get_job(name) is not None:
                scheduler.remove_job(name)

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
        """Stop the scheduler (runs under way get ``finish_seconds`` to end, then are cancelled),
        cancel and await every background task."""
        if self._scheduler is not None:
            self._scheduler.pause()
            if self._running:
                await asyncio.wait(list(self._running), timeout=self._finish_seconds)
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        # Runs still under way are cancelled like the rest (they give back what they claimed).
        tasks = [*self._tasks, *self._running]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
