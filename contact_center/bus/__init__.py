"""Event buses: the in-process one for a single instance, Redis pub/sub for several.

Both deliver every published event to every subscriber on every instance, asynchronously and in
order per publisher, so code above them behaves the same with or without REDIS_URL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from crm_core.events import DomainEvent

EventHandler = Callable[[DomainEvent], Awaitable[None]]


class EventBus(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, events: Sequence[DomainEvent]) -> None: ...

    def subscribe(self, handler: EventHandler) -> Callable[[], None]:
        """Register ``handler``; call the returned function to unsubscribe."""
        ...

    async def ping(self) -> bool: ...
