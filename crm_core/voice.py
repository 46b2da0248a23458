"""Voice calls in the core's terms: what arrives from the phone network and what to do with it.

The Twilio channel parses its webhooks into these and renders :class:`CallDecision` as TwiML;
nothing here knows Twilio's parameter names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

# Our own stage of an inbound call waiting in the queue for an agent (Twilio says in-progress).
QUEUED_FOR_AGENT = "queued-for-agent"


class CallStatus(enum.StrEnum):
    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class InboundCall:
    call_sid: str
    from_number: str
    to_number: str
    caller_name: str | None = None


@dataclass(frozen=True, slots=True)
class CallStatusUpdate:
    call_sid: str
    status: CallStatus
    sequence_number: int | None = None
    duration_seconds: int | None = None
    timestamp: datetime | None = None
    answered_by: str | None = None
    recording_url: str | None = None
    # Twilio's Direction, From and To: what a call nobody logged (its webhook failed) is logged by.
    direction: str | None = None
    from_number: str | None = None
    to_number: str | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A call as the phone network holds it (fetched to settle a call whose final news was lost)."""

    call_sid: str
    status: CallStatus
    duration_seconds: int | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    answered_by: str | None = None


@dataclass(frozen=True, slots=True)
class DialOutcome:
    """How a ``Dial`` to an agent ended (Twilio's Dial action)."""

    call_sid: str
    agent_id: int | None
    status: str  # completed, answered, busy, no-answer, failed, canceled
    duration_seconds: int | None = None
    # The caller hung up before the Dial ended (the action's CallStatus is final): an agent
    # still ringing missed nothing.
    caller_gone: bool = False


@dataclass(frozen=True, slots=True)
class QueueOutcome:
    call_sid: str
    result: str  # bridged, hangup, redirected, leave, error, queue-full, system-error...
    queue_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class QueueWait:
    call_sid: str
    position: int
    queue_seconds: int


@dataclass(frozen=True, slots=True)
class Recording:
    call_sid: str
    recording_url: str
    recording_sid: str | None
    duration_seconds: int | None


@dataclass(frozen=True, slots=True)
class OutboundAnswer:
    """A call the application placed was picked up: what should it hear? ``answered_by`` is the
    answering-machine detection's verdict when detection ran before the answer (human,
    machine_start, machine_end_beep, machine_end_silence, machine_end_other, fax, unknown)."""

    call_sid: str
    to_number: str
    from_number: str
    answered_by: str | None = None


@dataclass(frozen=True, slots=True)
class MachineDetection:
    """The answering-machine detection's verdict on a placed call, reported after the answer."""

    call_sid: str
    answered_by: str
    detection_ms: int | None = None


class DecisionKind(enum.StrEnum):
    CONNECT_AGENT = "connect-agent"
    ENQUEUE = "enqueue"
    VOICEMAIL = "voicemail"
    HANG_UP = "hang-up"
    HOLD_MESSAGE = "hold-message"


@dataclass(frozen=True, slots=True)
class CallDecision:
    """What the caller hears and where the call goes next; rendered by the voice channel."""

    kind: DecisionKind
    agent_id: int | None = None
    agent_identity: str | None = None
    agent_number: str | None = None
    queue_name: str = "support"
    say: list[str] = field(default_factory=list)
    ring_seconds: int = 20


def agent_identity(agent_id: int) -> str:
    """The Voice SDK client identity of an agent's browser (inbound offers and campaign rooms ring it)."""
    return f"agent-{agent_id}"
