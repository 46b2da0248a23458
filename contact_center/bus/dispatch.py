"""Fan-out of received events to local handlers, shared by both buses."""

from __future__ import annotations

import logging
from collections.abc import Callable

from contact_center.bus import EventHandler
from crm_core.events import DomainEvent

log = logging.getLogger(__name__)


class Subscribers:
    def __init__(self) -> None:
        self._handlers: list[EventHandler] = []

    def add(self, handler: EventHandler) -> Callable[[], None]:
        self._handlers.append(handler)

        def remove() -> None:
            if handler in self._handlers:
                self._handlers.remove(handler)

        return remove

    async def deliver(self, event: DomainEvent) -> None:
        for handler in list(self._handlers):
            try:
                await handler(event)
            except Exception:
                log.exception("event handler %r failed on %s", handler, event.name)
