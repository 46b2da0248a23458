"""The visitor socket's wire format: JSON text frames, each an object with a ``type``.

Visitor to service: ``hello`` (first frame: the visitor token, if any), ``start`` (pre-chat form),
``message`` (``id`` chosen by the browser, ``text``), ``typing``, ``read`` (``up_to`` a message id),
``leave_message`` (nobody online: name, email, phone, text), ``transcript`` (email the transcript
to ``email`` once the chat ends), ``close``.

Service to visitor: ``welcome`` (token, mode online/offline, the open conversation and its
history), ``started``, ``queue`` (position), ``assigned`` (agent name), ``ack`` (a message was
stored), ``message``, ``typing``, ``read``, ``closed``, ``offline``, ``message_left`` (ticket
number), ``transcript``, ``blocked``, ``error`` (code, message, field).

Frames to the visitor are built here from typed values (:class:`ChatLine`, :class:`Ack`, ...): the
application hands those over, never frames of its own.

Texts are data: the widget renders them with ``textContent``, never as HTML.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from crm_core.rules import bounded_json
from crm_core.rules.storable_text import storable_json

# Frames are bounded well above any configured message limit; the desk applies the real limit.
MAX_FRAME_CHARS = 64 * 1024
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)]
MessageText = Annotated[str, StringConstraints(max_length=MAX_FRAME_CHARS)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Hello(_Frame):
    type: Literal["hello"]
    token: Annotated[str, StringConstraints(max_length=200)] | None = None


class Start(_Frame):
    type: Literal["start"]
    name: ShortText | None = None
    email: ShortText | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)] | None = None
    transcript: bool = False


class Send(_Frame):
    type: Literal["message"]
    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    text: MessageText


class Typing(_Frame):
    type: Literal["typing"]
    typing: bool


class Read(_Frame):
    type: Literal["read"]
    up_to: int = Field(ge=0, le=2**63 - 1)


class LeaveMessage(_Frame):
    type: Literal["leave_message"]
    name: ShortText | None = None
    email: ShortText | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)] | None = None
    text: MessageText


class RequestTranscript(_Frame):
    type: Literal["transcript"]
    email: ShortText


class Close(_Frame):
    type: Literal["close"]


VisitorFrame = Start | Send | Typing | Read | LeaveMessage | RequestTranscript | Close
_FRAMES: TypeAdapter[Annotated[Hello | VisitorFrame, Field(discriminator="type")]] = TypeAdapter(
    Annotated[Hello | VisitorFrame, Field(discriminator="type")]
)


class FrameError(Exception):
    """A frame the service cannot read; ``field`` names the offending field when known."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def parse_frame(raw: str) -> Hello | VisitorFrame:
    if len(raw) > MAX_FRAME_CHARS:
        raise FrameError("too_large", "the frame is too large")
    try:
        # NULs are dropped (as message text drops control characters), never stored.
        data = storable_json(bounded_json.loads(raw, text_storable=False))
    except bounded_json.JsonRefused as exc:
        raise FrameError("invalid_json", f"frames are JSON objects: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise FrameError("invalid_frame", "a frame is a JSON object with a string 'type'")
    try:
        return _FRAMES.validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        if err["type"] == "union_tag_invalid":
            raise FrameError("unknown_type", f"unknown frame type {data['type'][:40]!r}") from None
        field = ".".join(str(p) for p in err["loc"][1:]) or None
        raise FrameError("invalid_frame", err["msg"], field) from None


# --- frames to the visitor ---------------------------------------------------------------------
#
# The application hands these typed values to the channel (as answers to a frame, or for
# :class:`~channels.webchat.socket.VisitorSockets` to push); each builds its own frame.


def error_frame(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message, **extra}
    if field:
        frame["field"] = field
    return frame


@dataclass(frozen=True, slots=True)
class ChatLine:
    """One message of a chat, as the visitor's socket and the agent's console show it."""

    message_id: int
    client_id: str
    sender: str  # "visitor" or "agent"
    text: str
    at: datetime
    agent_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The message's fields under their wire names (the agent's events carry this too)."""
        return {
            "message_id": self.message_id,
            "id": self.client_id,
            "from": self.sender,
            "text": self.text,
            "at": self.at.isoformat(),
            "agent_name": self.agent_name,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChatLine:
        return cls(
            message_id=int(data["message_id"]),
            client_id=str(data["id"]),
            sender=str(data["from"]),
            text=str(data["text"]),
            at=datetime.fromisoformat(str(data["at"])),
            agent_name=None if data.get("agent_name") is None else str(data["agent_name"]),
        )

    def frame(self) -> dict[str, Any]:
        return {"type": "message", **self.to_json()}


@dataclass(frozen=True, slots=True)
class ConversationState:
    """The visitor's open conversation: who has it, read marks, and the place in the queue while
    it waits."""

    id: int
    status: str
    agent_name: str | None
    visitor_read_id: int | None
    agent_read_id: int | None
    position: int | None = None

    def to_json(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "agent_name": self.agent_name,
            "visitor_read_id": self.visitor_read_id,
            "agent_read_id": self.agent_read_id,
        }
        if self.position is not None:
            state["position"] = self.position
        return state


@dataclass(frozen=True, slots=True)
class Welcome:
    """What a (re)connecting visitor resumes: mode, open conversation and its history."""

    online: bool
    max_message_chars: int
    conversation: ConversationState | None = None
    history: Sequence[ChatLine] = ()

    def frame(self, token: str) -> dict[str, Any]:
        return {
            "type": "welcome",
            "token": token,
            "conversation": None if self.conversation is None else self.conversation.to_json(),
            "history": [line.frame() for line in self.history],
            "mode": "online" if self.online else "offline",
            "max_message_chars": self.max_message_chars,
        }


@dataclass(frozen=True, slots=True)
class Started:
    conversation: ConversationState

    def frame(self) -> dict[str, Any]:
        return {"type": "started", "conversation": self.conversation.to_json()}


@dataclass(frozen=True, slots=True)
class Offline:
    """Nobody to chat with now: the widget offers to leave a message."""

    def frame(self) -> dict[str, Any]:
        return {"type": "offline"}


@dataclass(frozen=True, slots=True)
class Ack:
    """The visitor's message ``client_id`` is stored."""

    client_id: str
    message_id: int
    at: datetime

    def frame(self) -> dict[str, Any]:
        return {"type": "ack", "id": self.client_id, "message_id": self.message_id, "at": self.at.isoformat()}


