"""Who takes a call: the customer's own agent if free (sticky agent), else the longest idle.

The database says who may take it (active agents, with the skill when one is needed); presence
says who is free, and claims the agent atomically so two calls never get the same one.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contact_center.presence import PresenceStore
from crm_core.models import Agent


async def route_call(
    presence: PresenceStore,
    session: AsyncSession,
    *,
    owner_id: int | None,
    skill: str | None,
    call_sid: str,
) -> int | None:
    """Claim an agent for ``call_sid`` (marked RINGING) and return their id; None if nobody is free.

    Every active agent may take calls, whatever their role. The owner is preferred whether or
    not they have ``skill``: they know the customer. Skills compare without regard to case.
    """
    rows = (await session.execute(select(Agent.id, Agent.skills).where(Agent.active.is_(True)))).all()
    wanted = skill.strip().casefold() if skill and skill.strip() else None
    eligible = [
        agent_id
        for agent_id, skills in rows
        if wanted is None or wanted in {s.strip().casefold() for s in skills or ()}
    ]
    active = {agent_id for agent_id, _ in rows}
    preferred = owner_id if owner_id is not None and owner_id in active else None
    return await presence.claim(preferred=preferred, eligible=eligible, call_sid=call_sid)
