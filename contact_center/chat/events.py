"""The chat's events on the bus: names and what they carry. They carry data; the visitor's frames
are built from it by ``channels.webchat.protocol`` where the visitor's sockets are.

To the agent named in ``agent_id`` (``contact_center.realtime`` delivers them on ``/ws/agent``):
``chat.assigned`` (card, visitor, history), ``chat.message``, ``chat.typing`` and ``chat.read``
(the visitor's), ``chat.closed``.

To the visitor named in ``visitor_id`` (every socket of theirs, on any instance: see
:mod:`contact_center.chat.wiring`): ``chat.message`` too, and ``chat.visitor.queue``,
``.assigned``, ``.typing``, ``.read`` (the agent's), ``.closed`` and ``.blocked``.

``chat.visitor_back``: a visitor with a waiting chat connected again, on any instance: not
abandoned, wherever they left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from channels.webchat.protocol import (
    AgentRead,
    AgentTyping,
    Assigned,
    Blocked,
    ChatLine,
    Closed,
    QueuePosition,
    VisitorNotice,
)
from crm_core.events import DomainEvent
from crm_core.models import ChatConversation

CHAT_ASSIGNED = "chat.assigned"
CHAT_MESSAGE = "chat.message"
CHAT_TYPING = "chat.typing"
CHAT_READ = "chat.read"
CHAT_CLOSED = "chat.closed"
VISITOR_BACK = "chat.visitor_back"

# What the visitor is told besides messages, one event name each.
VisitorUpdate = QueuePosition | Assigned | AgentTyping | AgentRead | Closed | Blocked
_VISITOR_EVENTS: dict[str, type[VisitorUpdate]] = {
    "chat.visitor.queue": QueuePosition,
    "chat.visitor.assigned": Assigned,
    "chat.visitor.typing": AgentTyping,
    "chat.visitor.read": AgentRead,
    "chat.visitor.closed": Closed,
    "chat.visitor.blocked": Blocked,
}
_VISITOR_EVENT_OF = {kind: name for name, kind in _VISITOR_EVENTS.items()}
VISITOR_CLOSED = _VISITOR_EVENT_OF[Closed]
VISITOR_BLOCKED = _VISITOR_EVENT_OF[Blocked]


# --- to the agent ------------------------------------------------------------------------------


def _to_agent(name: str, conversation: ChatConversation, **data: Any) -> DomainEvent:
    return DomainEvent(name, {"agent_id": conversation.agent_id, "conversation_id": conversation.id, **data})


def chat_assigned(
    conversation: ChatConversation, card: dict[str, Any] | None, history: Sequence[ChatLine]
) -> DomainEvent:
    return _to_agent(
        CHAT_ASSIGNED,
        conversation,
        interaction_id=conversation.interaction_id,
        card=card,
        visitor={
            "name": conversation.visitor_name,
            "email": conversation.visitor_email,
            "phone": conversation.visitor_phone,
            "origin": conversation.origin,
        },
        history=[line.to_json() for line in history],
    )


def visitor_typing(conversation: ChatConversation, typing: bool) -> DomainEvent:
    return _to_agent(CHAT_TYPING, conversation, typing=typing, who="visitor")


def visitor_read(conversation: ChatConversation, up_to: int) -> DomainEvent:
    return _to_agent(CHAT_READ, conversation, reader="visitor", up_to=up_to)


def chat_closed(conversation: ChatConversation, by: str) -> DomainEvent:
    return _to_agent(CHAT_CLOSED, conversation, by=by)


# --- to both -----------------------------------------------------------------------------------


def message_posted(
    conversation_id: int, agent_id: int | None, visitor_id: str, line: ChatLine
) -> DomainEvent:
    """One event per message: the chat's agent gets it as ``chat.message`` (when the chat has one)
    and the visitor's sockets get the message."""
    return DomainEvent(
        CHAT_MESSAGE,
        {
            "agent_id": agent_id,
            "conversation_id": conversation_id,
            "visitor_id": visitor_id,
            "message": line.to_json(),
        },
    )


# --- to the visitor ----------------------------------------------------------------------------


def to_visitor(visitor_id: str, update: VisitorUpdate) -> DomainEvent:
    data = {field.name: getattr(update, field.name) for field in fields(update)}
    return DomainEvent(_VISITOR_EVENT_OF[type(update)], {"visitor_id": visitor_id, **data})


def visitor_back(visitor_id: str) -> DomainEvent:
    return DomainEvent(VISITOR_BACK, {"visitor_id": visitor_id})


def for_visitor(event: DomainEvent) -> tuple[str, VisitorNotice] | None:
    """The visitor ``event`` is for and what their sockets are shown; None for other events."""
    if event.name == CHAT_MESSAGE:
        visitor_id, message = event.payload.get("visitor_id"), event.payload.get("message")
        if not isinstance(visitor_id, str) or not isinstance(message, dict):
            return None
        try:
            return visitor_id, ChatLine.from_json(message)
        except (KeyError, TypeError, ValueError):
            return None
    kind = _VISITOR_EVENTS.get(event.name)
    if kind is None:
        return None
    data = dict(event.payload)
    visitor_id = data.pop("visitor_id", None)
    if not isinstance(visitor_id, str):
        return None
    try:
        return visitor_id, kind(**data)
    except TypeError:
        return None
