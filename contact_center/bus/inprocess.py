"""The embedded event bus: a queue and one dispatcher task in this process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from contact_center.bus import EventHandler
from contact_center.bus.dispatch import Subscribers
from crm_core.events import DomainEvent


class InProcessBus:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[DomainEvent] = asyncio.Queue()
        self._subscribers = Subscribers()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._dispatch(), name="inprocess-bus")

    async def close(self) -> None:
        if self._task is not None:
            await self._drain()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _drain(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=5)

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        for event in events:
            self._queue.put_nowait(event)

    def subscribe(self, handler: EventHandler) -> Callable[[], None]:
        return self._subscribers.add(handler)

    async def ping(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _dispatch(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._subscribers.deliver(event)
            finally:
                self._queue.task_done()
