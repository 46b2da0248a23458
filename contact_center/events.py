"""The application's events: the catalogue of what the service itself announces on the bus.

Beside the core's events (``crm_core.events``: customers, interactions, tickets, texts, mail), the
application announces calls ringing and progressing, agents' presence, chats and agents' access.
Each is declared once here, as an :class:`~crm_core.events.EventSpec`: its name, its payload's type
and its audience. Emitters build events by calling the spec with a payload (mypy checks its keys);
``contact_center.realtime`` looks an event's spec up with :func:`spec_of` and delivers it by the
audience the spec declares. Capabilities adapt their own objects into these payloads (e.g.
``contact_center.voice.events``), and import this module, never each other.

This module is shared infrastructure: it imports the core and the channels' data, never a
capability package.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, TypedDict

from crm_core.events import CORE_EVENTS, Audience, EventSpec, catalogue, merged

# --- names -------------------------------------------------------------------------------------

SCREEN_POP = "call.screen_pop"
CALL_UPDATED = "call.updated"
PRESENCE_CHANGED = "presence.changed"
AGENT_ACCESS_CHANGED = "agent.access_changed"
BUS_RESYNC = "bus.resync"
CHAT_ASSIGNED = "chat.assigned"
CHAT_MESSAGE = "chat.message"
CHAT_TYPING = "chat.typing"
CHAT_READ = "chat.read"
CHAT_CLOSED = "chat.closed"
VISITOR_BACK = "chat.visitor_back"
VISITOR_QUEUE = "chat.visitor.queue"
VISITOR_ASSIGNED = "chat.visitor.assigned"
VISITOR_TYPING = "chat.visitor.typing"
VISITOR_READ = "chat.visitor.read"
VISITOR_CLOSED = "chat.visitor.closed"
VISITOR_BLOCKED = "chat.visitor.blocked"


# --- payloads ----------------------------------------------------------------------------------

# The caller's card for the agent being rung ("from" is a keyword: the functional syntax gives it).
ScreenPop = TypedDict(
    "ScreenPop",
    {
        "agent_id": int,
        "call_sid": str,
        "interaction_id": int,
        "from": str | None,
        "card": dict[str, Any] | None,
    },
)


class CallUpdated(TypedDict):
    """A call's new state: queued, answered, or its status; no agent yet when queued."""

    call_sid: str | None
    interaction_id: int
    customer_id: int
    agent_id: int | None
    state: str
    ticket_id: int | None


class PresenceChanged(TypedDict):
    """An agent's new presence (times in ISO 8601)."""

    agent_id: int
    state: str
    since: str
    until: str | None
    call_sid: str | None


class AgentAccessChanged(TypedDict):
    """What an agent may do, or their sessions, changed: every instance closes the agent's sockets
    of every browser session (or of ``session_id`` only), and with ``tokens`` those opened with an
    API token."""

    agent_id: int
    reason: str
    tokens: bool
    session_id: int | None


class BusResync(TypedDict):
    """Events may have been lost on the bus (this instance subscribed again after losing its
    subscription, or an instance could not publish): every instance that hears it sends its
    sockets what they missed, from the database."""

    reason: str


class ChatVisitor(TypedDict):
    name: str | None
    email: str | None
    phone: str | None
    origin: str | None


class _ToAgent(TypedDict):
    agent_id: int | None
    conversation_id: int


class ChatAssigned(_ToAgent):
    interaction_id: int | None
    card: dict[str, Any] | None
    visitor: ChatVisitor
    history: list[dict[str, Any]]


class ChatMessage(_ToAgent):
    """One message: for the chat's agent (when it has one) and every socket of the visitor."""

    visitor_id: str
    message: dict[str, Any]  # a ChatLine's JSON


class ChatTyping(_ToAgent):
    typing: bool
    who: str


class ChatRead(_ToAgent):
    reader: str
    up_to: int


class ChatClosed(_ToAgent):
    by: str


class _ToVisitor(TypedDict):
    visitor_id: str


class VisitorBack(_ToVisitor):
    """A visitor with a waiting chat connected again, on any instance: not abandoned."""


class VisitorQueue(_ToVisitor):
    position: int


class VisitorAssigned(_ToVisitor):
    agent_name: str | None


class VisitorTyping(_ToVisitor):
    typing: bool


class VisitorRead(_ToVisitor):
    up_to: int


class VisitorClosed(_ToVisitor):
    by: str


class VisitorBlocked(_ToVisitor):
    pass


# --- the catalogue -----------------------------------------------------------------------------


def _message_key(payload: Mapping[str, Any]) -> Hashable:
    return (CHAT_MESSAGE, payload["message"]["message_id"])


_WATCHED = Audience.AGENT | Audience.TEAM

screen_pop = EventSpec(SCREEN_POP, ScreenPop, _WATCHED)
call_updated = EventSpec(CALL_UPDATED, CallUpdated, _WATCHED | Audience.SUPERVISORS, team_fields=("state",))
presence_changed = EventSpec(
    PRESENCE_CHANGED, PresenceChanged, _WATCHED, team_fields=("state", "since", "until")
)
# Nobody is shown it: the realtime hub acts on it (closes the agent's sockets).
agent_access_changed = EventSpec(AGENT_ACCESS_CHANGED, AgentAccessChanged, Audience.NOBODY)
# Nobody is shown it: the hubs act on it (resend what their sockets missed).
bus_resync = EventSpec(BUS_RESYNC, BusResync, Audience.NOBODY)
chat_assigned = EventSpec(CHAT_ASSIGNED, ChatAssigned, _WATCHED)
# A message may be delivered again (a resync): each socket is shown it once.
chat_message = EventSpec(CHAT_MESSAGE, ChatMessage, Audience.AGENT | Audience.VISITOR, key=_message_key)
chat_typing = EventSpec(CHAT_TYPING, ChatTyping, Audience.AGENT)
chat_read = EventSpec(CHAT_READ, ChatRead, Audience.AGENT)
chat_closed = EventSpec(CHAT_CLOSED, ChatClosed, _WATCHED)
visitor_back = EventSpec(VISITOR_BACK, VisitorBack, Audience.NOBODY)
visitor_queue = EventSpec(VISITOR_QUEUE, VisitorQueue, Audience.VISITOR)
visitor_assigned = EventSpec(VISITOR_ASSIGNED, VisitorAssigned, Audience.VISITOR)
visitor_typing = EventSpec(VISITOR_TYPING, VisitorTyping, Audience.VISITOR)
visitor_read = EventSpec(VISITOR_READ, VisitorRead, Audience.VISITOR)
visitor_closed = EventSpec(VISITOR_CLOSED, VisitorClosed, Audience.VISITOR)
visitor_blocked = EventSpec(VISITOR_BLOCKED, VisitorBlocked, Audience.VISITOR)

APP_EVENTS = catalogue(
    screen_pop,
    call_updated,
    presence_changed,
    agent_access_changed,
    bus_resync,
    chat_assigned,
    chat_message,
    chat_typing,
    chat_read,
    chat_closed,
    visitor_back,
    visitor_queue,
    visitor_assigned,
    visitor_typing,
    visitor_read,
    visitor_closed,
    visitor_blocked,
)
EVENTS = merged(CORE_EVENTS, APP_EVENTS)
"""Every event the service knows, by name."""


def spec_of(name: str) -> EventSpec[Any] | None:
    """The catalogue's entry for an event name; None for a name not in it (shown to nobody)."""
    return EVENTS.get(name)
