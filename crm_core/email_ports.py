"""What the email channel hands the core (parsed mail, through a mailbox's intake) and what the core
asks of it (delivery)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from crm_core.errors import DeliveryError as DeliveryError  # the one error of every outbox sender


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


Accepted = Callable[[str], Awaitable[None]]
"""Told the server's reply as soon as the server has taken a message (its answer to the end of
DATA), before the session ends: what it records survives a crash in the rest of the hand-over."""


class MailTransport(Protocol):
    async def deliver(self, email: OutboundEmail, accepted: Accepted) -> str:
        """Compose and send; await ``accepted`` with the server's reply the moment the server
        took the message (before the session ends, whatever it raises propagates), and return that
        reply; or raise :class:`DeliveryError` if the server did not take it."""
        ...


@dataclass(frozen=True, slots=True)
class UnreadableMail:
    """A fetched message that could not be parsed: its mailbox UID, its raw bytes (in the content
    store; ``raw_sha256`` None when even that failed) and why (``Type: message``)."""

    uid: int
    raw_sha256: str | None
    raw_size: int
    error: str


@dataclass(frozen=True, slots=True)
class IntakeReport:
    """What a batch came to: messages stored (duplicates not counted) and messages quarantined."""

    stored: int
    quarantined: int


class MailboxIntake(Protocol):
    """The core's side of one watched mailbox: the IMAP channel fetches and parses, and hands
    what it got here. Progress is a checkpoint, (UIDVALIDITY, last UID), kept with the mail."""

    async def checkpoint(self) -> tuple[int | None, int]:
        """The checkpoint stored so far; ``(None, 0)`` before the first batch."""
        ...

    async def known(self, keys: Sequence[str]) -> set[str]:
        """Which of these message keys are stored already (their bodies need not be fetched)."""
        ...

    async def save_checkpoint(self, uidvalidity: int, last_uid: int) -> None:
        """Record progress that came with no mail (a renumbered folder with nothing new)."""
        ...

    async def store_batch(
        self,
        uidvalidity: int,
        last_uid: int,
        parsed: Sequence[tuple[int, InboundEmail]],
        unreadable: Sequence[UnreadableMail],
    ) -> IntakeReport:
        """Store a batch (``parsed`` as (UID, message), in mailbox order) with the checkpoint
        ``last_uid`` in one transaction, threaded and acknowledged. A message that cannot be
        stored, like one that could not be parsed, is quarantined and the checkpoint still moves
        on: no message stops a mailbox. Raises only when the database cannot be written at all."""
        ...
