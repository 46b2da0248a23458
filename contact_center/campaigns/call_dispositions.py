"""The agent's disposition of a campaign call: what became of the conversation (final, call back at
a time, do not call, converted), recorded on the dial by the agent who took it or by a
supervisor of the campaign; it ends, recycles or reschedules the number."""

from __future__ import annotations

from datetime import datetime

from crm_core.db import UnitOfWorkFactory
from crm_core.errors import Forbidden, NotFound
from crm_core.models import CampaignAttempt, CampaignContact
from crm_core.ports import Clock
from crm_core.services import campaigns
from crm_core.services.campaign_attempts import record_disposition
from crm_core.visibility import Viewer


async def dispose(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    viewer: Viewer,
    campaign_id: int,
    attempt_id: int,
    code: str,
    *,
    notes: str | None = None,
    callback_at: datetime | None = None,
    callback_agent_id: int | None = None,
) -> CampaignContact:
    async with uow_factory() as uow:
        campaign = await campaigns.get_visible(uow.session, viewer, campaign_id)
        attempt = await uow.session.get(CampaignAttempt, attempt_id)
        if attempt is None or attempt.campaign_id != campaign_id:
            raise NotFound(f"the campaign has no dial {attempt_id}")
        if attempt.agent_id != viewer.agent_id and not campaigns.may_edit(viewer, campaign):
            raise Forbidden("only the agent who took the call, or a supervisor of the campaign")
        contact = await record_disposition(
            uow,
            attempt_id,
            code,
            clock.now(),
            agent_id=attempt.agent_id or viewer.agent_id,
            notes=notes,
            callback_at=callback_at,
            callback_agent_id=callback_agent_id,
        )
        await uow.commit()
    return contact
