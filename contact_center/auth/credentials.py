"""Browser sessions and API tokens: random secrets of which only a SHA-256 is stored.

An agent's browser sessions all end when their password changes, when they are deactivated or
reactivated, and when they or an admin sign them out everywhere; :func:`access_changed` announces
it on the bus so that every instance closes the agent's live sockets too. API tokens are not
sessions: a password change leaves them working (revoke them one by one), deactivation refuses
them (and closes their sockets). The time is passed in (``now``, from the runtime's clock), so
session expiry follows a simulated clock as well as the real one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contact_center import events
from crm_core.events import DomainEvent
from crm_core.models import Agent, AgentSession, ApiToken

TOKEN_PREFIX = "cct_"  # noqa: S105 - a marker, not a secret


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Identity:
    agent: Agent
    csrf_token: str | None  # set for browser sessions; None for API tokens
    session_id: int | None = None


async def open_session(
    session: AsyncSession, agent: Agent, ttl: timedelta, *, now: datetime
) -> tuple[str, str]:
    """Create a browser session lasting ``ttl`` from ``now`` (sessions expired by then are
    deleted); returns (cookie value, CSRF token)."""
    secret = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    session.add(
        AgentSession(token_hash=digest(secret), csrf_token=csrf, agent_id=agent.id, expires_at=now + ttl)
    )
    await session.execute(delete(AgentSession).where(AgentSession.expires_at < now))
    return secret, csrf


async def identity_from_session(session: AsyncSession, secret: str, *, now: datetime) -> Identity | None:
    """Who holds the browser session ``secret``: None when it is unknown, expired at ``now``,
    or its agent is inactive."""
    row = (
        await session.execute(
            select(AgentSession, Agent)
            .join(Agent, Agent.id == AgentSession.agent_id)
            .where(AgentSession.token_hash == digest(secret))
        )
    ).one_or_none()
    if row is None:
        return None
    agent_session, agent = row
    if agent_session.expires_at < now or not agent.active:
        return None
    return Identity(agent=agent, csrf_token=agent_session.csrf_token, session_id=agent_session.id)


async def close_session(session: AsyncSession, session_id: int) -> None:
    await session.execute(delete(AgentSession).where(AgentSession.id == session_id))


async def end_sessions(session: AsyncSession, agent_id: int) -> int:
    """End every browser session of the agent; returns how many there were."""
    result = await session.execute(delete(AgentSession).where(AgentSession.agent_id == agent_id))
    return int(result.rowcount)  # type: ignore[attr-defined]


def access_changed(
    agent_id: int, reason: str, *, tokens: bool = False, session_id: int | None = None
) -> DomainEvent:
    """The event that closes the agent's sockets on every instance (record it in the unit of work):
    those of every browser session, or of ``session_id`` only, and with ``tokens`` those opened
    with an API token."""
    return events.agent_access_changed(
        {"agent_id": agent_id, "reason": reason, "tokens": tokens, "session_id": session_id}
    )


async def create_api_token(
    session: AsyncSession, *, name: str, agent_id: int, created_by_id: int | None
) -> tuple[ApiToken, str]:
    """Returns the row and the token, which is shown once and never stored."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name, token_hash=digest(secret), agent_id=agent_id, created_by_id=created_by_id)
    session.add(token)
    await session.flush()
    return token, secret


async def identity_from_token(session: AsyncSession, secret: str, *, now: datetime) -> Identity | None:
    """Who holds the API token ``secret`` (its last use recorded as ``now``); None when it is
    unknown or revoked, or its agent is inactive."""
    row = (
        await session.execute(
            select(ApiToken, Agent)
            .join(Agent, Agent.id == ApiToken.agent_id)
            .where(ApiToken.token_hash == digest(secret))
        )
    ).one_or_none()
    if row is None:
        return None
    token, agent = row
    if token.revoked_at is not None or not agent.active:
        return None
    await session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
    return Identity(agent=agent, csrf_token=None)


async def revoke_api_token(session: AsyncSession, token_id: int, *, now: datetime) -> ApiToken | None:
    token = await session.get(ApiToken, token_id)
    if token is not None and token.revoked_at is None:
        token.revoked_at = now
    return token
