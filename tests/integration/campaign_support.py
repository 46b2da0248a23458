"""Shared set-up of the campaign tests: consenting customers in known zones and a running campaign."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crm_core.db import UnitOfWorkFactory
from crm_core.models import Agent, Campaign, CampaignStatus
from crm_core.services import call_lists, campaigns
from crm_core.services.customers import create_customer
from crm_core.visibility import Viewer

OWNED = frozenset({"+12125550199"})
NOON_NEW_YORK = datetime(2026, 12, 7, 17, tzinfo=UTC)  # 12:00 New York, 09:00 Los Angeles
NY_0900 = datetime(2026, 12, 7, 14, tzinfo=UTC)  # 09:00 New York, 06:00 Los Angeles
LOADED = datetime(2026, 12, 1, tzinfo=UTC)


def new_york(n: int) -> str:
    return f"+1212555{n:04d}"


def los_angeles(n: int) -> str:
    return f"+1310555{n:04d}"


async def customer(
    uow_factory: UnitOfWorkFactory, phone: str, *, voice: bool | None = True, **fields: Any
) -> int:
    consent = {} if voice is None else {"voice": voice}
    async with uow_factory() as uow:
        created = await create_customer(
            uow,
            None,
            region="US",
            display_name="Ada Lovelace 李华",
            phones=[phone],
            consent=consent,
            **fields,
        )
        await uow.commit()
    return created.id


async def running_campaign(
    uow_factory: UnitOfWorkFactory,
    lead: Agent,
    *,
    status: CampaignStatus = CampaignStatus.RUNNING,
    **fields: Any,
) -> Campaign:
    viewer = Viewer.of(lead)
    async with uow_factory() as uow:
        campaign = await campaigns.create_campaign(
            uow, viewer, OWNED, name="Winter renewals", caller_id="+1 212 555 0199", **fields
        )
        await uow.commit()
    if status is not CampaignStatus.DRAFT:
        async with uow_factory() as uow:
            campaign = await campaigns.set_status(uow, viewer, campaign.id, status, NOON_NEW_YORK)
            await uow.commit()
    return campaign


async def load(
    uow_factory: UnitOfWorkFactory, lead: Agent, campaign_id: int, **filters: Any
) -> call_lists.ListLoad:
    async with uow_factory() as uow:
        result = await call_lists.load_customers(
            uow, Viewer.of(lead), campaign_id, LOADED, region="US", **filters
        )
        await uow.commit()
    return result


async def reload(uow_factory: UnitOfWorkFactory, campaign_id: int) -> Campaign:
    async with uow_factory() as uow:
        found = await uow.session.get(Campaign, campaign_id)
    assert found is not None
    return found
