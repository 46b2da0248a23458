"""A value built at start-up that routes, added before start-up, use: one late-bound holder
instead of a forwarding proxy per desk."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Late(Generic[T]):
    def __init__(self, what: str) -> None:
        self._what = what
        self._value: T | None = None

    def set(self, value: T) -> None:
        self._value = value

    def clear(self) -> None:
        self._value = None

    def get(self) -> T:
        """The value; raises while the application is not started."""
        if self._value is None:
            raise RuntimeError(f"{self._what} is not started")
        return self._value
