"""``policy.default`` with its header objects reused.

The standard library builds a new header class on every lookup and re-parses a header each time
it is read (the parser alone reads Content-Type several times per part). Most headers repeat
from message to message (Content-Type, Content-Transfer-Encoding, MIME-Version, the mailbox's
own address, regular senders), and header objects are immutable strings, so one parse per
distinct (name, value) serves them all.
"""

from __future__ import annotations

from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from typing import Any


class CachedHeaderRegistry(HeaderRegistry):
    """A :class:`HeaderRegistry` that builds each header class once and each header value once
    (up to ``max_entries`` distinct values; the cache starts over when full)."""

    def __init__(self, max_entries: int = 4096) -> None:
        super().__init__()
        self.max_entries = max_entries
        self._classes: dict[str, type[BaseHeader]] = {}
        self._headers: dict[tuple[str, str], Any] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls

    def __call__(self, name: str, value: str) -> Any:
        key = (name, value)
        header = self._headers.get(key)
        if header is None:
            if len(self._headers) >= self.max_entries:
                self._headers.clear()
            header = self._headers[key] = self[name](name, value)
        return header


def cached_policy() -> EmailPolicy[EmailMessage]:
    """``policy.default`` with a :class:`CachedHeaderRegistry`."""
    return policy.default.clone(header_factory=CachedHeaderRegistry())


DEFAULT = cached_policy()
