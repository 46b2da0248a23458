"""Group commit: writes submitted while another is in flight go out together in the next one.

Under load, one statement (or one message) per item spends most of its time on the round trip
and the driver rather than on the item. :class:`GroupCommit` sends the first item at once (no
added latency when idle) and, while that write is in flight, gathers what comes next into one
write of up to ``max_items``. Writes happen one at a time, in submission order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

Write = Callable[[Sequence[T]], Awaitable[Sequence[R]]]


class GroupCommit(Generic[T, R]):
    """Submit items one by one; ``write`` receives them in groups and returns one result per item.

    When a group of several fails, each of its items is written again on its own, so that one bad
    item fails only its own submitter (``isolate_failures``; turn it off where a failure is never
    the item's fault, as a lost connection).
    """

    def __init__(self, write: Write[T, R], *, max_items: int = 100, isolate_failures: bool = True) -> None:
        self._write = write
        self._max_items = max_items
        self._isolate = isolate_failures
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_pending(), name="group-commit")
        # Shielded: a submitter that goes away does not cancel the write of the others.
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Wait for the writes in flight (at shutdown, before the connections go)."""
        writer = self._writer
        if writer is not None:
            await asyncio.gather(writer, return_exceptions=True)

    async def _write_pending(self) -> None:
        try:
            while self._pending:
                group = self._pending[: self._max_items]
                del self._pending[: len(group)]
                await self._write_group(group)
        except BaseException:  # cancelled at shutdown: nobody waits forever
            _cancel(self._pending)
            self._pending.clear()
            raise
        finally:
            self._writer = None

    async def _write_group(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._write([item for item, _ in group])
        except Exception as exc:
            if len(group) > 1 and self._isolate:
                log.debug("a group of %d writes failed (%r); writing them one by one", len(group), exc)
                for one in group:
                    await self._write_group([one])
                return
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            _cancel(group)
            raise
        if len(results) != len(group):
            error = RuntimeError(f"a group write returned {len(results)} results for {len(group)} items")
            for _, future in group:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)


def _cancel(group: Sequence[tuple[object, asyncio.Future[R]]]) -> None:
    for _, future in group:
        future.cancel()
