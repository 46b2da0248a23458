"""The sandbox's state: calls (legs), bridges, queues, recordings and messages."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal

API_VERSION = "2010-04-01"
FINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def rfc2822(moment: datetime | None) -> str | None:
    """Twilio's date format: ``Tue, 10 Aug 2010 08:02:17 +0000``."""
    return None if moment is None else format_datetime(moment)


@dataclass(slots=True)
class Interrupt:
    """Something that stops what a call's TwiML is doing: a hang-up, a live redirect, a dequeue."""

    kind: Literal["hangup", "redirect", "bridge"]
    by: str = ""
    url: str | None = None
    method: str = "POST"
    twiml: str | None = None
    bridge: Bridge | None = None
    status: str = "completed"


class CallInterrupted(Exception):
    def __init__(self, interrupt: Interrupt) -> None:
        super().__init__(interrupt.kind)
        self.interrupt = interrupt


@dataclass(slots=True, eq=False)
class Call:
    """One call leg, as Twilio's Call resource and as a simulated phone line."""

    sid: str
    account_sid: str
    from_: str
    to: str
    direction: Literal["inbound", "outbound-api", "outbound-dial"]
    status: str = "queued"
    parent_call_sid: str | None = None
    caller_name: str | None = None
    answered_by: str | None = None
    date_created: datetime = field(default_factory=utcnow)
    date_updated: datetime = field(default_factory=utcnow)
    start_time: datetime | None = None
    end_time: datetime | None = None
    answered_at: float | None = None
    duration: int | None = None
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_events: frozenset[str] = frozenset({"completed"})
    sequence: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    digits: list[str] = field(default_factory=list)
    record_seconds: float | None = None
    url: str | None = None
    method: str = "POST"
    twiml: str | None = None
    queue: Queue | None = None
    bridge: Bridge | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    pending_callbacks: int = 0
    last_callback: asyncio.Task[None] | None = None
    interrupt_event: asyncio.Event = field(default_factory=asyncio.Event)
    pending_interrupt: Interrupt | None = None
    digits_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    ringing_client: str | None = None
    answer_decision: asyncio.Future[str] | None = None
    sip_response_code: int = 200
    queue_time: int = 0
    """Milliseconds (simulated) the call waited for the account's calls-per-second limit."""
    machine_detection_duration: int | None = None
    runner: asyncio.Task[Any] | None = None
    """The task running this leg's TwiML (or ringing it); interrupts are addressed to it."""
    answered_event: asyncio.Event = field(default_factory=asyncio.Event)
    callee: str | None = None
    """Who picked up a call to a phone number: "human" or "machine"."""
    extra_params: dict[str, str] = field(default_factory=dict)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_CALL_STATUSES

    def note(self, event: str, **details: Any) -> None:
        self.log.append({"at": utcnow().isoformat(), "event": event, **details})

    def interrupt(self, what: Interrupt) -> None:
        """Ask the call's TwiML to stop; a hang-up wins over anything pending."""
        if self.is_final:
            return
        if self.pending_interrupt is None or what.kind == "hangup":
            self.pending_interrupt = what
        self.interrupt_event.set()

    def take_interrupt(self) -> Interrupt | None:
        what = self.pending_interrupt
        if what is not None and what.kind != "hangup":
            self.pending_interrupt = None
            self.interrupt_event.clear()
        return what

    def check(self) -> None:
        """Raise :class:`CallInterrupted` when something is pending (between two steps of a verb)."""
        if self.pending_interrupt is not None:
            raise CallInterrupted(self.pending_interrupt)

    def talk_seconds(self, now: float, time_scale: float) -> int:
        if self.answered_at is None:
            return 0
        return max(0, round((now - self.answered_at) / time_scale))


@dataclass(slots=True, eq=False)
class Bridge:
    """Two answered legs talking to each other until either hangs up (or a time limit)."""

    a: Call
    b: Call
    started_at: float
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    ended_by: str | None = None

    def other(self, call: Call) -> Call:
        return self.b if call is self.a else self.a

    def end(self, by: Call | None) -> None:
        if not self.ended.is_set():
            self.ended_by = by.sid if by is not None else None
            self.ended.set()


@dataclass(slots=True, eq=False)
class Queue:
    sid: str
    friendly_name: str
    members: list[Call] = field(default_factory=list)
    entered: dict[str, float] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)
    member_added: asyncio.Event = field(default_factory=asyncio.Event)
    date_created: datetime = field(default_factory=utcnow)

    def position(self, call: Call) -> int:
        return self.members.index(call) + 1 if call in self.members else 0


@dataclass(slots=True)
class Recording:
    sid: str
    account_sid: str
    call_sid: str
    duration: int
    date_created: datetime = field(default_factory=utcnow)
    source: str = "RecordVerb"
    status: str = "completed"
    channels: int = 1
    date_updated: datetime = field(default_factory=utcnow)
    started: float = 0.0
    """Loop time the recording began (those started by the API or ``Record=true``)."""
    paused_at: float | None = None
    paused_seconds: float = 0.0
    callback: str | None = None
    callback_method: str = "POST"
    callback_events: frozenset[str] = frozenset({"completed"})


@dataclass(slots=True, eq=False)
class Message:
    sid: str
    account_sid: str
    from_: str
    to: str
    body: str
    direction: Literal["inbound", "outbound-api", "outbound-reply"]
    status: str
    media_urls: list[str] = field(default_factory=list)
    messaging_service_sid: str | None = None
    status_callback: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    date_created: datetime = field(default_factory=utcnow)
    date_updated: datetime = field(default_factory=utcnow)
    date_sent: datetime | None = None
    log: list[dict[str, Any]] = field(default_factory=list)

    def note(self, event: str, **details: Any) -> None:
        self.log.append({"at": utcnow().isoformat(), "event": event, **details})


class TwilioApiError(Exception):
    """A REST error in Twilio's shape: ``{"code", "message", "more_info", "status"}``."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
