"""The call events an agent's console is told of: the screen-pop and a call's new state, built
from the voice desk's objects (their names, payloads and audiences are in ``contact_center.events``)."""

from __future__ import annotations

from contact_center import events
from crm_core.events import DomainEvent
from crm_core.models import Interaction
from crm_core.services.customer_card import CustomerCard


def screen_pop(
    agent_id: int, call_sid: str, interaction_id: int, caller: str | None, card: CustomerCard | None
) -> DomainEvent:
    """The ``call.screen_pop`` event: the caller's card for the agent being rung."""
    return events.screen_pop(
        {
            "agent_id": agent_id,
            "call_sid": call_sid,
            "interaction_id": interaction_id,
            "from": caller,
            "card": card.to_json() if card else None,
        },
    )


def call_updated(
    call_sid: str | None,
    interaction_id: int,
    customer_id: int,
    agent_id: int | None,
    state: str,
    ticket_id: int | None,
) -> DomainEvent:
    """The ``call.updated`` event: the call's new state (queued, answered, or its status)."""
    return events.call_updated(
        {
            "call_sid": call_sid,
            "interaction_id": interaction_id,
            "customer_id": customer_id,
            "agent_id": agent_id,
            "state": state,
            "ticket_id": ticket_id,
        },
    )


def call_event(interaction: Interaction, state: str) -> DomainEvent:
    """``call.updated`` for the call logged as ``interaction``."""
    return call_updated(
        interaction.external_id,
        interaction.id,
        interaction.customer_id,
        interaction.agent_id,
        state,
        interaction.ticket_id,
    )
