"""Domain events: facts the core announces after a unit of work commits, and their catalogue.

An event travels as a :class:`DomainEvent`: a name and a JSON-safe dict payload (that is what the
bus carries). Each name is declared once, as an :class:`EventSpec`: the name, the payload's type (a
``TypedDict``, so mypy checks the keys of every payload built) and its :class:`Audience`, who must
see it live. Emitters build events through the spec (``events.ticket_opened({...})``); the realtime
hub looks the spec up by the event's name and delivers by the audience it declares.

This module is the catalogue of the core's events; the application's own (the screen-pop, a call's
progress, presence, chats, agents' access) are in ``contact_center.events``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, NotRequired, TypedDict, TypeVar

from crm_core.models.base import utcnow


@dataclass(frozen=True, slots=True)
class DomainEvent:
    name: str
    payload: dict[str, Any]
    occurred_at: datetime = field(default_factory=utcnow)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "payload": self.payload, "occurred_at": self.occurred_at.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DomainEvent:
        return cls(
            name=str(data["name"]),
            payload=dict(data["payload"]),
            occurred_at=datetime.fromisoformat(str(data["occurred_at"])),
        )


class Audience(enum.Flag):
    """Who must see an event live (on their socket), besides the subscribers that act on it."""

    NOBODY = 0
    """Internal: subscribers may act on it, no socket is shown it."""
    AGENT = enum.auto()
    """The agent named in the payload's ``agent_id``: the whole event, on their sockets."""
    TEAM = enum.auto()
    """The supervisors of the team of the agent named in ``agent_id``, and every admin: who and
    what state (the spec's ``team_fields``), never customer data."""
    SUPERVISORS = enum.auto()
    """Every supervisor and admin, when the event names no agent: a bare ``queue.changed``."""
    VISITOR = enum.auto()
    """The chat visitor named in ``visitor_id``, on every socket of theirs."""


P = TypeVar("P", bound=Mapping[str, Any])


@dataclass(frozen=True, slots=True)
class EventSpec(Generic[P]):
    """One event of the catalogue; calling it with a payload builds the event."""

    name: str
    payload: type[P]
    audience: Audience
    team_fields: tuple[str, ...] = ()
    """What supervisors are shown besides who (for ``Audience.TEAM``)."""
    key: Callable[[Mapping[str, Any]], Hashable] | None = None
    """What makes two events of this name the same, for events that may be delivered again (a
    resync after a bus outage): each socket is shown one of them once."""

    def __call__(self, payload: P) -> DomainEvent:
        return DomainEvent(self.name, dict(payload))


def catalogue(*specs: EventSpec[Any]) -> dict[str, EventSpec[Any]]:
    """Specs by name (each name declared once)."""
    by_name: dict[str, EventSpec[Any]] = {}
    for spec in specs:
        if spec.name in by_name:
            raise ValueError(f"event {spec.name!r} declared twice")
        by_name[spec.name] = spec
    return by_name


def merged(*catalogues: Mapping[str, EventSpec[Any]]) -> dict[str, EventSpec[Any]]:
    """One catalogue of several (each name still declared once)."""
    return catalogue(*(spec for specs in catalogues for spec in specs.values()))


# --- names -------------------------------------------------------------------------------------

CUSTOMER_CREATED = "customer.created"
CUSTOMER_UPDATED = "customer.updated"
CUSTOMER_MERGED = "customer.merged"
CUSTOMER_CLAIMED = "customer.claimed"
INTERACTION_LOGGED = "interaction.logged"
INTERACTION_UPDATED = "interaction.updated"
TICKET_OPENED = "ticket.opened"
TICKET_UPDATED = "ticket.updated"
TICKET_COMMENTED = "ticket.commented"
TICKET_ESCALATED = "ticket.escalated"
SMS_RECEIVED = "sms.received"
SMS_STATUS = "sms.status"
EMAIL_DELIVERY = "email.delivery"


# --- payloads ----------------------------------------------------------------------------------


class CustomerCreated(TypedDict):
    customer_id: int
    owner_id: int | None
    display_name: str | None
    source: NotRequired[str]  # "email", "voice", "phone"…: not given when an agent created it


