"""Tickets: open, update, assign, transition, comment, list; helpers later channels thread with."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import false, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core import events
from crm_core.db import UnitOfWork
from crm_core.errors import Forbidden, InvalidInput, NotFound
from crm_core.models import Agent, Counter, Customer, Team, Ticket, TicketComment, utcnow
from crm_core.rules.ticket_status import ACTIVE_STATUSES, TicketStatus, check_transition
from crm_core.services.audit import audit
from crm_core.services.customers import get_visible
from crm_core.services.pages import Page, paginate
from crm_core.services.sla import agent_replied, customer_wrote, track_ticket
from crm_core.sql import insert_ignore
from crm_core.types import Channel, Priority
from crm_core.visibility import Viewer, ticket_filter

TICKET_COUNTER = "ticket_number"


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """Due times by priority, counted from the ticket's creation."""

    first_response: Mapping[Priority, timedelta] = field(
        default_factory=lambda: {
            Priority.URGENT: timedelta(minutes=30),
            Priority.HIGH: timedelta(hours=1),
            Priority.NORMAL: timedelta(hours=4),
            Priority.LOW: timedelta(hours=24),
        }
    )
    resolution: Mapping[Priority, timedelta] = field(
        default_factory=lambda: {
            Priority.URGENT: timedelta(hours=4),
            Priority.HIGH: timedelta(hours=24),
            Priority.NORMAL: timedelta(days=3),
            Priority.LOW: timedelta(days=7),
        }
    )
    first_number: int = 1000

    def due_times(self, priority: Priority, start: datetime) -> tuple[datetime, datetime]:
        return start + self.first_response[priority], start + self.resolution[priority]


async def next_ticket_number(session: AsyncSession, first_number: int) -> int:
    """The next human-readable number; the counter row lock serialises concurrent openers."""
    stmt = (
        update(Counter)
        .where(Counter.name == TICKET_COUNTER)
        .values(value=Counter.value + 1)
        .returning(Counter.value)
    )
    value = (await session.execute(stmt)).scalar_one_or_none()
    if value is None:
        await insert_ignore(session, Counter, {"name": TICKET_COUNTER, "value": first_number - 1}, ["name"])
        value = (await session.execute(stmt)).scalar_one()
    return int(value)


def plain(value: Any) -> Any:
    """An audit-friendly value: enums by their value, everything else as it is."""
    return value.value if isinstance(value, enum.Enum) else value


def _state(ticket: Ticket) -> events.TicketState:
    return {
        "ticket_id": ticket.id,
        "number": ticket.number,
        "customer_id": ticket.customer_id,
        "assignee_id": ticket.assignee_id,
        # The realtime hub delivers events to the agent named "agent_id": the assignee.
        "agent_id": ticket.assignee_id,
        "team_id": ticket.team_id,
        "status": str(ticket.status),
    }


def _updated(ticket: Ticket, changes: list[str]) -> events.DomainEvent:
    return events.ticket_updated({**_state(ticket), "changes": changes})


def _commented(ticket: Ticket, comment_id: int, internal: bool) -> events.DomainEvent:
    return events.ticket_commented({**_state(ticket), "comment_id": comment_id, "internal": internal})


async def _check_assignee(session: AsyncSession, actor: Viewer | None, assignee_id: int) -> None:
    agent = await session.get(Agent, assignee_id)
    if agent is None or not agent.active:
        raise InvalidInput(f"agent {assignee_id} does not exist or is inactive", "assignee_id")
    if actor is None or actor.is_admin or assignee_id == actor.agent_id:
        return
    if actor.is_supervisor and actor.team_id is not None and agent.team_id == actor.team_id:
        return
    raise Forbidden("agents may only assign tickets to themselves; supervisors within their team")


async def _check_team(session: AsyncSession, team_id: int) -> None:
    if await session.get(Team, team_id) is None:
        raise InvalidInput(f"team {team_id} does not exist", "team_id")


async def open_ticket(
    uow: UnitOfWork,
    actor: Viewer | None,
    *,
    customer_id: int,
    subject: str,
    sla: SlaPolicy,
    priority: Priority = Priority.NORMAL,
    assignee_id: int | None = None,
    team_id: int | None = None,
    source_channel: Channel | None = None,
    linked_ticket_id: int | None = None,
    category: str | None = None,
    now: datetime | None = None,
) -> Ticket:
    """Open a ticket (its SLA due times counted from ``now``, the current time by default);
    ``actor`` None means the system (a channel) opened it."""
    session = uow.session
    if actor is not None:
        await get_visible(session, actor, customer_id)
    elif await session.get(Customer, customer_id) is None:
        raise NotFound(f"customer {customer_id} not found")
    if assignee_id is not None:
        await _check_assignee(session, actor, assignee_id)
    if team_id is not None:
        await _check_team(session, team_id)
    now = now or utcnow()
    first_due, resolution_due = sla.due_times(priority, now)
    ticket = Ticket(
        number=await next_ticket_number(session, sla.first_number),
        subject=subject.strip(),
        status=TicketStatus.NEW,
        priority=priority,
        customer_id=customer_id,
        assignee_id=assignee_id,
        team_id=team_id,
        source_channel=source_channel,
        linked_ticket_id=linked_ticket_id,
        category=category,
        first_response_due_at=first_due,
        resolution_due_at=resolution_due,
        created_at=now,
        updated_at=now,
    )
    session.add(ticket)
    await session.flush()
    await track_ticket(session, ticket, now)
    audit(
        session,
        "ticket",
        ticket.id,
        "opened",
        actor.agent_id if actor else None,
        {"number": ticket.number, "subject": ticket.subject, "assignee_id": assignee_id, "team_id": team_id},
    )
    uow.record(events.ticket_opened({**_state(ticket), "subject": ticket.subject}))
    return ticket


