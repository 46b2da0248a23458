"""Who may see which customers and tickets: one set of SQL filters used by every read path.

- agent: tickets assigned to them, tickets of customers they own, and unassigned tickets waiting
  in their team's queue or in the general queue (no team); customers they own, the shared pool
  (no owner), and the customer of every ticket they may see.
- supervisor: all of the above for every member of their team, and every ticket of the team.
- admin: everything.

Seeing is not owning. Acting as a customer's owner (changing or releasing its owner, merging it)
is for its owner, a supervisor of the owner's team, an admin, and anyone on a pool customer: see
:func:`may_manage_customer`. A customer seen only through a ticket (a general-queue ticket, a
ticket assigned across teams) may be read and its contact details edited, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, false, or_, select, true

from crm_core.models import Agent, Customer, Role, Ticket


@dataclass(frozen=True, slots=True)
class Viewer:
    agent_id: int
    role: Role
    team_id: int | None = None
    login: str = field(default="", compare=False)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def is_supervisor(self) -> bool:
        return self.role in (Role.SUPERVISOR, Role.ADMIN)

    @classmethod
    def of(cls, agent: Agent) -> Viewer:
        return cls(agent_id=agent.id, role=agent.role, team_id=agent.team_id, login=agent.login)


def may_manage_customer(viewer: Viewer, owner: Agent | None) -> bool:
    """Whether ``viewer`` may act as the owner of a customer owned by ``owner`` (None: the pool)."""
    if viewer.is_admin or owner is None or owner.id == viewer.agent_id:
        return True
    return viewer.role is Role.SUPERVISOR and viewer.team_id is not None and owner.team_id == viewer.team_id


def _team_members(viewer: Viewer) -> ColumnElement[bool] | None:
    if viewer.role is not Role.SUPERVISOR or viewer.team_id is None:
        return None
    return Agent.team_id == viewer.team_id


def customer_filter(viewer: Viewer) -> ColumnElement[bool]:
    """A WHERE clause over ``Customer`` selecting what ``viewer`` may see."""
    if viewer.is_admin:
        return true()
    team = _team_members(viewer)
    owned = (
        Customer.owner_id.in_(select(Agent.id).where(team).scalar_subquery())
        if team is not None
        else Customer.owner_id == viewer.agent_id
    )
    # Whoever may work a ticket may open its customer, including tickets waiting in a queue.
    via_ticket = Customer.id.in_(select(Ticket.customer_id).where(ticket_filter(viewer)))
    return or_(Customer.owner_id.is_(None), owned, via_ticket)


def ticket_filter(viewer: Viewer) -> ColumnElement[bool]:
    """A WHERE clause over ``Ticket`` selecting what ``viewer`` may see."""
    if viewer.is_admin:
        return true()
    team = _team_members(viewer)
    if team is not None:
        team_agents = select(Agent.id).where(team).scalar_subquery()
        return or_(
            Ticket.team_id == viewer.team_id,
            Ticket.assignee_id.in_(team_agents),
            Ticket.customer_id.in_(select(Customer.id).where(Customer.owner_id.in_(team_agents))),
            Ticket.assignee_id.is_(None) & Ticket.team_id.is_(None),
        )
    team_queue = (
        Ticket.assignee_id.is_(None) & (Ticket.team_id == viewer.team_id)
        if viewer.team_id is not None
        else false()
    )
    return or_(
        Ticket.assignee_id == viewer.agent_id,
        Ticket.customer_id.in_(select(Customer.id).where(Customer.owner_id == viewer.agent_id)),
        team_queue,
        Ticket.assignee_id.is_(None) & Ticket.team_id.is_(None),
    )
