"""Text messages in the core's terms: what the SMS channel parses out of Twilio's webhooks, and
the application service it hands them to. Nothing here knows Twilio's parameter names."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from crm_core.services.tickets import SlaPolicy


class TicketRule(enum.StrEnum):
    """When a text from a customer with no open SMS ticket opens one."""

    EVERY_CONVERSATION = "every_conversation"
    NO_ANSWER = "no_answer"
    """Only when no agent has texted back within ``no_answer_minutes``."""


@dataclass(frozen=True, slots=True)
class SmsPolicy:
    region: str
    sla: SlaPolicy
    default_from: str
    ticket_rule: TicketRule = TicketRule.EVERY_CONVERSATION
    no_answer_minutes: float = 15.0
    help_reply: str = ""
    """Answer to HELP and INFO; empty: no answer (Twilio's own HELP reply is left to do it)."""
    opt_out_confirmation: str = ""
    """The one text confirming an opt-out that the carrier does not confirm itself (one asked for
    inside a longer text, or a word that is not Twilio's); empty: none is sent."""


@dataclass(frozen=True, slots=True)
class MediaItem:
    url: str
    content_type: str


@dataclass(frozen=True, slots=True)
class InboundSms:
    message_sid: str
    from_number: str
    to_number: str
    body: str
    media: list[MediaItem] = field(default_factory=list)
    segments: int | None = None
    opt_out_type: str | None = None
    """Twilio's OptOutType (STOP, START, HELP) when its opt-out handling recognised a keyword."""


@dataclass(frozen=True, slots=True)
class SmsStatusUpdate:
    message_sid: str
    status: str
    error_code: int | None = None
    outbox_id: int | None = None
    """Our outbox row, carried in the status callback URL: the receipt may arrive before the
    gateway's answer (and the MessageSid) is stored."""


class SmsInbox(Protocol):
    """What the SMS channel asks of the application, one method per kind of webhook."""

    async def message_received(self, message: InboundSms) -> None: ...

    async def message_status(self, update: SmsStatusUpdate) -> None: ...


class SmsLookup(Protocol):
    """What the gateway holds: asked to settle a text whose hand-over went unanswered."""

    async def find_sms(
        self, *, to: str, from_: str, body: str, created_after: datetime
    ) -> list[SmsStatusUpdate]:
        """The gateway's texts from ``from_`` to ``to`` with this body, created after
        ``created_after``, oldest first."""
        ...
