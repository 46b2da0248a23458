"""The hot path of a phone call in single statements: no ORM objects, no multi-statement transaction.

A call from a known number costs two statements before its TwiML: :func:`look_up_caller` reads
the customer, their owner (for sticky routing) and whether this CallSid is already logged (a
retried webhook); :func:`log_inbound_call` inserts the voice interaction with its final routing
decision, ``ON CONFLICT DO NOTHING`` so that a retry racing the first delivery logs nothing twice.
While nobody is free, :func:`log_queued_calls` writes the callers arriving together in one
statement, each found by number inside it.
:func:`mark_answered` records who took the call in one conditional UPDATE. The call's routing state
(decision, routed agent, queued/offered/answered times) is in typed columns of the interaction.
Each statement is atomic on its own, so they run on an autocommit connection
(:func:`crm_core.sql.autocommit`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, Table, TextClause, bindparam, select, text

from crm_core.models import Customer, CustomerPhone, Interaction
from crm_core.sql import Executor, dialect_name
from crm_core.types import Channel, Direction
from crm_core.voice import DecisionKind

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
    decision: str | None
    routed_agent_id: int | None
    offered_at: datetime | None
    answered_at: datetime | None


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
    Interaction.call_decision,
    Interaction.routed_agent_id,
    Interaction.offered_at,
    Interaction.answered_at,
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
_TYPED = ("channel", "direction", "started_at", "metadata", "created_at", "queued_at")
_INSERT_CALL = text("""
INSERT INTO interactions
       (channel, direction, customer_id, external_id, agent_id, status, started_at, metadata, created_at,
        call_decision, routed_agent_id, queued_at)
VALUES (:channel, :direction, :customer_id, :external_id, :agent_id, :status, :started_at, :metadata,
        :created_at, :call_decision, :agent_id, :queued_at)
    ON CONFLICT (channel, external_id) DO NOTHING
RETURNING id, customer_id, (SELECT agents.phone FROM agents WHERE agents.id = interactions.agent_id)
""").bindparams(*(bindparam(name, type_=INTERACTIONS.c[name].type) for name in _TYPED))


async def log_inbound_call(
    db: Executor,
    *,
    call_sid: str,
    customer: int,
    agent_id: int | None,
    status: str,
    started_at: datetime,
    meta: dict[str, Any],
) -> LoggedCall | None:
    """Insert the call's voice interaction as routed (to ``agent_id``, or queued when None); None
    when this CallSid is already logged."""
    decision = DecisionKind.ENQUEUE if agent_id is None else DecisionKind.CONNECT_AGENT
    params = {
        "channel": Channel.VOICE,
        "direction": Direction.INBOUND,
        "external_id": call_sid,
        "agent_id": agent_id,
        "status": status,
        "started_at": started_at,
        "metadata": meta,
        "created_at": started_at,
        "customer_id": customer,
        "call_decision": decision.value,
        "queued_at": started_at if agent_id is None else None,
    }
    row = (await db.execute(_INSERT_CALL, params)).first()
    return None if row is None else LoggedCall(row[0], row[1], row[2])


@dataclass(frozen=True, slots=True)
class QueuedCall:
    """A call from a number on file answered with the queue (nobody was free), queued as it
    starts."""

    call_sid: str
    e164: str
    started_at: datetime
    meta: dict[str, Any]


MAX_QUEUED_PER_STATEMENT = 128
_QUEUED_COLUMNS = (("sid", "external_id"), ("at", "started_at"), ("meta", "metadata"), ("e164", None))
_PG_CASTS = {"sid": "VARCHAR", "at": "TIMESTAMP WITH TIME ZONE", "meta": "JSON", "e164": "VARCHAR"}


_LOG_QUEUED = """
INSERT INTO interactions
       (channel, direction, customer_id, external_id, agent_id, status, started_at, metadata, created_at,
        call_decision, queued_at)
SELECT :channel, :direction, customer_phones.customer_id, v.column1, NULL, :status, v.column2, v.column3,
       v.column2, :call_decision, v.column2
  FROM (VALUES {values}) AS v
  JOIN customer_phones ON customer_phones.e164 = v.column4
 WHERE TRUE
 ORDER BY v.column5
    ON CONFLICT (channel, external_id) DO NOTHING
