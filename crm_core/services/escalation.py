"""The escalation pass: fire every escalation level that has come due, exactly once per ticket.

Tickets whose ``next_check_at`` has passed are claimed in batches (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so every instance may run the pass; on SQLite the compare-and-set update is the lock).
A level fires when its ``escalation_firings`` row is inserted: the unique (ticket, rule) row makes
a second firing impossible even if two passes saw the same ticket. Its actions, the ticket's
history and the events are written in the same transaction; events are published after commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core import events
from crm_core.db import UnitOfWork
from crm_core.models import (
    Agent,
    AuditEntry,
    Customer,
    EscalationAction,
    EscalationFiring,
    EscalationRule,
    Role,
    Ticket,
    TicketSla,
)
from crm_core.services.email_outbound import EmailDraft
from crm_core.services.escalation_mail import EscalationMailer
from crm_core.services.sla import SlaBook, compute, due_at, fire_moment, fired_rules
from crm_core.sql import dialect_name, insert_module
from crm_core.types import Priority

LEASE = timedelta(minutes=5)
RAISED = {Priority.LOW: Priority.NORMAL, Priority.NORMAL: Priority.HIGH, Priority.HIGH: Priority.URGENT}


@dataclass(frozen=True, slots=True)
class PassReport:
    claimed: int
    fired: int
    mailed: int = 0


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[int]:
    """Ticket ids whose SLA check is due, each claimed by one pass (its check moved past a lease,
    so a pass that dies hands it back after ``LEASE``).

    On PostgreSQL the clock's row and its ticket's are locked together, and a ticket an agent is
    changing at this moment is left to a later pass: waiting for it could deadlock (the agent's
    change then waits for the clock's row) and writing over it would lose the change."""
    due = TicketSla.next_check_at <= now
    pick = select(TicketSla.ticket_id).where(due).order_by(TicketSla.next_check_at).limit(limit)
    if dialect_name(session) == "postgresql":
        pick = pick.join(Ticket, Ticket.id == TicketSla.ticket_id).with_for_update(skip_locked=True)
    ids = list(await session.scalars(pick))
    if not ids:
        return []
    taken = await session.execute(
        update(TicketSla)
        .where(TicketSla.ticket_id.in_(ids), due)
        .values(next_check_at=now + LEASE)
        .returning(TicketSla.ticket_id)
        .execution_options(synchronize_session=False)
    )
    return sorted(set(taken.scalars()))


@dataclass(slots=True)
class Directory:
    """Who escalations notify: each assignee's supervisor and team, the teams' supervisors, admins."""

    assignees: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)  # supervisor, team
    supervisors: dict[int, list[int]] = field(default_factory=dict)  # by team
    admins: list[int] = field(default_factory=list)
    emails: dict[int, str] = field(default_factory=dict)

    @classmethod
    async def load(cls, session: AsyncSession, assignee_ids: set[int]) -> Directory:
        directory = cls()
        staff = await session.execute(
            select(Agent.id, Agent.role, Agent.team_id, Agent.email).where(
                Agent.active.is_(True), Agent.role.in_((Role.SUPERVISOR, Role.ADMIN))
            )
        )
        for agent_id, role, team_id, email in staff:
            if email:
                directory.emails[agent_id] = email
            if role is Role.ADMIN:
                directory.admins.append(agent_id)
            elif team_id is not None:
                directory.supervisors.setdefault(team_id, []).append(agent_id)
        if assignee_ids:
            rows = await session.execute(
                select(Agent.id, Agent.supervisor_id, Agent.team_id, Agent.email).where(
                    Agent.id.in_(assignee_ids)
                )
            )
            for agent_id, sup, team, email in rows:
                directory.assignees[agent_id] = (sup, team)
                if email:
                    directory.emails[agent_id] = email
        return directory

    def recipients(self, ticket: Ticket, actions: Sequence[str]) -> list[int]:
        wanted: list[int] = []
        supervisor, assignee_team = self.assignees.get(ticket.assignee_id or 0, (None, None))
        if EscalationAction.NOTIFY_ASSIGNEE in actions and ticket.assignee_id is not None:
            wanted.append(ticket.assignee_id)
        if EscalationAction.NOTIFY_SUPERVISOR in actions:
            if supervisor is not None:
                wanted.append(supervisor)
            team = ticket.team_id if ticket.team_id is not None else assignee_team
            wanted.extend(self.supervisors.get(team or 0, []))
        if EscalationAction.NOTIFY_ADMIN in actions:
            wanted.extend(self.admins)
        return list(dict.fromkeys(wanted))


