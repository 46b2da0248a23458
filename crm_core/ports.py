"""The interfaces the core needs from the outside world, implemented by the application."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from crm_core.events import DomainEvent


class EventPublisher(Protocol):
    """Delivers committed domain events (in-process bus or Redis pub/sub)."""

    async def publish(self, events: Sequence[DomainEvent]) -> None: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...


class Clock(Protocol):
    def now(self) -> datetime: ...
