"""The event catalogue: every event declared once, with the audience the realtime hub delivers by."""

from __future__ import annotations

from datetime import UTC, datetime

from channels.webchat.protocol import QueuePosition
from contact_center import events
from contact_center.chat.events import for_visitor
from contact_center.realtime import team_frame
from crm_core import events as core_events
from crm_core.events import Audience, DomainEvent


def _names(audience: Audience) -> set[str]:
    return {name for name, spec in events.EVENTS.items() if audience in spec.audience}


def test_each_name_is_declared_once_and_found_by_name() -> None:
    assert set(events.EVENTS) == set(core_events.CORE_EVENTS) | set(events.APP_EVENTS)
    assert not set(core_events.CORE_EVENTS) & set(events.APP_EVENTS)
    for name, spec in events.EVENTS.items():
        assert spec.name == name
        assert events.spec_of(name) is spec
    assert events.spec_of("test.probe") is None


def test_the_agents_sockets_are_shown_the_events_for_the_agent_they_name() -> None:
    assert _names(Audience.AGENT) == {
        "call.screen_pop",
        "call.updated",
        "presence.changed",
        "ticket.opened",
        "ticket.updated",
        "ticket.escalated",
        "sms.received",
        "sms.status",
        "email.delivery",
        "chat.assigned",
        "chat.message",
        "chat.typing",
        "chat.read",
        "chat.closed",
    }


def test_supervisors_are_shown_who_and_what_state() -> None:
    assert _names(Audience.TEAM) == {
        "presence.changed",
        "call.updated",
        "call.screen_pop",
        "chat.assigned",
        "chat.closed",
    }
    assert _names(Audience.SUPERVISORS) == {"call.updated"}
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    presence = DomainEvent(
        "presence.changed",
        {"agent_id": 4, "state": "wrap_up", "since": "s", "until": "u", "call_sid": "CA1"},
        at,
    )
    assert team_frame(presence, events.presence_changed) == {
        "type": "presence.changed",
        "scope": "team",
        "at": at.isoformat(),
        "agent_id": 4,
        "call_sid": "CA1",
        "state": "wrap_up",
        "since": "s",
        "until": "u",
    }
    pop = events.screen_pop(
        {"agent_id": 4, "call_sid": "CA1", "interaction_id": 9, "from": "+1", "card": None}
    )
    assert team_frame(pop, events.screen_pop) == {
        "type": "call.screen_pop",
        "scope": "team",
        "at": pop.occurred_at.isoformat(),
        "agent_id": 4,
        "call_sid": "CA1",
    }


def test_visitors_are_shown_their_chat() -> None:
    assert _names(Audience.VISITOR) == {
        "chat.message",
        "chat.visitor.queue",
        "chat.visitor.assigned",
        "chat.visitor.typing",
        "chat.visitor.read",
        "chat.visitor.closed",
        "chat.visitor.blocked",
    }


def test_a_spec_builds_the_event_with_its_payload_as_given() -> None:
    payload: core_events.CustomerMerged = {"customer_id": 1, "merged_id": 2}
    event = core_events.customer_merged(payload)
    assert event.name == "customer.merged"
    assert event.payload == {"customer_id": 1, "merged_id": 2}
    assert event.payload is not payload
    assert DomainEvent.from_json(event.to_json()) == event


def test_a_visitor_is_shown_only_what_the_catalogue_addresses_to_visitors() -> None:
    queue = events.visitor_queue({"visitor_id": "v1", "position": 2})
    assert for_visitor(queue) == ("v1", QueuePosition(position=2))
    # Internal and agents' events name the visitor too, and are never shown to them.
    assert for_visitor(events.visitor_back({"visitor_id": "v1"})) is None
    for name in ("chat.visitor.queue", "chat.message"):
        spec = events.spec_of(name)
        assert spec is not None and Audience.VISITOR in spec.audience