def _apply(ticket: Ticket, rule: EscalationRule) -> dict[str, object]:
    changes: dict[str, object] = {}
    if EscalationAction.RAISE_PRIORITY in rule.actions and ticket.priority in RAISED:
        changes["priority"] = [str(ticket.priority), str(RAISED[ticket.priority])]
        ticket.priority = RAISED[ticket.priority]
    team_id = rule.reassign_team_id
    if EscalationAction.REASSIGN_TEAM in rule.actions and team_id is not None and ticket.team_id != team_id:
        changes["team_id"] = [ticket.team_id, team_id]
        changes["assignee_id"] = [ticket.assignee_id, None]
        ticket.team_id, ticket.assignee_id = team_id, None
    return changes


def _due_levels(book: SlaBook, sla: TicketSla, fired: set[int], now: datetime) -> list[EscalationRule]:
    policy = book.policy(sla.policy_id)
    if policy is None:
        return []
    calendar = book.calendar(policy)
    due = []
    for rule in book.rules.get(policy.id, []):
        if rule.id not in fired:
            moment = fire_moment(rule, sla, policy, calendar)
            if moment is not None and moment <= now:
                due.append(rule)
    return due


async def _insert_firings(
    session: AsyncSession, pairs: list[tuple[TicketSla, EscalationRule]], now: datetime
) -> set[tuple[int, int]]:
    """Insert the firings; those another pass inserted first are left out of the answer."""
    if not pairs:
        return set()
    rows = [
        {"ticket_id": s.ticket_id, "rule_id": r.id, "target": r.target, "level": r.level, "fired_at": now}
        for s, r in pairs
    ]
    table = EscalationFiring.__table__
    stmt = (
        insert_module(dialect_name(session))
        .insert(table)
        .on_conflict_do_nothing(index_elements=["ticket_id", "rule_id"])
        .returning(table.c.ticket_id, table.c.rule_id)
    )
    # Many rows at once, one statement compiled once (executemany with RETURNING).
    return {(t, r) for t, r in (await session.execute(stmt, rows)).all()}


def _record(
    uow: UnitOfWork, ticket: Ticket, sla: TicketSla, rule: EscalationRule, directory: Directory, now: datetime
) -> tuple[dict[str, object], list[int]]:
    """Apply the level's actions and announce it; the ticket's history entry and who was
    notified are returned."""
    changes = _apply(ticket, rule)
    recipients = directory.recipients(ticket, rule.actions)
    due = due_at(sla, rule.target)
    shown_due = due.isoformat() if due else None
    for agent_id in recipients:
        uow.record(
            events.ticket_escalated(
                {
                    "ticket_id": ticket.id,
                    "number": ticket.number,
                    "customer_id": ticket.customer_id,
                    "assignee_id": ticket.assignee_id,
                    "agent_id": agent_id,
                    "team_id": ticket.team_id,
                    "status": str(ticket.status),
                    "target": str(rule.target),
                    "level": rule.level,
                    "due_at": shown_due,
                    "actions": list(rule.actions),
                }
            )
        )
    return {
        "entity_type": "ticket",
        "entity_id": ticket.id,
        "action": "sla.escalated",
        "actor_id": None,
        "changes": {
            "target": str(rule.target),
            "level": rule.level,
            "actions": list(rule.actions),
            "due_at": shown_due,
            "notified": recipients,
            **changes,
        },
        "created_at": now,
    }, recipients


def _ticket_values(ticket: Ticket) -> tuple[object, ...]:
    return (
        ticket.priority,
        ticket.team_id,
        ticket.assignee_id,
        ticket.first_response_due_at,
        ticket.resolution_due_at,
    )


