"""The claim of an agent: who takes a call, and the outbound side's questions.

An inbound call goes to the customer's own agent if free (sticky agent), else to the longest idle;
an outbound call (the dialer) reserves the longest idle agent the same way. Both go through the one
atomic claim of the presence store (:meth:`~contact_center.routing.presence.PresenceStore.claim`: a
lock in memory, one Lua script in Redis), so a reservation and an inbound call never get the same
agent. :func:`free_agents` says how many agents are free now and how many will be soon, for a pacer
to decide how many calls to place without claiming anyone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from contact_center.routing.presence import AgentState, PresenceStore
from contact_center.routing.roster import Roster, load_roster
from crm_core.models.base import utcnow
from crm_core.sql import Executor

# How far ahead :func:`free_agents` counts the agents whose wrap-up ends as "soon".
SOON_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class FreeCount:
    """Agents free ``now`` (available), and those whose wrap-up ends ``soon`` (within the window)."""

    now: int
    soon: int


async def claim_agent(
    presence: PresenceStore, roster: Roster, *, owner_id: int | None, skill: str | None, call_sid: str
) -> int | None:
    """Claim an agent for ``call_sid`` (marked RINGING) and return their id; None if nobody is free.

    The owner is preferred whether or not they have ``skill``: they know the customer.
    """
    preferred = owner_id if roster.is_active(owner_id) else None
    return await presence.claim(preferred=preferred, eligible=roster.eligible(skill), call_sid=call_sid)


async def route_call(
    presence: PresenceStore,
    db: Executor,
    *,
    owner_id: int | None,
    skill: str | None,
    call_sid: str,
) -> int | None:
    """:func:`claim_agent` on the agents as the database says now."""
    roster = await load_roster(db)
    return await claim_agent(presence, roster, owner_id=owner_id, skill=skill, call_sid=call_sid)


async def reserve_for_outbound(
    presence: PresenceStore, eligible: Sequence[int], key: str, ttl_seconds: float
) -> int | None:
    """Reserve the longest idle available agent of ``eligible`` for an outbound call; None when
    nobody is free.

    The agent is claimed exactly as for an inbound call (RINGING for ``key``, e.g. the campaign
    call's key), so the two never get the same agent. The reservation ends by itself after
    ``ttl_seconds`` unless answered (:meth:`~PresenceStore.answer` with ``key``), released
    (:meth:`~PresenceStore.release`) or wrapped up before: a dialer that dies holds nobody.
    """
    return await presence.claim(preferred=None, eligible=eligible, call_sid=key, ttl_seconds=ttl_seconds)


async def free_agents(
    presence: PresenceStore,
    eligible: Sequence[int],
    *,
    soon_seconds: float = SOON_SECONDS,
    clock: Callable[[], datetime] = utcnow,
) -> FreeCount:
    """How many of ``eligible`` are available now, and how many are in a wrap-up that ends within
    ``soon_seconds``. Nobody is claimed: the answer may be stale by the time it is used, which
    :func:`reserve_for_outbound` settles."""
    states = await presence.get_many(eligible)
    horizon = clock() + timedelta(seconds=soon_seconds)
    now = sum(1 for p in states.values() if p.state is AgentState.AVAILABLE)
    soon = sum(
        1
        for p in states.values()
        if p.state is AgentState.WRAP_UP and p.until is not None and p.until <= horizon
    )
    return FreeCount(now=now, soon=soon)