async def get_ticket(
    session: AsyncSession, viewer: Viewer, ticket_id: int, *, for_update: bool = False
) -> Ticket:
    stmt = select(Ticket).where(Ticket.id == ticket_id, ticket_filter(viewer))
    if for_update:
        stmt = stmt.with_for_update()
    ticket = (await session.execute(stmt)).scalar_one_or_none()
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found")
    return ticket


def _apply_status(ticket: Ticket, target: TicketStatus, now: datetime) -> None:
    check_transition(ticket.status, target)
    ticket.status = target
    if target is TicketStatus.RESOLVED:
        ticket.resolved_at = now
    elif target is TicketStatus.CLOSED:
        ticket.closed_at = now
        ticket.resolved_at = ticket.resolved_at or now
    elif target is TicketStatus.OPEN:
        ticket.resolved_at = None


async def update_ticket(
    uow: UnitOfWork,
    viewer: Viewer,
    ticket_id: int,
    changes: dict[str, Any],
    *,
    sla: SlaPolicy,
    now: datetime | None = None,
) -> Ticket:
    """Change subject, priority, status, assignee or team at ``now`` (the current time by
    default); every change is audited."""
    allowed = {"subject", "priority", "status", "assignee_id", "team_id"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    session = uow.session
    ticket = await get_ticket(session, viewer, ticket_id, for_update=True)
    now = now or utcnow()
    record: dict[str, list[Any]] = {}

    def note(name: str, old: Any, new: Any) -> None:
        if old != new:
            record[name] = [plain(old), plain(new)]

    if "subject" in changes and changes["subject"].strip() != ticket.subject:
        subject = changes["subject"].strip()
        if not subject:
            raise InvalidInput("subject is empty", "subject")
        note("subject", ticket.subject, subject)
        ticket.subject = subject
    if "priority" in changes and changes["priority"] != ticket.priority:
        priority = Priority(changes["priority"])
        note("priority", ticket.priority, priority)
        ticket.priority = priority
        first_due, resolution_due = sla.due_times(priority, ticket.created_at)
        if ticket.first_responded_at is None:
            ticket.first_response_due_at = first_due
        ticket.resolution_due_at = resolution_due
    if "assignee_id" in changes and changes["assignee_id"] != ticket.assignee_id:
        if changes["assignee_id"] is not None:
            await _check_assignee(session, viewer, changes["assignee_id"])
        elif not (viewer.is_supervisor or ticket.assignee_id == viewer.agent_id):
            raise Forbidden("only the assignee or a supervisor can unassign a ticket")
        note("assignee_id", ticket.assignee_id, changes["assignee_id"])
        ticket.assignee_id = changes["assignee_id"]
    if "team_id" in changes and changes["team_id"] != ticket.team_id:
        if changes["team_id"] is not None:
            await _check_team(session, changes["team_id"])
        note("team_id", ticket.team_id, changes["team_id"])
        ticket.team_id = changes["team_id"]
    if "status" in changes and changes["status"] != ticket.status:
        target = TicketStatus(changes["status"])
        note("status", ticket.status, target)
        _apply_status(ticket, target, now)
    if record:
        ticket.updated_at = now
        await session.flush()
        if record.keys() & {"priority", "status", "team_id"}:
            await track_ticket(session, ticket, now)
        audit(session, "ticket", ticket.id, "updated", viewer.agent_id, record)
        uow.record(_updated(ticket, sorted(record)))
    return ticket


async def transition(
    uow: UnitOfWork,
    viewer: Viewer,
    ticket_id: int,
    target: TicketStatus,
    *,
    sla: SlaPolicy,
    now: datetime | None = None,
) -> Ticket:
    return await update_ticket(uow, viewer, ticket_id, {"status": target}, sla=sla, now=now)


async def assign(
    uow: UnitOfWork,
    viewer: Viewer,
    ticket_id: int,
    assignee_id: int | None,
    *,
    sla: SlaPolicy,
    now: datetime | None = None,
) -> Ticket:
    return await update_ticket(uow, viewer, ticket_id, {"assignee_id": assignee_id}, sla=sla, now=now)


async def comment(
    uow: UnitOfWork,
    viewer: Viewer,
    ticket_id: int,
    body: str,
    *,
    internal: bool = True,
    now: datetime | None = None,
) -> TicketComment:
    session = uow.session
    ticket = await get_ticket(session, viewer, ticket_id)
    text = body.strip()
    if not text:
        raise InvalidInput("comment body is empty", "body")
    note = TicketComment(ticket_id=ticket.id, author_id=viewer.agent_id, body=text, internal=internal)
    session.add(note)
    now = now or utcnow()
    ticket.updated_at = now
    if not internal and ticket.first_responded_at is None:
        ticket.first_responded_at = now
    await session.flush()
    if not internal:
        await agent_replied(session, ticket, now)
    audit(
        session,
        "ticket",
        ticket.id,
        "commented",
        viewer.agent_id,
        {"comment_id": note.id, "internal": internal},
    )
    uow.record(_commented(ticket, note.id, internal))
    return note


async def list_comments(session: AsyncSession, viewer: Viewer, ticket_id: int) -> Sequence[TicketComment]:
    await get_ticket(session, viewer, ticket_id)
    rows = await session.scalars(
        select(TicketComment).where(TicketComment.ticket_id == ticket_id).order_by(TicketComment.id)
    )
    return list(rows)


async def list_tickets(
    session: AsyncSession,
    viewer: Viewer,
    *,
    limit: int,
    offset: int,
    statuses: Sequence[TicketStatus] = (),
    priority: Priority | None = None,
    assignee_id: int | None = None,
    unassigned: bool = False,
    team_id: int | None = None,
    customer_id: int | None = None,
    source_channel: Channel | None = None,
    q: str | None = None,
) -> Page[Ticket]:
    stmt = select(Ticket).where(ticket_filter(viewer))
    if statuses:
        stmt = stmt.where(Ticket.status.in_(list(statuses)))
    if priority is not None:
        stmt = stmt.where(Ticket.priority == priority)
    if unassigned:
        stmt = stmt.where(Ticket.assignee_id.is_(None))
    elif assignee_id is not None:
        stmt = stmt.where(Ticket.assignee_id == assignee_id)
    if team_id is not None:
        stmt = stmt.where(Ticket.team_id == team_id)
    if customer_id is not None:
        stmt = stmt.where(Ticket.customer_id == customer_id)
    if source_channel is not None:
        stmt = stmt.where(Ticket.source_channel == source_channel)
    if q:
        text = q.strip().lstrip("#")
        if text.isascii() and text.isdigit():
            # Ticket numbers are 32-bit; a longer number matches no ticket (and no SQL error).
            number = int(text)
            stmt = stmt.where(Ticket.number == number if number < 2**31 else false())
        else:
            # Every word must appear in the subject, in any order.
            for word in text.lower().split():
                stmt = stmt.where(func.lower(Ticket.subject).contains(word, autoescape=True))
    return await paginate(session, stmt, Ticket.id.desc(), limit=limit, offset=offset)


async def open_ticket_for_customer(
    session: AsyncSession,
    customer_id: int,
    *,
    source_channel: Channel | None = None,
    category: str | None = None,
) -> Ticket | None:
    """The customer's newest active ticket (optionally from one channel or of one category):
    for threading new contacts into what is already open."""
    stmt = select(Ticket).where(Ticket.customer_id == customer_id, Ticket.status.in_(list(ACTIVE_STATUSES)))
    if source_channel is not None:
        stmt = stmt.where(Ticket.source_channel == source_channel)
    if category is not None:
        stmt = stmt.where(Ticket.category == category)
    found: Ticket | None = await session.scalar(stmt.order_by(Ticket.id.desc()).limit(1))
    return found


async def find_by_number(session: AsyncSession, number: int) -> Ticket | None:
    found: Ticket | None = await session.scalar(select(Ticket).where(Ticket.number == number))
    return found


async def system_note(
    uow: UnitOfWork, ticket: Ticket, body: str, now: datetime | None = None
) -> TicketComment:
    """An internal note written by the service itself (a channel), with no author."""
    note = TicketComment(ticket_id=ticket.id, author_id=None, body=body, internal=True)
    uow.session.add(note)
    ticket.updated_at = now or utcnow()
    await uow.session.flush()
    uow.record(_commented(ticket, note.id, True))
    return note


async def reopen_for_customer(
    uow: UnitOfWork, ticket: Ticket, channel: str, now: datetime | None = None
) -> None:
    """The customer wrote again (by ``channel``) on a ticket that was waiting or resolved: it is
    open again, audited and announced like any status change."""
    old = ticket.status
    now = now or utcnow()
    _apply_status(ticket, TicketStatus.OPEN, now)
    ticket.updated_at = now
    await uow.session.flush()
    await customer_wrote(uow.session, ticket, now)  # the SLA clock runs again; an answer is due
    audit(uow.session, "ticket", ticket.id, "updated", None, {"status": [str(old), "open"], "by": channel})
    uow.record(_updated(ticket, ["status"]))
