"""Agents and teams."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.errors import Conflict, InvalidInput, NotFound
from crm_core.models import Agent, Role, Team
from crm_core.ports import PasswordHasher

MIN_PASSWORD_LENGTH = 10


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD_LENGTH} characters", "password")


async def create_team(session: AsyncSession, name: str) -> Team:
    team = Team(name=name.strip())
    session.add(team)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"team {name!r} already exists") from exc
    return team


async def create_agent(
    session: AsyncSession,
    hasher: PasswordHasher,
    *,
    login: str,
    display_name: str,
    password: str | None,
    role: Role = Role.AGENT,
    team_id: int | None = None,
    supervisor_id: int | None = None,
    skills: Sequence[str] = (),
    email: str | None = None,
    phone: str | None = None,
) -> Agent:
    if password is not None:
        check_password_strength(password)
    if team_id is not None and await session.get(Team, team_id) is None:
        raise InvalidInput(f"team {team_id} does not exist", "team_id")
    if supervisor_id is not None and await session.get(Agent, supervisor_id) is None:
        raise InvalidInput(f"agent {supervisor_id} does not exist", "supervisor_id")
    agent = Agent(
        login=login.strip().lower(),
        display_name=display_name.strip(),
        password_hash=hasher.hash(password) if password else None,
        role=role,
        team_id=team_id,
        supervisor_id=supervisor_id,
        skills=list(skills),
        email=email,
        phone=phone,
    )
    session.add(agent)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"login {login!r} is taken") from exc
    return agent


async def update_agent(
    session: AsyncSession, hasher: PasswordHasher, agent_id: int, changes: dict[str, Any]
) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id} not found")
    if "password" in changes:
        password = changes.pop("password")
        check_password_strength(password)
        agent.password_hash = hasher.hash(password)
    if changes.get("team_id") is not None and await session.get(Team, changes["team_id"]) is None:
        raise InvalidInput(f"team {changes['team_id']} does not exist", "team_id")
    supervisor_id = changes.get("supervisor_id")
    if supervisor_id is not None and await session.get(Agent, supervisor_id) is None:
        raise InvalidInput(f"agent {supervisor_id} does not exist", "supervisor_id")
    for name, value in changes.items():
        setattr(agent, name, value)
    await session.flush()
    return agent


async def agent_by_login(session: AsyncSession, login: str) -> Agent | None:
    found: Agent | None = await session.scalar(select(Agent).where(Agent.login == login.strip().lower()))
    return found
