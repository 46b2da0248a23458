"""Campaigns in the core: validation, who sees and edits them, status changes, and call lists from a
CSV (through the customer import) and from another campaign's results."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from sqlalchemy import select

from crm_core.db import UnitOfWorkFactory
from crm_core.errors import Forbidden, InvalidInput, InvalidTransition, NotFound
from crm_core.models import CampaignContact, CampaignStatus, Customer
from crm_core.services import call_lists, campaigns
from crm_core.visibility import Viewer
from tests.conftest import Staff
from tests.integration.campaign_support import (
    NOON_NEW_YORK,
    OWNED,
    customer,
    load,
    new_york,
    running_campaign,
)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"caller_id": "+12125550100"}, "caller_id"),  # valid, but not the account's
        ({"caller_id": "0100"}, "caller_id"),
        ({"mode": "robot"}, "mode"),
        ({"regulatory_profile": "mars"}, "regulatory_profile"),
        ({"regulatory_profile": "uk", "abandonment_target": "0.05"}, "abandonment_target"),
        ({"starts_on": "2026-12-10", "ends_on": "2026-12-01"}, "ends_on"),
        ({"daily_start": "18:00", "daily_end": "09:00"}, "daily_end"),
        ({"machine_action": "message"}, "machine_message"),
        ({"schedule_timezone": "Mars/Olympus"}, "schedule_timezone"),
        ({"price_per_minute": "-1"}, "price_per_minute"),
        ({"script_template": "Hello {{ customer.name"}, "script_template"),
    ],
)
async def test_invalid_campaigns_are_refused_naming_the_field(
    uow_factory: UnitOfWorkFactory, staff: Staff, fields: dict[str, Any], field: str
) -> None:
    values = {"name": "Renewals", "caller_id": "+12125550199", **fields}
    async with uow_factory() as uow:
        with pytest.raises(InvalidInput) as refused:
            await campaigns.create_campaign(uow, Viewer.of(staff.red_lead), OWNED, **values)
    assert refused.value.field == field


async def test_agents_see_the_campaigns_they_work_and_supervisors_their_teams(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    red = await running_campaign(uow_factory, staff.red_lead, status=CampaignStatus.DRAFT)
    blue = await running_campaign(uow_factory, staff.blue_lead, status=CampaignStatus.DRAFT)
    async with uow_factory() as uow:
        await campaigns.set_members(
            uow, Viewer.of(staff.red_lead), red.id, agent_ids=[staff.red_1.id], team_ids=[]
        )
        await campaigns.set_members(
            uow, Viewer.of(staff.blue_lead), blue.id, agent_ids=[], team_ids=[staff.red.id]
        )
        await uow.commit()

    async def seen(agent: Any) -> list[int]:
        async with uow_factory() as uow:
            return [c.id for c in await campaigns.list_campaigns(uow.session, Viewer.of(agent))]

    assert await seen(staff.admin) == [red.id, blue.id]
    assert await seen(staff.red_lead) == [red.id, blue.id]  # blue's campaign is worked by the red team
    assert await seen(staff.blue_lead) == [blue.id]
    assert await seen(staff.red_1) == [red.id, blue.id]
    assert await seen(staff.red_2) == [blue.id]
    assert await seen(staff.blue_1) == []
    async with uow_factory() as uow:
        with pytest.raises(Forbidden):
            await campaigns.update_campaign(uow, Viewer.of(staff.red_lead), blue.id, OWNED, name="Mine")
        with pytest.raises(NotFound):
            await campaigns.get_visible(uow.session, Viewer.of(staff.blue_1), red.id)
        with pytest.raises(Forbidden):
            await campaigns.create_campaign(
                uow, Viewer.of(staff.red_1), OWNED, name="x", caller_id="+12125550199"
            )


async def test_status_moves_from_draft_to_running_paused_and_stopped_only(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    campaign = await running_campaign(uow_factory, staff.red_lead, status=CampaignStatus.DRAFT)
    lead = Viewer.of(staff.red_lead)
    async with uow_factory() as uow:
        for status in (
            CampaignStatus.RUNNING,
            CampaignStatus.PAUSED,
            CampaignStatus.RUNNING,
            CampaignStatus.STOPPED,
        ):
            assert (
                await campaigns.set_status(uow, lead, campaign.id, status, NOON_NEW_YORK)
            ).status is status
        with pytest.raises(InvalidTransition):
            await campaigns.set_status(uow, lead, campaign.id, CampaignStatus.RUNNING, NOON_NEW_YORK)
        with pytest.raises(InvalidTransition):
            await campaigns.update_campaign(uow, lead, campaign.id, OWNED, name="Again")


def csv_file(rows: Iterable[str]) -> bytes:
    return ("display_name,phones,timezone,consent_voice\n" + "".join(f"{r}\n" for r in rows)).encode()


async def test_a_csv_goes_through_the_customer_import_and_its_numbers_onto_the_list(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    existing = await customer(uow_factory, new_york(100), voice=None)
    campaign = await running_campaign(uow_factory, staff.red_lead)
    data = csv_file(
        [
            f"Ada,{new_york(100)},,true",  # completes the existing customer
            "王芳,+1 310 555 0100,America/Los_Angeles,true",
            f"Ada again,{new_york(100)},,",  # same number: once on the list
            "Nobody,12,,",  # rejected by the import
        ]
    )
    counted: list[int] = []
    result = await call_lists.load_csv(
        uow_factory,
        Viewer.of(staff.red_lead),
        campaign.id,
        lambda: iter(data.splitlines(keepends=True)),
        NOON_NEW_YORK,
        region="US",
        progress=counted.append,
    )
    assert (result.added, result.already) == (2, 1) and sum(counted) == 3
    assert result.imported is not None and result.imported.created == 1 and len(result.imported.rejected) == 1
    async with uow_factory() as uow:
        rows = list(await uow.session.scalars(select(CampaignContact).order_by(CampaignContact.id)))
        ada = await uow.session.get(Customer, existing)
    assert [(r.e164, r.zone_key) for r in rows] == [
        (new_york(100), "America/New_York"),
        ("+13105550100", "America/Los_Angeles"),
    ]
    assert rows[0].customer_id == existing and ada is not None and ada.consent == {"voice": True}


async def test_a_list_can_be_built_from_another_campaigns_dispositions(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    for n in (100, 101, 102):
        await customer(uow_factory, new_york(n))
    first = await running_campaign(uow_factory, staff.red_lead)
    await load(uow_factory, staff.red_lead, first.id)
    async with uow_factory() as uow:
        contacts = list(await uow.session.scalars(select(CampaignContact).order_by(CampaignContact.id)))
        contacts[0].last_disposition, contacts[2].last_disposition = "interested", "no"
        await uow.commit()
    second = await running_campaign(uow_factory, staff.red_lead)
    async with uow_factory() as uow:
        result = await call_lists.load_from_campaign(
            uow, Viewer.of(staff.red_lead), second.id, first.id, ["interested"], NOON_NEW_YORK
        )
        await uow.commit()
        taken = list(
            await uow.session.scalars(
                select(CampaignContact.e164).where(CampaignContact.campaign_id == second.id)
            )
        )
    assert result.added == 1 and taken == [new_york(100)]
