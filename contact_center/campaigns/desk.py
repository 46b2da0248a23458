"""The campaign desk: what supervisors and agents do with campaigns through the API and the CLI,
one unit of work per request. Starting, pausing and stopping only change the campaign's status;
the dialer acts on it through :func:`crm_core.services.hopper.claim_next`,
:func:`crm_core.services.campaign_attempts.record_attempt_outcome` and
:func:`crm_core.services.campaign_attempts.record_disposition`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select

from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.errors import InvalidInput, NotFound
from crm_core.models import (
    Campaign,
    CampaignContact,
    CampaignDisposition,
    CampaignRetryRule,
    CampaignStatus,
    ContactState,
    DncSource,
    DoNotCall,
)
from crm_core.ports import Clock
from crm_core.rules.regulatory_profile import PROFILES
from crm_core.services import call_lists, campaign_dnc, campaigns, do_not_call
from crm_core.services.campaign_results import CampaignResults, campaign_results
from crm_core.services.dialable import Dialability, dialable
from crm_core.services.pages import Page, paginate
from crm_core.visibility import Viewer


def account_numbers(settings: Settings) -> frozenset[str]:
    """The numbers the account owns, any of which a campaign may show as its caller ID: the
    texting number and the numbers configured on the (sandbox) account."""
    return frozenset(
        {settings.sms.from_number, *(do_not_call.normalise_e164(n) for n in settings.sandbox.numbers)}
    )


@dataclass(frozen=True, slots=True)
class CampaignView:
    campaign: Campaign
    agent_ids: list[int]
    team_ids: list[int]


class CampaignDesk:
    def __init__(
        self, uow: UnitOfWorkFactory, clock: Clock, region: str, owned_numbers: frozenset[str]
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.region = region
        self.owned_numbers = owned_numbers

    async def _view(self, session: Any, campaign: Campaign) -> CampaignView:
        agents, teams = await campaigns.members(session, campaign.id)
        return CampaignView(campaign, agents, teams)

    async def visible(self, viewer: Viewer) -> list[CampaignView]:
        async with self.uow() as uow:
            return [
                await self._view(uow.session, c) for c in await campaigns.list_campaigns(uow.session, viewer)
            ]

    async def get(self, viewer: Viewer, campaign_id: int) -> CampaignView:
        async with self.uow() as uow:
            return await self._view(
                uow.session, await campaigns.get_visible(uow.session, viewer, campaign_id)
            )

    async def create(self, viewer: Viewer, fields: dict[str, Any]) -> CampaignView:
        async with self.uow() as uow:
            campaign = await campaigns.create_campaign(uow, viewer, self.owned_numbers, **fields)
            await uow.commit()
            return await self._view(uow.session, campaign)

    async def update(self, viewer: Viewer, campaign_id: int, fields: dict[str, Any]) -> CampaignView:
        async with self.uow() as uow:
            campaign = await campaigns.update_campaign(uow, viewer, campaign_id, self.owned_numbers, **fields)
            await uow.commit()
            return await self._view(uow.session, campaign)

    async def set_status(self, viewer: Viewer, campaign_id: int, status: CampaignStatus) -> CampaignView:
        async with self.uow() as uow:
            campaign = await campaigns.set_status(uow, viewer, campaign_id, status, self.clock.now())
            await uow.commit()
            return await self._view(uow.session, campaign)

    async def set_members(
        self, viewer: Viewer, campaign_id: int, agent_ids: Iterable[int], team_ids: Iterable[int]
    ) -> CampaignView:
        async with self.uow() as uow:
            await campaigns.set_members(uow, viewer, campaign_id, agent_ids=agent_ids, team_ids=team_ids)
            await uow.commit()
            return await self._view(
                uow.session, await campaigns.get_visible(uow.session, viewer, campaign_id)
            )

    async def dispositions(self, viewer: Viewer, campaign_id: int) -> list[CampaignDisposition]:
        async with self.uow() as uow:
            await campaigns.get_visible(uow.session, viewer, campaign_id)
            return await campaigns.dispositions(uow.session, campaign_id)

    async def set_disposition(
        self, viewer: Viewer, campaign_id: int, code: str, **flags: Any
    ) -> CampaignDisposition:
        async with self.uow() as uow:
            found = await campaigns.set_disposition(uow, viewer, campaign_id, code, **flags)
            await uow.commit()
            return found

    async def delete_disposition(self, viewer: Viewer, campaign_id: int, code: str) -> None:
        async with self.uow() as uow:
            await campaigns.delete_disposition(uow, viewer, campaign_id, code)
            await uow.commit()

    async def retry_rules(self, viewer: Viewer, campaign_id: int) -> list[CampaignRetryRule]:
        async with self.uow() as uow:
            await campaigns.get_visible(uow.session, viewer, campaign_id)
            return await campaigns.retry_rules(uow.session, campaign_id)

    async def set_retry_rule(
        self, viewer: Viewer, campaign_id: int, outcome: str, **rule: int
    ) -> CampaignRetryRule:
        async with self.uow() as uow:
            found = await campaigns.set_retry_rule(uow, viewer, campaign_id, outcome, **rule)
            await uow.commit()
            return found

    async def load_customers(
        self, viewer: Viewer, campaign_id: int, filters: dict[str, Any]
    ) -> call_lists.ListLoad:
        async with self.uow() as uow:
            result = await call_lists.load_customers(
                uow, viewer, campaign_id, self.clock.now(), region=self.region, **filters
            )
            await uow.commit()
            return result

    async def load_from_campaign(
        self, viewer: Viewer, campaign_id: int, source_id: int, dispositions: list[str]
    ) -> call_lists.ListLoad:
        async with self.uow() as uow:
            result = await call_lists.load_from_campaign(
                uow, viewer, campaign_id, source_id, dispositions, self.clock.now()
            )
            await uow.commit()
            return result

    async def load_csv(
        self,
        viewer: Viewer,
        campaign_id: int,
        read: Callable[[], Iterable[bytes]],
        *,
        default_owner: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> call_lists.ListLoad:
        return await call_lists.load_csv(
            self.uow,
            viewer,
            campaign_id,
            read,
            self.clock.now(),
            region=self.region,
            default_owner=default_owner,
            progress=progress,
        )

    async def results(self, viewer: Viewer, campaign_id: int) -> CampaignResults:
        async with self.uow() as uow:
            campaign = await campaigns.get_visible(uow.session, viewer, campaign_id)
            return await campaign_results(uow.session, campaign, self.clock.now())

    async def contacts(
        self, viewer: Viewer, campaign_id: int, *, state: ContactState | None, limit: int, offset: int
    ) -> Page[CampaignContact]:
        async with self.uow() as uow:
            await campaigns.get_visible(uow.session, viewer, campaign_id)
            stmt = select(CampaignContact).where(CampaignContact.campaign_id == campaign_id)
            if state is not None:
                stmt = stmt.where(CampaignContact.state == state)
            return await paginate(uow.session, stmt, CampaignContact.id, limit=limit, offset=offset)

    async def dialable(self, number: str, profile: str) -> Dialability:
        if profile not in PROFILES:
            raise InvalidInput(f"the profile must be one of {', '.join(PROFILES)}", "profile")
        async with self.uow() as uow:
            return await dialable(uow.session, number, PROFILES[profile], self.clock.now())

    async def contact_dialable(self, viewer: Viewer, campaign_id: int, contact_id: int) -> Dialability:
        """Why one number of a campaign is or is not dialable now, under the campaign's rules."""
        async with self.uow() as uow:
            campaign = await campaigns.get_visible(uow.session, viewer, campaign_id)
            contact = await uow.session.get(CampaignContact, contact_id)
            if contact is None or contact.campaign_id != campaign.id:
                raise NotFound(f"contact {contact_id} not found")
            return await dialable(
                uow.session,
                contact.e164,
                campaigns.profile_of(campaign),
                self.clock.now(),
                last_abandoned_at=contact.last_abandoned_at,
            )

    async def dnc_add(self, viewer: Viewer, number: str) -> bool:
        async with self.uow() as uow:
            added = await do_not_call.add(
                uow, number, DncSource.API, self.clock.now(), actor_id=viewer.agent_id
            )
            await uow.commit()
            return added

    async def dnc_list(
        self, *, limit: int, offset: int, national: bool | None = None, number: str | None = None
    ) -> Page[DoNotCall]:
        async with self.uow() as uow:
            return await campaign_dnc.list_numbers(
                uow, limit=limit, offset=offset, national=national, number=number
            )

    async def dnc_remove(self, viewer: Viewer, number: str) -> int:
        async with self.uow() as uow:
            gone = await campaign_dnc.remove(uow, number, actor_id=viewer.agent_id)
            await uow.commit()
            return gone

    async def dnc_import(
        self,
        viewer: Viewer,
        lines: Iterable[str],
        *,
        national_date: date | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[int, int, list[tuple[int, str]], list[str]]:
        """(added, already listed, rejected lines, warnings) of importing a file onto the company's
        list, or, with ``national_date``, of replacing the national list with it."""
        async with self.uow() as uow:
            if national_date is not None:
                national = await do_not_call.import_national(uow, lines, national_date, self.clock.now())
                await uow.commit()
                return national.imported, 0, national.rejected, national.warnings
            company = await campaign_dnc.import_company(
                uow, lines, self.clock.now(), actor_id=viewer.agent_id, progress=progress
            )
            await uow.commit()
            return company.added, company.already, company.rejected, []
