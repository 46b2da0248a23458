"""The visitor socket's wire format: JSON text frames, each an object with a ``type``.

Visitor to service: ``hello`` (first frame: the visitor token, if any), ``start`` (pre-chat form),
``message`` (``id`` chosen by the browser, ``text``), ``typing``, ``read`` (``up_to`` a message id),
``leave_message`` (nobody online: name, email, phone, text), ``transcript`` (email the transcript
to ``email`` once the chat ends), ``close``.

Service to visitor: ``welcome`` (token, mode online/offline, the open conversation and its
history), ``started``, ``queue`` (position), ``assigned`` (agent name), ``ack`` (a message was
stored), ``message``, ``typing``, ``read``, ``closed``, ``offline``, ``message_left`` (ticket
number), ``transcript``, ``blocked``, ``error`` (code, message, field).

Texts are data: the widget renders them with ``textContent``, never as HTML.
"""

from __future__ import annotations

import json
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


def error_frame(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message, **extra}
    if field:
        frame["field"] = field
    return frame


def message_frame(
    *, message_id: int, client_id: str, sender: str, text: str, at: datetime, agent_name: str | None = None
) -> dict[str, Any]:
    return {
        "type": "message",
        "message_id": message_id,
        "id": client_id,
        "from": sender,
        "text": text,
        "at": at.isoformat(),
        "agent_name": agent_name,
    }


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, default=str)
