"""The hopper on the database: which numbers are dialable now (calling window across zones and
DST, do-not-call lists, consent, retry times, the 72-hour lockout, callbacks first, the campaign's
schedule) and that a claim takes each number once."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select, update

from crm_core.db import UnitOfWorkFactory
from crm_core.models import CampaignContact, CampaignStatus, ContactState, Customer, DncSource
from crm_core.services import campaigns, do_not_call
from crm_core.services.campaign_attempts import start_attempt
from crm_core.services.hopper import claim_next, next_dialable, release_stale_claims
from crm_core.visibility import Viewer
from tests.conftest import Staff
from tests.integration.campaign_support import (
    NOON_NEW_YORK,
    NY_0900,
    customer,
    load,
    los_angeles,
    new_york,
    reload,
    running_campaign,
)


async def dialable_numbers(
    uow_factory: UnitOfWorkFactory, campaign_id: int, now: datetime, limit: int = 100, **kw: bool
) -> list[str]:
    campaign = await reload(uow_factory, campaign_id)
    async with uow_factory() as uow:
        return [c.e164 for c in await next_dialable(uow.session, campaign, now, limit, **kw)]


async def set_contact(uow_factory: UnitOfWorkFactory, e164: str, **values: object) -> None:
    async with uow_factory() as uow:
        await uow.session.execute(
            update(CampaignContact).where(CampaignContact.e164 == e164).values(**values)
        )
        await uow.commit()


async def test_a_number_is_on_a_campaign_once(uow_factory: UnitOfWorkFactory, staff: Staff) -> None:
    await customer(uow_factory, new_york(100))
    await customer(uow_factory, los_angeles(100))
    campaign = await running_campaign(uow_factory, staff.red_lead)
    first = await load(uow_factory, staff.red_lead, campaign.id)
    again = await load(uow_factory, staff.red_lead, campaign.id)
    assert (first.added, first.already) == (2, 0)
    assert (again.added, again.already) == (0, 2)
    assert (await reload(uow_factory, campaign.id)).zone_keys == ["America/Los_Angeles", "America/New_York"]


async def test_only_numbers_inside_their_local_calling_hours_are_chosen(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    await customer(uow_factory, new_york(100))
    await customer(uow_factory, los_angeles(100))
    await customer(uow_factory, new_york(101), timezone="Asia/Shanghai")  # the customer's own zone wins
    campaign = await running_campaign(uow_factory, staff.red_lead)
    await load(uow_factory, staff.red_lead, campaign.id)
    assert await dialable_numbers(uow_factory, campaign.id, NY_0900) == [new_york(100)]
    assert await dialable_numbers(uow_factory, campaign.id, NOON_NEW_YORK) == [
        new_york(100),
        los_angeles(100),
    ]
    shanghai_morning = datetime(2026, 12, 7, 1, tzinfo=UTC)  # 09:00 Shanghai, 20:00 New York, 17:00 LA
    assert await dialable_numbers(uow_factory, campaign.id, shanghai_morning) == [
        new_york(100),
        los_angeles(100),
        new_york(101),
    ]


async def test_the_window_follows_daylight_saving_time(uow_factory: UnitOfWorkFactory, staff: Staff) -> None:
    await customer(uow_factory, new_york(100))
    campaign = await running_campaign(uow_factory, staff.red_lead)
    await load(uow_factory, staff.red_lead, campaign.id)
    await set_contact(uow_factory, new_york(100), next_attempt_at=datetime(2026, 3, 1, tzinfo=UTC))
    before_dst = datetime(2026, 3, 6, 12, 30, tzinfo=UTC)  # 07:30 EST
    after_dst = datetime(2026, 3, 9, 12, 30, tzinfo=UTC)  # 08:30 EDT
    assert await dialable_numbers(uow_factory, campaign.id, before_dst) == []
    assert await dialable_numbers(uow_factory, campaign.id, after_dst) == [new_york(100)]


async def test_do_not_call_lists_and_consent_are_read_at_the_moment_of_dialling(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    for n in range(100, 104):
        await customer(uow_factory, new_york(n))
    silent = await customer(uow_factory, new_york(104), voice=None)
    campaign = await running_campaign(uow_factory, staff.red_lead)
    await load(uow_factory, staff.red_lead, campaign.id)
    async with uow_factory() as uow:
        await do_not_call.add(uow, new_york(101), DncSource.API, NOON_NEW_YORK)
        await do_not_call.import_national(uow, [new_york(102)], date(2026, 12, 1), NOON_NEW_YORK)
        refusing = await uow.session.scalar(
            select(Customer).join(Customer.phones).where(Customer.phones.any(e164=new_york(103)))
        )
        assert refusing is not None
        refusing.consent = {"voice": False}
        await uow.commit()
    assert await dialable_numbers(uow_factory, campaign.id, NOON_NEW_YORK) == [new_york(100)]
    async with uow_factory() as uow:
        found = await uow.session.get(Customer, silent)
        assert found is not None
        found.consent = {"voice": True}
        await uow.commit()
    assert await dialable_numbers(uow_factory, campaign.id, NOON_NEW_YORK) == [new_york(100), new_york(104)]


async def test_retry_times_and_the_redial_lockout_hold_numbers_back(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    for n in range(100, 103):
        await customer(uow_factory, new_york(n))
    campaign = await running_campaign(uow_factory, staff.red_lead)
    await load(uow_factory, staff.red_lead, campaign.id)
    later = NOON_NEW_YORK + timedelta(minutes=30)
    await set_contact(uow_factory, new_york(101), next_attempt_at=later)
    await set_contact(uow_factory, new_york(102), locked_until=later)
    assert await dialable_numbers(uow_factory, campaign.id, NOON_NEW_YORK) == [new_york(100)]
    reserved = await dialable_numbers(uow_factory, campaign.id, NOON_NEW_YORK, agent_reserved=True)
    assert reserved == [new_york(100), new_york(102)]
    assert await dialable_numbers(uow_factory, campaign.id, later) == [
        new_york(100),
        new_york(102),
        new_york(101),
    ]


async def test_callbacks_come_first_at_their_time(uow_factory: UnitOfWorkFactory, staff: Staff) -> None:
    for n in range(100, 103):
        await customer(uow_factory, new_york(n))
    campaign = await running_campaign(uow_factory, staff.red_lead)
    await load(uow_factory, staff.red_lead, campaign.id)
    at = NOON_NEW_YORK + timedelta(minutes=10)
    await set_contact(
        uow_factory, new_york(102), callback_at=at, next_attempt_at=at, callback_agent_id=staff.red_1.id
    )
    assert await dialable_numbers(uow_factory, campaign.id, NOON_NEW_YORK) == [new_york(100), new_york(101)]
    assert await dialable_numbers(uow_factory, campaign.id, at, limit=2) == [new_york(102), new_york(100)]
    campaign = await reload(uow_factory, campaign.id)
    async with uow_factory() as uow:
        taken = await claim_next(uow.session, campaign, at, 1)
        await uow.commit()
    assert [(c.contact.e164, c.callback_agent_id) for c in taken.claimed] == [(new_york(102), staff.red_1.id)]


async def test_nothing_is_chosen_outside_the_campaign_schedule_or_when_not_running(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    await customer(uow_factory, new_york(100))
    campaign = await running_campaign(
        uow_factory,
        staff.red_lead,
        daily_start=time(10),
        daily_end=time(16),
        schedule_timezone="America/New_York",
        ends_on=date(2026, 12, 31),
    )
    await load(uow_factory, staff.red_lead, campaign.id)
    assert await dialable_numbers(uow_factory, campaign.id, NY_0900) == []
    assert await dialable_numbers(uow_factory, campaign.id, NOON_NEW_YORK) == [new_york(100)]
    assert await dialable_numbers(uow_factory, campaign.id, datetime(2027, 1, 4, 17, tzinfo=UTC)) == []
    async with uow_factory() as uow:
        await campaigns.set_status(
            uow, Viewer.of(staff.red_lead), campaign.id, CampaignStatus.PAUSED, NOON_NEW_YORK
        )
        await uow.commit()
    assert await dialable_numbers(uow_factory, campaign.id, NOON_NEW_YORK) == []


async def test_a_claim_rechecks_each_number_and_puts_refused_ones_back(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    moved = await customer(uow_factory, new_york(100))
    await customer(uow_factory, new_york(101))
    campaign = await running_campaign(uow_factory, staff.red_lead)
    await load(uow_factory, staff.red_lead, campaign.id)
    async with uow_factory() as uow:
        found = await uow.session.get(Customer, moved)
        assert found is not None
        found.timezone = "America/Los_Angeles"  # moved after the list was loaded
        await uow.commit()
    async with uow_factory() as uow:
        taken = await claim_next(uow.session, campaign, NY_0900, 10)
        await uow.commit()
    assert [c.contact.e164 for c in taken.claimed] == [new_york(101)]
    assert [r.e164 for r in taken.refused] == [new_york(100)]
    async with uow_factory() as uow:
        back = await uow.session.scalar(select(CampaignContact).where(CampaignContact.e164 == new_york(100)))
        claimed = await uow.session.scalar(
            select(CampaignContact).where(CampaignContact.e164 == new_york(101))
        )
    assert back is not None and claimed is not None
    assert back.state is ContactState.PENDING and back.zone_key == "America/Los_Angeles"
    assert back.next_attempt_at == datetime(2026, 12, 7, 16, tzinfo=UTC)  # 08:00 in Los Angeles
    assert claimed.state is ContactState.IN_FLIGHT and claimed.claimed_at == NY_0900


async def test_concurrent_claims_never_take_the_same_number(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    for n in range(100, 140):
        await customer(uow_factory, new_york(n))
    campaign = await running_campaign(uow_factory, staff.red_lead)
    await load(uow_factory, staff.red_lead, campaign.id)

    async def one_instance() -> list[int]:
        taken: list[int] = []
        for _ in range(6):
            async with uow_factory() as uow:
                claim = await claim_next(uow.session, campaign, NOON_NEW_YORK, 3)
                taken += [c.contact.id for c in claim.claimed]
                await uow.commit()
            await asyncio.sleep(0)
        return taken

    results = await asyncio.gather(*(one_instance() for _ in range(3)))
    every = [i for r in results for i in r]
    assert len(every) == len(set(every)) > 0
    async with uow_factory() as uow:  # what a race left behind is still there to claim, once
        rest = await claim_next(uow.session, campaign, NOON_NEW_YORK, 100)
        await uow.commit()
    every += [c.contact.id for c in rest.claimed]
    assert len(every) == len(set(every)) == 40


async def test_numbers_claimed_and_never_dialled_go_back_after_a_while(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    for n in (100, 101):
        await customer(uow_factory, new_york(n))
    campaign = await running_campaign(uow_factory, staff.red_lead)
    await load(uow_factory, staff.red_lead, campaign.id)
    async with uow_factory() as uow:
        taken = await claim_next(uow.session, campaign, NOON_NEW_YORK, 2)
        await start_attempt(
            uow.session, taken.claimed[0].contact, NOON_NEW_YORK
        )  # the other is never dialled
        await uow.commit()
    async with uow_factory() as uow:
        assert await release_stale_claims(uow.session, campaign, NOON_NEW_YORK + timedelta(minutes=4)) == 0
        assert await release_stale_claims(uow.session, campaign, NOON_NEW_YORK + timedelta(minutes=6)) == 1
        await uow.commit()
    later = NOON_NEW_YORK + timedelta(minutes=6)
    assert await dialable_numbers(uow_factory, campaign.id, later) == [new_york(101)]
