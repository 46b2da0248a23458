"""Domain events: facts the core announces after a unit of work commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crm_core.models.base import utcnow

CUSTOMER_CREATED = "customer.created"
CUSTOMER_UPDATED = "customer.updated"
CUSTOMER_MERGED = "customer.merged"
CUSTOMER_CLAIMED = "customer.claimed"
INTERACTION_LOGGED = "interaction.logged"
INTERACTION_UPDATED = "interaction.updated"
TICKET_OPENED = "ticket.opened"
TICKET_UPDATED = "ticket.updated"
TICKET_COMMENTED = "ticket.commented"


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
