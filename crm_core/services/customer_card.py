"""The customer card shown at screen-pop: everything an agent needs as the phone rings.

One SQL statement builds the whole card, whatever the customer's history: the customer and its
owner, with its phones, emails, active tickets and last interactions aggregated as JSON by the
database, so a lookup costs one round trip (see benchmarks/customer_card.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import JSON, Row, TextualSelect, text

from crm_core.models import utcnow
from crm_core.rules.ticket_status import ACTIVE_STATUSES
from crm_core.sql import Executor, dialect_name

RECENT_INTERACTIONS = 20


@dataclass(frozen=True, slots=True)
class CardTicket:
    id: int
    number: int
    subject: str
    status: str
    priority: str
    assignee_id: int | None
    resolution_due_at: datetime | None


@dataclass(frozen=True, slots=True)
class CardInteraction:
    id: int
    channel: str
    direction: str
    status: str
    started_at: datetime
    subject: str | None
    summary: str | None
    agent_id: int | None
    ticket_id: int | None


@dataclass(frozen=True, slots=True)
class CustomerCard:
    customer_id: int
    display_name: str
    company: str | None
    owner_id: int | None
    owner_name: str | None
    tags: list[str]
    segment: str | None
    timezone: str | None
    preferred_language: str | None
    phones: list[str]
    emails: list[str]
    open_tickets: list[CardTicket]
    recent_interactions: list[CardInteraction]

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "customer_id": self.customer_id,
            "display_name": self.display_name,
            "company": self.company,
            "owner": {"id": self.owner_id, "name": self.owner_name} if self.owner_id else None,
            "tags": self.tags,
            "segment": self.segment,
            "timezone": self.timezone,
            "preferred_language": self.preferred_language,
            "phones": self.phones,
            "emails": self.emails,
            "open_tickets": [
                {
                    "id": t.id,
                    "number": t.number,
                    "subject": t.subject,
                    "status": t.status,
                    "priority": t.priority,
                    "assignee_id": t.assignee_id,
                    "resolution_due_at": iso(t.resolution_due_at),
                }
                for t in self.open_tickets
            ],
            "recent_interactions": [
                {
                    "id": i.id,
                    "channel": i.channel,
                    "direction": i.direction,
                    "status": i.status,
                    "started_at": iso(i.started_at),
                    "subject": i.subject,
                    "summary": i.summary,
                    "agent_id": i.agent_id,
                    "ticket_id": i.ticket_id,
                }
                for i in self.recent_interactions
            ],
        }


_CARD_SQL = """
SELECT c.id, c.display_name, c.company, c.owner_id, o.display_name AS owner_name, c.tags, c.segment,
       c.timezone, c.preferred_language,
       (SELECT {agg}(p.e164) FROM (SELECT e164 FROM customer_phones
                                   WHERE customer_id = c.id ORDER BY id) p) AS phones,
       (SELECT {agg}(e.address) FROM (SELECT address FROM customer_emails
                                      WHERE customer_id = c.id ORDER BY id) e) AS emails,
       (SELECT {agg}({obj}('id', t.id, 'number', t.number, 'subject', t.subject, 'status', t.status,
                           'priority', t.priority, 'assignee_id', t.assignee_id,
                           'resolution_due_at', t.resolution_due_at))
          FROM tickets t WHERE t.customer_id = c.id AND t.status IN ({active})) AS open_tickets,
       (SELECT {agg}({obj}('id', r.id, 'channel', r.channel, 'direction', r.direction, 'status', r.status,
                           'started_at', r.started_at, 'subject', r.subject, 'summary', r.summary,
                           'agent_id', r.agent_id, 'ticket_id', r.ticket_id))
          FROM (SELECT i.id, i.channel, i.direction, i.status, i.started_at, i.subject, i.summary,
                       i.agent_id, i.ticket_id
                  FROM interactions i WHERE i.customer_id = c.id
                 ORDER BY i.started_at DESC, i.id DESC LIMIT {limit}) r) AS recent
  FROM {source}
  LEFT JOIN agents o ON o.id = c.owner_id
 WHERE {where}
"""
_BY_PHONE = ("customer_phones cp JOIN customers c ON c.id = cp.customer_id", "cp.e164 = :key")
_BY_ID = ("customers c", "c.id = :key")


@cache
def _card_statement(dialect: str, by: tuple[str, str]) -> TextualSelect:
    """Built once per dialect and key: the same object each time keeps SQLAlchemy's cache warm."""
    # The statuses are our own enum values, never user input.
    active = ", ".join(f"'{status.value}'" for status in sorted(ACTIVE_STATUSES))
    if dialect == "postgresql":
        parts = {"agg": "json_agg", "obj": "json_build_object"}
    else:
        parts = {"agg": "json_group_array", "obj": "json_object"}
    sql = _CARD_SQL.format(**parts, active=active, limit=RECENT_INTERACTIONS, source=by[0], where=by[1])
    return text(sql).columns(tags=JSON, phones=JSON, emails=JSON, open_tickets=JSON, recent=JSON)


def _timestamp(value: str | None) -> datetime | None:
    """JSON carries timestamps as text: ISO 8601 with offset (PostgreSQL) or naive UTC (SQLite)."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _card_from_row(row: Row[Any]) -> CustomerCard:
    tickets = sorted(row.open_tickets or [], key=lambda t: t["id"], reverse=True)
    recent = sorted(row.recent or [], key=lambda i: (_timestamp(i["started_at"]), i["id"]), reverse=True)
    return CustomerCard(
        customer_id=row.id,
        display_name=row.display_name,
        company=row.company,
        owner_id=row.owner_id,
        owner_name=row.owner_name,
        tags=list(row.tags or []),
        segment=row.segment,
        timezone=row.timezone,
        preferred_language=row.preferred_language,
        phones=[p for p in (row.phones or []) if p is not None],
        emails=[e for e in (row.emails or []) if e is not None],
        open_tickets=[
            CardTicket(
                t["id"],
                t["number"],
                t["subject"],
                t["status"],
                t["priority"],
                t["assignee_id"],
                _timestamp(t["resolution_due_at"]),
            )
            for t in tickets
        ],
        recent_interactions=[
            CardInteraction(
                i["id"],
                i["channel"],
                i["direction"],
                i["status"],
                _timestamp(i["started_at"]) or utcnow(),
                i["subject"],
                i["summary"],
                i["agent_id"],
                i["ticket_id"],
            )
            for i in recent
        ],
    )


async def _card(db: Executor, by: tuple[str, str], key: object) -> CustomerCard | None:
    statement = _card_statement(dialect_name(db), by)
    row = (await db.execute(statement, {"key": key})).one_or_none()
    return None if row is None else _card_from_row(row)


async def card_by_phone(db: Executor, e164: str) -> CustomerCard | None:
    """The card of the customer owning an E.164 number, or None for an unknown caller."""
    return await _card(db, _BY_PHONE, e164)


async def card_by_customer(db: Executor, customer_id: int) -> CustomerCard | None:
    """The card of a customer (a session or a connection: the card is one read-only statement)."""
    return await _card(db, _BY_ID, customer_id)
