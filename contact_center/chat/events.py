"""The chat's events on the bus, built from the chat's objects (their names, payloads and audiences
are declared in ``contact_center.events``). They carry data; the visitor's frames are built from it
by ``channels.webchat.protocol`` where the visitor's sockets are.

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
from contact_center import events
from crm_core.events import Audience, DomainEvent
from crm_core.models import ChatConversation

# What the visitor is told besides messages, one event name each.
VisitorUpdate = QueuePosition | Assigned | AgentTyping | AgentRead | Closed | Blocked
_VISITOR_EVENTS: dict[str, type[VisitorUpdate]] = {
    events.VISITOR_QUEUE: QueuePosition,
    events.VISITOR_ASSIGNED: Assigned,
    events.VISITOR_TYPING: AgentTyping,
    events.VISITOR_READ: AgentRead,
    events.VISITOR_CLOSED: Closed,
    events.VISITOR_BLOCKED: Blocked,
}


# --- to the agent ------------------------------------------------------------------------------


def chat_assigned(
    conversation: ChatConversation, card: dict[str, Any] | None, history: Sequence[ChatLine]
) -> DomainEvent:
    return events.chat_assigned(
        {
            "agent_id": conversation.agent_id,
            "conversation_id": conversation.id,
            "interaction_id": conversation.interaction_id,
            "card": card,
            "visitor": {
                "name": conversation.visitor_name,
                "email": conversation.visitor_email,
                "phone": conversation.visitor_phone,
                "origin": conversation.origin,
            },
            "history": [line.to_json() for line in history],
        }
    )


def visitor_typing(conversation: ChatConversation, typing: bool) -> DomainEvent:
    return events.chat_typing(
        {
            "agent_id": conversation.agent_id,
            "conversation_id": conversation.id,
            "typing": typing,
            "who": "visitor",
        }
    )


def visitor_read(conversation: ChatConversation, up_to: int) -> DomainEvent:
    return events.chat_read(
        {
            "agent_id": conversation.agent_id,
            "conversation_id": conversation.id,
            "reader": "visitor",
            "up_to": up_to,
        }
    )


def chat_closed(conversation: ChatConversation, by: str) -> DomainEvent:
    return events.chat_closed(
        {"agent_id": conversation.agent_id, "conversation_id": conversation.id, "by": by}
    )


# --- to both -----------------------------------------------------------------------------------


def message_posted(
    conversation_id: int, agent_id: int | None, visitor_id: str, line: ChatLine
) -> DomainEvent:
    """One event per message: the chat's agent gets it as ``chat.message`` (when the chat has one)
    and the visitor's sockets get the message."""
    return events.chat_message(
        {
            "agent_id": agent_id,
            "conversation_id": conversation_id,
            "visitor_id": visitor_id,
            "message": line.to_json(),
        },
    )


# --- to the visitor ----------------------------------------------------------------------------


def to_visitor(visitor_id: str, update: VisitorUpdate) -> DomainEvent:
    match update:
        case QueuePosition(position=position):
            return events.visitor_queue({"visitor_id": visitor_id, "position": position})
        case Assigned(agent_name=agent_name):
            return events.visitor_assigned({"visitor_id": visitor_id, "agent_name": agent_name})
        case AgentTyping(typing=typing):
            return events.visitor_typing({"visitor_id": visitor_id, "typing": typing})
        case AgentRead(up_to=up_to):
            return events.visitor_read({"visitor_id": visitor_id, "up_to": up_to})
        case Closed(by=by):
            return events.visitor_closed({"visitor_id": visitor_id, "by": by})
        case Blocked():
            return events.visitor_blocked({"visitor_id": visitor_id})


def visitor_back(visitor_id: str) -> DomainEvent:
    return events.visitor_back({"visitor_id": visitor_id})


def for_visitor(event: DomainEvent) -> tuple[str, VisitorNotice] | None:
    """The visitor ``event`` is for and what their sockets are shown; None for events whose
    audience (in the catalogue) is not the visitor."""
    spec = events.spec_of(event.name)
    if spec is None or Audience.VISITOR not in spec.audience:
        return None
    if event.name == events.CHAT_MESSAGE:
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
