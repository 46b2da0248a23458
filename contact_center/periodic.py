"""Background jobs that run every few seconds while the application is up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler


@contextmanager
def every(seconds: float, job: Callable[[], Awaitable[Any]], name: str) -> Iterator[None]:
    """Run ``job`` every ``seconds`` inside the block: never two runs at once, missed runs coalesced."""
    scheduler = AsyncIOScheduler()
    scheduler.add_job(job, "interval", seconds=seconds, max_instances=1, coalesce=True, id=name)
    scheduler.start()
    try:
        yield
    finally:
        scheduler.shutdown(wait=False)
