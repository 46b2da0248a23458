"""What the dialer reads each tick: a running campaign's pacer snapshot, built from the agents
working it (their states as routing holds them) and its attempts still in flight."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contact_center.routing.presence import AgentState as Presence
from contact_center.routing.presence import PresenceStore
from crm_core.models import Campaign, CampaignAttempt, CampaignMode
from crm_core.models.campaign import CampaignAgent
from crm_core.pacing.history import CampaignHistory
from crm_core.pacing.snapshot import (
    AgentSnapshot,
    AgentState,
    CallInFlight,
    CallState,
    PacingMode,
    PacingSnapshot,
)
from crm_core.rules.abandonment import WindowCounts
from crm_core.services.campaigns import profile_of

RESERVATION_PREFIX = "campaign-"
"""Routing claims made for campaign calls are keyed ``campaign-<id>-...``."""


def reservation_key(campaign_id: int, attempt_id: int) -> str:
    return f"{RESERVATION_PREFIX}{campaign_id}-attempt-{attempt_id}"


def dial_key(campaign_id: int, contact_id: int, attempt_number: int) -> str:
    """The idempotency key of the ``attempt_number``-th dial of a number."""
    return f"campaign-{campaign_id}-contact-{contact_id}-dial-{attempt_number}"


async def working_agents(session: AsyncSession, campaign_id: int) -> list[int]:
    rows = await session.scalars(
        select(CampaignAgent.agent_id).where(CampaignAgent.campaign_id == campaign_id)
    )
    return list(rows)


async def calls_in_flight(session: AsyncSession, campaign_id: int) -> Sequence[CampaignAttempt]:
    """The campaign's dials not yet ended nor joined to an agent."""
    rows = await session.scalars(
        select(CampaignAttempt).where(
            CampaignAttempt.campaign_id == campaign_id,
            CampaignAttempt.outcome.is_(None),
            CampaignAttempt.agent_id.is_(None),
            CampaignAttempt.ended_at.is_(None),
        )
    )
    return list(rows)


def _call(attempt: CampaignAttempt) -> CallInFlight:
    if attempt.answered_at is None:
        state = CallState.RINGING if attempt.call_sid else CallState.DIALING
        return CallInFlight(state, attempt.started_at)
    state = CallState.AMD if attempt.answered_by is None else CallState.CONNECTING
    return CallInFlight(state, attempt.answered_at)


async def agent_snapshots(
    presence: PresenceStore, agent_ids: Sequence[int], campaign_id: int, now: datetime
) -> list[AgentSnapshot]:
    """The working agents as the pacer sees them; those away, offline or offered another call
    (an inbound one) are left out: the campaign cannot count on them."""
    mine = f"{RESERVATION_PREFIX}{campaign_id}-"
    agents: list[AgentSnapshot] = []
    for p in (await presence.get_many(agent_ids)).values():
        p = p.at(now)
        if p.state is Presence.AVAILABLE:
            agents.append(AgentSnapshot(AgentState.AVAILABLE, p.since))
        elif p.state is Presence.RINGING and (p.call_sid or "").startswith(mine):
            agents.append(AgentSnapshot(AgentState.RESERVED, p.since))
        elif p.state is Presence.ON_CALL:
            agents.append(AgentSnapshot(AgentState.ON_CALL, p.since))
        elif p.state is Presence.WRAP_UP:
            agents.append(AgentSnapshot(AgentState.WRAP_UP, p.since))
    return agents


def snapshot(
    campaign: Campaign,
    agents: Sequence[AgentSnapshot],
    calls: Sequence[CampaignAttempt],
    window: WindowCounts,
    history: CampaignHistory,
    now: datetime,
) -> PacingSnapshot:
    mode = PacingMode.PREDICTIVE if campaign.mode is CampaignMode.PREDICTIVE else PacingMode.PROGRESSIVE
    return PacingSnapshot(
        now=now,
        mode=mode,
        agents=agents,
        calls=[_call(a) for a in calls],
        window=window,
        profile=profile_of(campaign),
        history=history,
    )