RETURNING id, customer_id, external_id
"""


@cache
def _log_queued_statement(dialect: str, rows: int) -> TextClause:
    """One INSERT of ``rows`` queued calls, each joined to its customer by number (a row of NULLs
    joins nobody, which pads a group to a size whose statement is already prepared)."""

    def value(name: str, i: int) -> str:
        return f"CAST(:{name}_{i} AS {_PG_CASTS[name]})" if dialect == "postgresql" else f":{name}_{i}"

    values = ",\n       ".join(
        "(" + ", ".join(value(name, i) for name, _ in _QUEUED_COLUMNS) + f", {i})" for i in range(rows)
    )
    statement = text(_LOG_QUEUED.format(values=values))
    typed = [bindparam(name, type_=INTERACTIONS.c[name].type) for name in ("channel", "direction")]
    for name, column in _QUEUED_COLUMNS:
        if column is not None:
            typed += [bindparam(f"{name}_{i}", type_=INTERACTIONS.c[column].type) for i in range(rows)]
    return statement.bindparams(*typed)


async def log_queued_calls(db: Executor, calls: Sequence[QueuedCall], status: str) -> list[LoggedCall | None]:
    """Insert several queued calls in one statement (at most :data:`MAX_QUEUED_PER_STATEMENT`);
    for each, its interaction, or None when the CallSid is already logged (also earlier in
    ``calls``) or the number is not on file."""
    firsts: dict[str, QueuedCall] = {}
    for call in calls:
        firsts.setdefault(call.call_sid, call)
    unique = list(firsts.values())
    rows = 1 << max(0, len(unique) - 1).bit_length()  # the next power of two
    if rows > MAX_QUEUED_PER_STATEMENT:
        raise ValueError(f"at most {MAX_QUEUED_PER_STATEMENT} calls per statement, not {len(unique)}")
    params: dict[str, Any] = {
        "channel": Channel.VOICE,
        "direction": Direction.INBOUND,
        "status": status,
        "call_decision": DecisionKind.ENQUEUE.value,
    }
    for i in range(rows):
        row = unique[i] if i < len(unique) else None
        params[f"sid_{i}"] = row.call_sid if row else None
        params[f"at_{i}"] = row.started_at if row else None
        params[f"meta_{i}"] = row.meta if row else None
        params[f"e164_{i}"] = row.e164 if row else None
    result = await db.execute(_log_queued_statement(dialect_name(db), rows), params)
    logged = {row[2]: LoggedCall(row[0], row[1], None) for row in result}
    return [logged.pop(call.call_sid, None) for call in calls]  # a repeated CallSid: None


# Who answered is recorded only once: the first answer wins, repeats change nothing. An answered
# call leaves the queue whatever happened to its offer (a redirect whose answer was lost, a requeue
# racing the agent's pick-up): it is in progress, no longer waiting.
_MARK_ANSWERED = text("""
UPDATE interactions
   SET agent_id = :agent_id,
       status = CASE WHEN status IN ('queued-for-agent', 'offering') THEN 'in-progress' ELSE status END,
       answered_at = :answered_at,
       answered_by_id = :agent_id
 WHERE channel = 'voice' AND external_id = :call_sid AND answered_at IS NULL
RETURNING id, customer_id, ticket_id
""").bindparams(bindparam("answered_at", type_=INTERACTIONS.c.answered_at.type))


async def mark_answered(
    db: Executor, call_sid: str, agent_id: int, answered_at: datetime
) -> tuple[int, int, int | None] | None:
    """Record that ``agent_id`` answered the call: (interaction id, customer id, ticket id), or
    None when the call is unknown or its answer was already recorded (a repeated callback)."""
    params = {"call_sid": call_sid, "agent_id": agent_id, "answered_at": answered_at}
    row = (await db.execute(_MARK_ANSWERED, params)).first()
    return None if row is None else (row[0], row[1], row[2])
