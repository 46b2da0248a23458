"""A campaign's results: dials and what became of them, results by disposition, talk time,
telephony cost, revenue from converted dispositions and ROI, the list's penetration, and the
abandonment rate over the profile's window (from the persisted counts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Campaign, CampaignAttempt, CampaignContact, ContactState, DialOutcome
from crm_core.rules.abandonment import AbandonmentStatus, abandonment_status
from crm_core.services.campaign_attempts import window_counts
from crm_core.services.campaigns import profile_of


async def abandonment_now(session: AsyncSession, campaign: Campaign, now: datetime) -> AbandonmentStatus:
    """The campaign's abandonment rate over its profile's window ending at ``now``, against its
    target, and whether predictive dialling may go on."""
    profile = profile_of(campaign)
    return abandonment_status(await window_counts(session, campaign.id, now, profile), profile)


@dataclass(frozen=True, slots=True)
class CampaignResults:
    dials: int
    live_answers: int
    """A person answered (joined to an agent or abandoned)."""
    conversations: int
    """A person answered and was joined to an agent."""
    abandoned: int
    machines: int
    no_answers: int
    busy: int
    failed: int
    talk_seconds: int
    cost: Decimal
    revenue: Decimal
    roi: Decimal | None
    """(revenue - cost) / cost; None while nothing was spent."""
    by_disposition: dict[str, int]
    contacts: int
    contacts_by_state: dict[str, int]
    penetration: float
    """Share of the list that is finished: done, exhausted or on a do-not-call list."""
    abandonment: AbandonmentStatus


async def campaign_results(session: AsyncSession, campaign: Campaign, now: datetime) -> CampaignResults:
    attempt = CampaignAttempt
    of_campaign = attempt.campaign_id == campaign.id

    def counted(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    human = attempt.outcome == DialOutcome.HUMAN
    row = (
        await session.execute(
            select(
                func.count(attempt.id),
                counted(human),
                counted(human & ~attempt.abandoned),
                counted(attempt.abandoned | attempt.amd_false_positive),
                counted(attempt.outcome == DialOutcome.MACHINE),
                counted(attempt.outcome == DialOutcome.NO_ANSWER),
                counted(attempt.outcome == DialOutcome.BUSY),
                counted(attempt.outcome == DialOutcome.FAILED),
                func.coalesce(func.sum(attempt.talk_seconds), 0),
                func.coalesce(func.sum(attempt.cost), 0),
            ).where(of_campaign)
        )
    ).one()
    by_disposition = {
        str(code): int(n)
        for code, n in await session.execute(
            select(attempt.disposition, func.count())
            .where(of_campaign, attempt.disposition.is_not(None))
            .group_by(attempt.disposition)
            .order_by(attempt.disposition)
        )
    }
    by_state = {
        ContactState(state).value: int(n)
        for state, n in await session.execute(
            select(CampaignContact.state, func.count())
            .where(CampaignContact.campaign_id == campaign.id)
            .group_by(CampaignContact.state)
        )
    }
    revenue = Decimal(
        await session.scalar(
            select(func.coalesce(func.sum(CampaignContact.converted_value), 0)).where(
                CampaignContact.campaign_id == campaign.id
            )
        )
        or 0
    )
    cost = Decimal(row[9] or 0)
    contacts = sum(by_state.values())
    finished = sum(
        by_state.get(s.value, 0) for s in (ContactState.DONE, ContactState.EXHAUSTED, ContactState.DNC)
    )
    return CampaignResults(
        dials=int(row[0]),
        live_answers=int(row[1]),
        conversations=int(row[2]),
        abandoned=int(row[3]),
        machines=int(row[4]),
        no_answers=int(row[5]),
        busy=int(row[6]),
        failed=int(row[7]),
        talk_seconds=int(row[8]),
        cost=cost,
        revenue=revenue,
        roi=((revenue - cost) / cost).quantize(Decimal("0.0001")) if cost > 0 else None,
        by_disposition=by_disposition,
        contacts=contacts,
        contacts_by_state=by_state,
        penetration=finished / contacts if contacts else 0.0,
        abandonment=await abandonment_now(session, campaign, now),
    )