class CustomerUpdated(TypedDict):
    customer_id: int
    fields: list[str]


class CustomerMerged(TypedDict):
    customer_id: int  # the survivor
    merged_id: int


class CustomerClaimed(TypedDict):
    customer_id: int
    owner_id: int | None


class InteractionLogged(TypedDict):
    interaction_id: int
    customer_id: int
    channel: str
    direction: str
    agent_id: int | None
    ticket_id: int | None


class InteractionUpdated(TypedDict):
    interaction_id: int
    customer_id: int
    agent_id: int | None
    disposition: str | None


class TicketState(TypedDict):
    ticket_id: int
    number: int
    customer_id: int
    assignee_id: int | None
    # The agent the event is delivered to: the assignee (mail opening a ticket names nobody).
    agent_id: NotRequired[int | None]
    team_id: int | None
    status: str


class TicketOpened(TicketState):
    subject: str


class TicketUpdated(TicketState):
    changes: list[str]


class TicketCommented(TicketState):
    comment_id: int
    internal: bool


class TicketEscalated(TicketState):
    """An escalation level fired, for each agent it notifies (``agent_id``)."""

    target: str  # first_response, next_response, resolution
    level: int
    due_at: str | None
    actions: list[str]


# A customer's text, for ``agent_id`` ("from" is a keyword: the functional syntax gives it).
SmsReceived = TypedDict(
    "SmsReceived",
    {
        "agent_id": int | None,
        "message_id": int,
        "interaction_id": int | None,
        "ticket_id": int | None,
        "customer_id": int | None,
        "from": str,
        "to": str,
        "body": str,
        "media": list[Any],
        "kind": str,
        "keyword": str | None,
        "opt_out": dict[str, str] | None,
    },
)


class SmsStatus(TypedDict):
    """Delivery state of a text, for the agent who sent it."""

    agent_id: int | None
    message_id: int
    message_sid: str | None
    ticket_id: int | None
    customer_id: int | None
    status: str
    error_code: int | None
    error_message: str | None


class EmailDelivery(TypedDict):
    """Delivery state of an outbound mail, for its sender (or else the ticket's assignee)."""

    agent_id: int | None
    email_id: int
    ticket_id: int | None
    interaction_id: int | None
    status: str
    attempts: int
    error: str | None


# --- the catalogue -----------------------------------------------------------------------------

customer_created = EventSpec(CUSTOMER_CREATED, CustomerCreated, Audience.NOBODY)
customer_updated = EventSpec(CUSTOMER_UPDATED, CustomerUpdated, Audience.NOBODY)
customer_merged = EventSpec(CUSTOMER_MERGED, CustomerMerged, Audience.NOBODY)
customer_claimed = EventSpec(CUSTOMER_CLAIMED, CustomerClaimed, Audience.NOBODY)
interaction_logged = EventSpec(INTERACTION_LOGGED, InteractionLogged, Audience.NOBODY)
interaction_updated = EventSpec(INTERACTION_UPDATED, InteractionUpdated, Audience.NOBODY)
ticket_opened = EventSpec(TICKET_OPENED, TicketOpened, Audience.AGENT)
ticket_updated = EventSpec(TICKET_UPDATED, TicketUpdated, Audience.AGENT)
ticket_commented = EventSpec(TICKET_COMMENTED, TicketCommented, Audience.NOBODY)
ticket_escalated = EventSpec(TICKET_ESCALATED, TicketEscalated, Audience.AGENT)
sms_received = EventSpec(SMS_RECEIVED, SmsReceived, Audience.AGENT)
sms_status = EventSpec(SMS_STATUS, SmsStatus, Audience.AGENT)
email_delivery = EventSpec(EMAIL_DELIVERY, EmailDelivery, Audience.AGENT)

CORE_EVENTS = catalogue(
    customer_created,
    customer_updated,
    customer_merged,
    customer_claimed,
    interaction_logged,
    interaction_updated,
    ticket_opened,
    ticket_updated,
    ticket_commented,
    ticket_escalated,
    sms_received,
    sms_status,
    email_delivery,
)
