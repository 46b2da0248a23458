"""The escalation pass: fire every escalation level that has come due, exactly once per ticket.

Tickets whose ``next_check_at`` has passed are claimed in batches (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so every instance may run the pass; on SQLite the compare-and-set update is the lock).
A level fires when its ``escalation_firings`` row is inserted: the unique (ticket, rule) row makes
a second firing impossible even if two passes saw the same ticket. Its actions, the ticket's
history and the events are written in the same transaction; events are published after commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core import events
from crm_core.db import UnitOfWork
from crm_core.models import (
    Agent,
    Customer,
    EscalationAction,
    EscalationFiring,
    EscalationRule,
    Role,
    Ticket,
    TicketSla,
)
from crm_core.services.audit import audit
from crm_core.services.sla import SlaBook, compute, fire_moment, fired_rules
from crm_core.sql import dialect_name, insert_ignore
from crm_core.types import Priority

LEASE = timedelta(minutes=5)
RAISED = {Priority.LOW: Priority.NORMAL, Priority.NORMAL: Priority.HIGH, Priority.HIGH: Priority.URGENT}


@dataclass(frozen=True, slots=True)
class PassReport:
    claimed: int
    fired: int


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[int]:
    """Ticket ids whose SLA check is due, each claimed by one pass (its check moved past a lease,
    so a pass that dies hands it back after ``LEASE``)."""
    due = TicketSla.next_check_at <= now
    pick = select(TicketSla.ticket_id).where(due).order_by(TicketSla.next_check_at).limit(limit)
    if dialect_name(session) == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
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


async def _recipients(session: AsyncSession, ticket: Ticket, actions: list[str]) -> list[int]:
    wanted: list[int] = []
    if EscalationAction.NOTIFY_ASSIGNEE in actions and ticket.assignee_id is not None:
        wanted.append(ticket.assignee_id)
    conditions: list[ColumnElement[bool]] = []
    if EscalationAction.NOTIFY_SUPERVISOR in actions:
        assignee = await session.get(Agent, ticket.assignee_id) if ticket.assignee_id is not None else None
        if assignee is not None and assignee.supervisor_id is not None:
            wanted.append(assignee.supervisor_id)
        team_id = ticket.team_id if ticket.team_id is not None else (assignee.team_id if assignee else None)
        if team_id is not None:
            conditions.append((Agent.role == Role.SUPERVISOR) & (Agent.team_id == team_id))
    if EscalationAction.NOTIFY_ADMIN in actions:
        conditions.append(Agent.role == Role.ADMIN)
    if conditions:
        wanted.extend(await session.scalars(select(Agent.id).where(Agent.active.is_(True), or_(*conditions))))
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


async def _escalate(uow: UnitOfWork, book: SlaBook, sla: TicketSla, fired: set[int], now: datetime) -> int:
    session = uow.session
    ticket = await session.get(Ticket, sla.ticket_id)
    policy = book.policy(sla.policy_id)
    if ticket is None:
        return 0
    count = 0
    for rule in book.rules.get(policy.id, []) if policy is not None else []:
        if rule.id in fired:
            continue
        moment = fire_moment(rule, sla, policy, book.calendar(policy)) if policy is not None else None
        if moment is None or moment > now:
            continue
        values = {"ticket_id": ticket.id, "rule_id": rule.id, "target": rule.target, "level": rule.level}
        if (
            await insert_ignore(
                session, EscalationFiring, {**values, "fired_at": now}, ["ticket_id", "rule_id"]
            )
            is None
        ):
            fired.add(rule.id)
            continue  # fired by another pass
        fired.add(rule.id)
        count += 1
        changes = _apply(ticket, rule)
        recipients = await _recipients(session, ticket, list(rule.actions))
        due = {"first_response": sla.first_response_due_at, "next_response": sla.next_response_due_at}.get(
            str(rule.target), sla.resolution_due_at
        )
        audit(
            session,
            "ticket",
            ticket.id,
            "sla.escalated",
            None,
            {
                "target": str(rule.target),
                "level": rule.level,
                "actions": list(rule.actions),
                "due_at": due.isoformat() if due else None,
                "notified": recipients,
                **changes,
            },
        )
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
                        "due_at": due.isoformat() if due else None,
                        "actions": list(rule.actions),
                    }
                )
            )
    # Priority or team may have changed: choose the policy again and recompute what is due.
    customer = await session.get(Customer, ticket.customer_id)
    policy = book.choose(ticket, customer)
    rules = book.rules.get(policy.id, []) if policy is not None else []
    calendar = book.calendar(policy) if policy is not None else None
    if calendar is None:
        sla.next_check_at = None
        sla.policy_id = None
    else:
        compute(sla, ticket, policy, calendar, rules, fired)
    return count


async def escalation_pass(
    uows: Callable[[], UnitOfWork], now: datetime, *, batch: int = 500, max_batches: int = 1000
) -> PassReport:
    """Fire every level due at ``now``; each batch is one transaction."""
    claimed = fired = 0
    for _ in range(max_batches):
        async with uows() as uow:
            session = uow.session
            ids = await claim_due(session, now, batch)
            if not ids:
                break
            book = await SlaBook.load(session)
            slas = list(await session.scalars(select(TicketSla).where(TicketSla.ticket_id.in_(ids))))
            done = await fired_rules(session, ids)
            await session.scalars(select(Ticket).where(Ticket.id.in_(ids)))  # one query for the batch
            for sla in slas:
                fired += await _escalate(uow, book, sla, done.setdefault(sla.ticket_id, set()), now)
            claimed += len(ids)
            await uow.commit()
        if len(ids) < batch:
            break
    return PassReport(claimed=claimed, fired=fired)