async def _escalate_batch(
    uow: UnitOfWork, book: SlaBook, ids: list[int], now: datetime, mailer: EscalationMailer | None
) -> tuple[int, int]:
    session = uow.session
    slas = list(await session.scalars(select(TicketSla).where(TicketSla.ticket_id.in_(ids))))
    tickets = {t.id: t for t in await session.scalars(select(Ticket).where(Ticket.id.in_(ids)))}
    customers: dict[int, Customer] = {}
    if book.reads_customers():
        wanted = {t.customer_id for t in tickets.values()}
        customers = {c.id: c for c in await session.scalars(select(Customer).where(Customer.id.in_(wanted)))}
    fired = await fired_rules(session, ids)
    pairs = [
        (sla, rule) for sla in slas for rule in _due_levels(book, sla, fired.get(sla.ticket_id, set()), now)
    ]
    won = await _insert_firings(session, pairs, now)
    directory = await Directory.load(
        session, {t.assignee_id for t in tickets.values() if t.assignee_id is not None}
    )
    before = {t.id: _ticket_values(t) for t in tickets.values()}
    history: list[dict[str, object]] = []
    mail: list[EmailDraft] = []
    for sla, rule in pairs:
        fired.setdefault(sla.ticket_id, set()).add(rule.id)  # fired now, or by another pass before
        ticket = tickets.get(sla.ticket_id)
        if ticket is not None and (sla.ticket_id, rule.id) in won:
            entry, notified = _record(uow, ticket, sla, rule, directory, now)
            history.append(entry)
            if mailer is not None:
                due = due_at(sla, rule.target)
                addresses = (directory.emails.get(agent_id) for agent_id in notified)
                mail.extend(mailer.draft(ticket, rule, due, to) for to in addresses if to)
    for sla in slas:
        ticket = tickets.get(sla.ticket_id)
        if ticket is None:
            continue
        # Priority or team may have changed: choose the policy again and recompute what is due.
        policy = book.choose(ticket, customers.get(ticket.customer_id))
        if policy is None:
            sla.policy_id, sla.next_check_at = None, None
            continue
        rules = book.rules.get(policy.id, [])
        compute(sla, ticket, policy, book.calendar(policy), rules, fired.get(sla.ticket_id, set()))
    changed = [t for t in tickets.values() if _ticket_values(t) != before[t.id]]
    await _write(session, slas, changed, history, now)
    if mailer is not None and mail:
        await mailer.queue(uow, mail)
    return len(won), len(mail)


async def _write(
    session: AsyncSession,
    slas: list[TicketSla],
    tickets: list[Ticket],
    history: list[dict[str, object]],
    now: datetime,
) -> None:
    """Write the batch's changes as three bulk statements (the unit of work's per-object flush
    would take most of the pass)."""
    for row in [*slas, *tickets]:
        session.expunge(row)
    clocks, rows, log = TicketSla.__table__, Ticket.__table__, AuditEntry.__table__
    assert isinstance(clocks, Table) and isinstance(rows, Table) and isinstance(log, Table)
    await session.execute(
        update(clocks).where(clocks.c.ticket_id == bindparam("key")),
        [
            {
                "key": s.ticket_id,
                "policy_id": s.policy_id,
                "first_response_due_at": s.first_response_due_at,
                "next_response_due_at": s.next_response_due_at,
                "resolution_due_at": s.resolution_due_at,
                "next_check_at": s.next_check_at,
                "updated_at": now,
            }
            for s in slas
        ],
    )
    if tickets:
        await session.execute(
            update(rows).where(rows.c.id == bindparam("key")),
            [
                {
                    "key": t.id,
                    "priority": t.priority,
                    "team_id": t.team_id,
                    "assignee_id": t.assignee_id,
                    "first_response_due_at": t.first_response_due_at,
                    "resolution_due_at": t.resolution_due_at,
                    "updated_at": now,
                }
                for t in tickets
            ],
        )
    if history:
        await session.execute(insert(log), history)  # executemany, no ORM objects


async def escalation_pass(
    uows: Callable[[], UnitOfWork],
    now: datetime,
    *,
    mailer: EscalationMailer | None = None,
    batch: int = 1000,
    max_batches: int = 1000,
) -> PassReport:
    """Fire every level due at ``now``; each batch is one transaction. With a ``mailer`` the
    people notified who have an address are also mailed."""
    claimed = fired = mailed = 0
    book: SlaBook | None = None
    for _ in range(max_batches):
        async with uows() as uow:
            ids = await claim_due(uow.session, now, batch)
            if not ids:
                break
            book = book or await SlaBook.load(uow.session)
            fired_now, mailed_now = await _escalate_batch(uow, book, ids, now, mailer)
            fired, mailed = fired + fired_now, mailed + mailed_now
            claimed += len(ids)
            await uow.commit()
        if len(ids) < batch:
            break
    return PassReport(claimed=claimed, fired=fired, mailed=mailed)
