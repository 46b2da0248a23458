"""What the email channel hands the core (parsed mail) and what the core asks of it (delivery)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class MailAttachment:
    """An attachment already written to the content store (``sha256`` None when it was skipped)."""

    filename: str
    content_type: str
    size: int
    sha256: str | None
    content_id: str | None = None
    inline: bool = False
    skipped_reason: str | None = None


@dataclass(frozen=True, slots=True)
class BounceReport:
    """A delivery failure report: which of our messages failed, for whom and why."""

    original_message_ids: tuple[str, ...]
    failed_recipients: tuple[str, ...]
    status: str | None = None
    diagnostic: str | None = None


@dataclass(frozen=True, slots=True)
class InboundEmail:
    """One received message, decoded as far as it could be. Message-IDs are kept without ``<>``."""

    key: str
    message_id: str | None
    from_address: str | None
    from_name: str | None
    subject: str
    text: str
    visible_text: str
    html: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    date: datetime | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    markers: tuple[str, ...] = ()
    attachments: tuple[MailAttachment, ...] = ()
    defects: tuple[str, ...] = ()
    raw_sha256: str | None = None
    raw_size: int = 0
    bounce: BounceReport | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundEmail:
    """A message from the outbox, ready to be composed and sent."""

    email_id: int
    message_id: str
    from_address: str
    from_name: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    text: str
    html: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    headers: Mapping[str, str]
    date: datetime
    attachments: tuple[MailAttachment, ...] = ()


class DeliveryError(Exception):
    """The mail server did not take the message; ``permanent`` for 5xx answers."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class MailTransport(Protocol):
    async def deliver(self, email: OutboundEmail) -> str:
        """Compose and send; return the server's reply or raise :class:`DeliveryError`."""
        ...