@dataclass(frozen=True, slots=True)
class MessageLeft:
    ticket_number: int

    def frame(self) -> dict[str, Any]:
        return {"type": "message_left", "ticket_number": self.ticket_number}


@dataclass(frozen=True, slots=True)
class TranscriptRequested:
    """The transcript goes to ``email``; ``queued`` when the chat had ended and it was queued now."""

    email: str
    queued: bool

    def frame(self) -> dict[str, Any]:
        return {"type": "transcript", "email": self.email, "queued": self.queued}


@dataclass(frozen=True, slots=True)
class QueuePosition:
    position: int

    def frame(self) -> dict[str, Any]:
        return {"type": "queue", "position": self.position}


@dataclass(frozen=True, slots=True)
class Assigned:
    agent_name: str | None

    def frame(self) -> dict[str, Any]:
        return {"type": "assigned", "agent_name": self.agent_name}


@dataclass(frozen=True, slots=True)
class AgentTyping:
    typing: bool

    def frame(self) -> dict[str, Any]:
        return {"type": "typing", "typing": self.typing}


@dataclass(frozen=True, slots=True)
class AgentRead:
    """The agent read the visitor's messages up to ``up_to``."""

    up_to: int

    def frame(self) -> dict[str, Any]:
        return {"type": "read", "reader": "agent", "up_to": self.up_to}


@dataclass(frozen=True, slots=True)
class Closed:
    by: str  # "visitor", "agent", "blocked" or "abandoned"

    def frame(self) -> dict[str, Any]:
        return {"type": "closed", "by": self.by}


@dataclass(frozen=True, slots=True)
class Blocked:
    """The visitor is blocked: their sockets are closed after this frame."""

    def frame(self) -> dict[str, Any]:
        return {"type": "blocked"}


# Answers to a visitor's frame, on the socket it came on.
VisitorReply = Started | Offline | Ack | MessageLeft | TranscriptRequested
# What reaches every socket of a visitor, on any instance.
VisitorNotice = ChatLine | QueuePosition | Assigned | AgentTyping | AgentRead | Closed | Blocked


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, default=str)
