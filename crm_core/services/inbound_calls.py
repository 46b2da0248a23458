"""The hot path of a phone call in single statements: no ORM objects, no multi-statement transaction.

A call from a known number costs two statements before its TwiML: :func:`look_up_caller` reads
the customer, their owner (for sticky routing) and whether this CallSid is already logged (a
retried webhook); :func:`log_inbound_call` inserts the voice interaction with its final routing
decision, ``ON CONFLICT DO NOTHING`` so that a retry racing the first delivery logs nothing twice.
:func:`mark_answered` records who took the call in one conditional UPDATE. Each statement is
atomic on its own, so they run on an autocommit connection (:func:`crm_core.sql.autocommit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, Table, TextClause, bindparam, select, text

from crm_core.models import Customer, CustomerPhone, Interaction
from crm_core.sql import Executor, dialect_name
from crm_core.types import Channel, Direction

INTERACTIONS = Interaction.__table__
assert isinstance(INTERACTIONS, Table)


@dataclass(frozen=True, slots=True)
class Caller:
    customer_id: int
    owner_id: int | None
    logged_id: int | None  # the interaction already logged for this CallSid (a retried webhook)


@dataclass(frozen=True, slots=True)
class LoggedCall:
    interaction_id: int
    customer_id: int
    agent_phone: str | None  # the routed agent's own phone, when they set one


@dataclass(frozen=True, slots=True)
class StoredCall:
    interaction_id: int
    customer_id: int
    agent_id: int | None
    ticket_id: int | None
    status: str
    meta: dict[str, Any]


_LOOKUP: Select[tuple[int, int | None, int | None]] = (
    select(
        Customer.id,
        Customer.owner_id,
        select(Interaction.id)
        .where(Interaction.channel == Channel.VOICE, Interaction.external_id == bindparam("call_sid"))
        .scalar_subquery(),
    )
    .select_from(CustomerPhone)
    .join(Customer, Customer.id == CustomerPhone.customer_id)
    .where(CustomerPhone.e164 == bindparam("e164"))
)

_STORED = select(
    Interaction.id,
    Interaction.customer_id,
    Interaction.agent_id,
    Interaction.ticket_id,
    Interaction.status,
    Interaction.meta,
).where(Interaction.channel == Channel.VOICE, Interaction.external_id == bindparam("call_sid"))


async def look_up_caller(db: Executor, e164: str, call_sid: str) -> Caller | None:
    """The customer owning ``e164`` exactly as stored (E.164), or None for a number not on file."""
    row = (await db.execute(_LOOKUP, {"e164": e164, "call_sid": call_sid})).first()
    return None if row is None else Caller(row[0], row[1], row[2])


async def stored_call(db: Executor, call_sid: str) -> StoredCall | None:
    row = (await db.execute(_STORED, {"call_sid": call_sid})).first()
    return None if row is None else StoredCall(*row)


# Spelled out rather than built with the dialects' insert(): SQLAlchemy does not cache the
# compilation of ON CONFLICT statements, and these run for every call. The routed agent's own
# phone (NULL when unset or nobody was routed) comes back with the new row's id.
_TYPED = ("channel", "direction", "started_at", "metadata", "created_at")
_INSERT_CALL = text("""
INSERT INTO interactions
       (channel, direction, customer_id, external_id, agent_id, status, started_at, metadata, created_at)
VALUES (:channel, :direction, :customer_id, :external_id, :agent_id, :status, :started_at, :metadata,
        :created_at)
    ON CONFLICT (channel, external_id) DO NOTHING
RETURNING id, customer_id, (SELECT agents.phone FROM agents WHERE agents.id = interactions.agent_id)
""").bindparams(*(bindparam(name, type_=INTERACTIONS.c[name].type) for name in _TYPED))
# The customer found by the number inside the insert: no row at all for a number not on file.
_INSERT_CALL_BY_PHONE = text("""
INSERT INTO interactions
       (channel, direction, customer_id, external_id, agent_id, status, started_at, metadata, created_at)
SELECT :channel, :direction, customer_phones.customer_id, :external_id, :agent_id, :status, :started_at,
       :metadata, :created_at
  FROM customer_phones
 WHERE customer_phones.e164 = :e164
    ON CONFLICT (channel, external_id) DO NOTHING
RETURNING id, customer_id, (SELECT agents.phone FROM agents WHERE agents.id = interactions.agent_id)
""").bindparams(*(bindparam(name, type_=INTERACTIONS.c[name].type) for name in _TYPED))


async def log_inbound_call(
    db: Executor,
    *,
    call_sid: str,
    customer: int | str,
    agent_id: int | None,
    status: str,
    started_at: datetime,
    meta: dict[str, Any],
) -> LoggedCall | None:
    """Insert the call's voice interaction as routed, for ``customer`` (an id, or the E.164 number
    of a customer on file); None when this CallSid is already logged or the number is not on file."""
    params = {
        "channel": Channel.VOICE,
        "direction": Direction.INBOUND,
        "external_id": call_sid,
        "agent_id": agent_id,
        "status": status,
        "started_at": started_at,
        "metadata": meta,
        "created_at": started_at,
    }
    if isinstance(customer, str):
        statement, params["e164"] = _INSERT_CALL_BY_PHONE, customer
    else:
        statement, params["customer_id"] = _INSERT_CALL, customer
    row = (await db.execute(statement, params)).first()
    return None if row is None else LoggedCall(row[0], row[1], row[2])


# Who answered goes into the metadata only once: the first answer wins, repeats change nothing.
# An answered call leaves the queue whatever happened to its offer (a redirect whose answer was
# lost, a requeue racing the agent's pick-up): it is in progress, no longer waiting.
_MARK_ANSWERED = {
    "postgresql": """
UPDATE interactions
   SET agent_id = :agent_id,
       status = CASE WHEN status IN ('queued-for-agent', 'offering') THEN 'in-progress' ELSE status END,
       metadata = (metadata::jsonb || jsonb_build_object('answered_at', CAST(:answered_at AS text),
                                                         'answered_by', CAST(:agent_id AS bigint)))::json
 WHERE channel = 'voice' AND external_id = :call_sid AND (metadata ->> 'answered_at') IS NULL
RETURNING id, customer_id, ticket_id
""",
    "sqlite": """
UPDATE interactions
   SET agent_id = :agent_id,
       status = CASE WHEN status IN ('queued-for-agent', 'offering') THEN 'in-progress' ELSE status END,
       metadata = json_set(metadata, '$.answered_at', :answered_at, '$.answered_by', :agent_id)
 WHERE channel = 'voice' AND external_id = :call_sid AND json_extract(metadata, '$.answered_at') IS NULL
RETURNING id, customer_id, ticket_id
""",
}


@cache
def _mark_answered(dialect: str) -> TextClause:
    return text(_MARK_ANSWERED[dialect])


async def mark_answered(
    db: Executor, call_sid: str, agent_id: int, answered_at: datetime
) -> tuple[int, int, int | None] | None:
    """Record that ``agent_id`` answered the call: (interaction id, customer id, ticket id), or
    None when the call is unknown or its answer was already recorded (a repeated callback)."""
    params = {"call_sid": call_sid, "agent_id": agent_id, "answered_at": answered_at.isoformat()}
    row = (await db.execute(_mark_answered(dialect_name(db)), params)).first()
    return None if row is None else (row[0], row[1], row[2])
