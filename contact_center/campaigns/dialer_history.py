"""The campaign's recent dials and agent work, read from its attempts for the predictive pacer's
model: warmed from the last dials when an instance starts pacing a campaign (after a takeover
too), then fed with the dials whose fate became known since the last tick."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import CampaignAttempt, DialOutcome
from crm_core.pacing import records
from crm_core.pacing.history import CampaignHistory
from crm_core.rules.regulatory_profile import AbandonmentBasis, RegulatoryProfile


def _seconds(later: datetime | None, earlier: datetime) -> float:
    return max(0.0, (later - earlier).total_seconds()) if later is not None else 0.0


def dial_record(attempt: CampaignAttempt, profile: RegulatoryProfile) -> records.DialOutcome:
    """One settled dial as the pacer's model reads it."""
    answered = attempt.answered_at is not None
    live = attempt.outcome is DialOutcome.HUMAN or attempt.amd_false_positive
    uk = profile.abandonment_basis is AbandonmentBasis.UK
    return records.DialOutcome(
        ring_seconds=_seconds(attempt.answered_at if answered else attempt.ended_at, attempt.started_at),
        answered=answered,
        to_agent=attempt.outcome is DialOutcome.HUMAN or attempt.agent_id is not None,
        live=live,
        abandoned=attempt.abandoned or (uk and attempt.amd_false_positive),
    )


class HistoryFeed:
    """One campaign's :class:`CampaignHistory`, kept up to date from its attempts. Dials settle in
    any order (a long call's outcome comes after later dials'), so each is taken in once, from the
    oldest dial still unsettled at the last read."""

    def __init__(self, wrap_up_seconds: float, history: CampaignHistory | None = None) -> None:
        self.history = history or CampaignHistory()
        self._wrap = wrap_up_seconds
        self._floor: int | None = None  # the oldest attempt unsettled at the last read
        self._taken: set[int] = set()  # settled attempts from the floor on, already taken in

    async def update(
        self, session: AsyncSession, campaign_id: int, profile: RegulatoryProfile
    ) -> CampaignHistory:
        mine = CampaignAttempt.campaign_id == campaign_id
        query = select(CampaignAttempt).where(mine, CampaignAttempt.outcome.is_not(None))
        if self._floor is not None:
            query = query.where(CampaignAttempt.id >= self._floor)
        # Newest first, so a first read keeps the latest dials; taken in oldest first.
        limit = self.history.dials.maxlen or 2000
        found = list(await session.scalars(query.order_by(CampaignAttempt.id.desc()).limit(limit)))
        for attempt in reversed(found):
            if attempt.id in self._taken:
                continue
            self._taken.add(attempt.id)
            self.history.add_dial(dial_record(attempt, profile))
            if attempt.agent_id is not None and attempt.talk_seconds > 0:
                self.history.add_work(records.AgentWork(float(attempt.talk_seconds), self._wrap))
        unsettled = await session.scalar(
            select(func.min(CampaignAttempt.id)).where(mine, CampaignAttempt.outcome.is_(None))
        )
        newest = max(self._taken, default=0)
        self._floor = unsettled if unsettled is not None else newest + 1
        self._taken = {i for i in self._taken if i >= self._floor}
        return self.history
