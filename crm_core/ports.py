"""The interfaces the core needs from the outside world, implemented by the application."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from crm_core.events import DomainEvent
from crm_core.voice import (
    CallDecision,
    CallRecord,
    CallStatusUpdate,
    DialOutcome,
    InboundCall,
    MachineDetection,
    OutboundAnswer,
    QueueOutcome,
    QueueWait,
    Recording,
)


class EventPublisher(Protocol):
    """Delivers committed domain events (in-process bus or Redis pub/sub)."""

    async def publish(self, events: Sequence[DomainEvent]) -> None: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...


class Timer(Protocol):
    """A callback scheduled on a :class:`Clock`."""

    def cancel(self) -> None: ...

    def cancelled(self) -> bool: ...


class Clock(Protocol):
    """The time, passed in (:mod:`crm_core.clock`: the real one, and a simulated one).

    Services that need only the current time take ``now`` instead; pure rules always do.
    """

    def now(self) -> datetime:
        """Wall time, aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds that only go forward, for intervals and backoffs."""
        ...

    def timestamp(self) -> float:
        """Seconds since the epoch (rate-limit windows count on it)."""
        ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback`` once ``delay`` seconds have passed on this clock."""
        ...


class VoiceCalls(Protocol):
    """What the voice channel asks of the application, one method per kind of webhook."""

    async def inbound_call(self, call: InboundCall) -> CallDecision: ...

    async def call_status(self, update: CallStatusUpdate) -> None: ...

    async def agent_leg_status(self, agent_id: int, parent_call_sid: str, update: CallStatusUpdate) -> None:
        """The agent's leg of a connected call was answered or ended."""
        ...

    async def dial_finished(self, outcome: DialOutcome) -> CallDecision: ...

    async def connect_agent(self, call_sid: str, agent_id: int) -> CallDecision:
        """A caller taken out of the queue for an agent: what to run on their call now."""
        ...

    async def queue_wait(self, wait: QueueWait) -> list[str]:
        """What to say to a caller waiting in the queue (their position, for instance)."""
        ...

    async def queue_finished(self, outcome: QueueOutcome) -> CallDecision: ...

    async def recording_ready(self, recording: Recording) -> None: ...


class OutboundCalls(Protocol):
    """What the application answers for the calls it placed (the dialer): the webhooks of an
    outbound call, beside :class:`VoiceCalls` for the calls that come in."""

    async def call_answered(self, answer: OutboundAnswer) -> CallDecision:
        """The placed call was picked up (by a person or a machine): what it hears."""
        ...

    async def outbound_status(self, update: CallStatusUpdate) -> None: ...

    async def machine_detected(self, detection: MachineDetection) -> None: ...


class CallControl(Protocol):
    """Places and steers live calls on the phone network (the Twilio gateway)."""

    async def redirect_call(self, call_sid: str, url: str) -> None:
        """Make a live call fetch and run new instructions from ``url``."""
        ...

    async def place_call(
        self, *, to: str, from_: str, url: str, status_callback: str, machine_detection: bool = False
    ) -> str:
        """Start an outbound call; returns its CallSid."""
        ...


class CallLookup(Protocol):
    """Asks the phone network how a call stands (the Twilio gateway)."""

    async def fetch_call(self, call_sid: str) -> CallRecord | None:
        """The call as the network holds it; None when the network does not know it."""
        ...


class SmsSender(Protocol):
    async def send_sms(self, *, to: str, from_: str, body: str, status_callback: str | None = None) -> str:
        """Hand a text message to the network; returns its MessageSid."""
        ...
