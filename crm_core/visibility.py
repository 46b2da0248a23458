"""Who may see which customers and tickets: one set of SQL filters used by every read path.

- agent: customers they own, the shared pool, and customers of tickets assigned to them;
  tickets assigned to them, tickets of customers they own, and unassigned tickets of their team.
- supervisor: all of the above for every member of their team, and every ticket of the team.
- admin: everything.
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


def _team_member_ids(viewer: Viewer) -> ColumnElement[bool] | None:
    if viewer.role is not Role.SUPERVISOR or viewer.team_id is None:
        return None
    return Agent.team_id == viewer.team_id


def customer_filter(viewer: Viewer) -> ColumnElement[bool]:
    """A WHERE clause over ``Customer`` selecting what ``viewer`` may see."""
    if viewer.is_admin:
        return true()
    owners = [viewer.agent_id]
    assignee_match: ColumnElement[bool] = Ticket.assignee_id == viewer.agent_id
    team = _team_member_ids(viewer)
    clauses: list[ColumnElement[bool]] = [Customer.owner_id.is_(None)]
    if team is not None:
        team_agents = select(Agent.id).where(team).scalar_subquery()
        clauses.append(Customer.owner_id.in_(team_agents))
        assignee_match = or_(Ticket.assignee_id.in_(team_agents), Ticket.team_id == viewer.team_id)
    else:
        clauses.append(Customer.owner_id.in_(owners))
    clauses.append(Customer.id.in_(select(Ticket.customer_id).where(assignee_match)))
    return or_(*clauses)


def ticket_filter(viewer: Viewer) -> ColumnElement[bool]:
    """A WHERE clause over ``Ticket`` selecting what ``viewer`` may see."""
    if viewer.is_admin:
        return true()
    team = _team_member_ids(viewer)
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
