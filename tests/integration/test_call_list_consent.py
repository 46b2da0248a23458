"""The callee's voice consent copied onto the call list: set by every loader, refreshed whenever
the customer's consent changes (edit, CSV import), and never the last word: the dial-time check
reads the customer, so a stale "yes" dials no one."""

from __future__ import annotations

from sqlalchemy import select, update

from crm_core.db import UnitOfWorkFactory
from crm_core.models import CampaignContact, Customer
from crm_core.services import call_lists
from crm_core.services.customer_import import import_customers
from crm_core.services.customers import update_customer
from crm_core.services.dialable import RefusalCode
from crm_core.services.hopper import claim_next, next_dialable
from crm_core.visibility import Viewer
from tests.conftest import Staff
from tests.integration.campaign_support import (
    NOON_NEW_YORK,
    customer,
    load,
    new_york,
    reload,
    running_campaign,
)


async def copies(uow_factory: UnitOfWorkFactory, campaign_id: int | None = None) -> dict[str, bool]:
    stmt = select(CampaignContact.e164, CampaignContact.voice_consent)
    if campaign_id is not None:
        stmt = stmt.where(CampaignContact.campaign_id == campaign_id)
    async with uow_factory() as uow:
        return {str(e164): bool(yes) for e164, yes in await uow.session.execute(stmt)}


async def dialable_numbers(uow_factory: UnitOfWorkFactory, campaign_id: int) -> list[str]:
    campaign = await reload(uow_factory, campaign_id)
    async with uow_factory() as uow:
        return [c.e164 for c in await next_dialable(uow.session, campaign, NOON_NEW_YORK, 100)]


async def test_every_loader_copies_the_customers_voice_consent(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    await customer(uow_factory, new_york(100))
    await customer(uow_factory, new_york(101), voice=False)
    await customer(uow_factory, new_york(102), voice=None)
    first = await running_campaign(uow_factory, staff.red_lead)
    await load(uow_factory, staff.red_lead, first.id)
    expected = {new_york(100): True, new_york(101): False, new_york(102): False}
    assert await copies(uow_factory, first.id) == expected
    async with uow_factory() as uow:
        await uow.session.execute(update(CampaignContact).values(last_disposition="interested"))
        await uow.commit()
    second = await running_campaign(uow_factory, staff.red_lead)
    async with uow_factory() as uow:
        await call_lists.load_from_campaign(
            uow, Viewer.of(staff.red_lead), second.id, first.id, ["interested"], NOON_NEW_YORK
        )
        await uow.commit()
    assert await copies(uow_factory, second.id) == expected
    third = await running_campaign(uow_factory, staff.red_lead)
    data = (
        "display_name,phones,timezone,consent_voice\n"
        f"Ada,{new_york(100)},,\n"
        "王芳,+1 212 555 0103,,true\n"
        "李雷,+1 212 555 0104,,false\n"
    ).encode()
    await call_lists.load_csv(
        uow_factory,
        Viewer.of(staff.red_lead),
        third.id,
        lambda: iter(data.splitlines(keepends=True)),
        NOON_NEW_YORK,
        region="US",
    )
    assert await copies(uow_factory, third.id) == {
        new_york(100): True,
        new_york(103): True,
        new_york(104): False,
    }


async def test_an_edit_of_the_customers_consent_reaches_the_hopper(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    ada = await customer(uow_factory, new_york(100))
    silent = await customer(uow_factory, new_york(101), voice=None)
    campaign = await running_campaign(uow_factory, staff.red_lead)
    await load(uow_factory, staff.red_lead, campaign.id)
    assert await dialable_numbers(uow_factory, campaign.id) == [new_york(100)]
    admin = Viewer.of(staff.admin)
    async with uow_factory() as uow:
        await update_customer(uow, admin, ada, {"consent": {"voice": False, "sms": True}}, region="US")
        await update_customer(uow, admin, silent, {"consent": {"voice": True}}, region="US")
        await uow.commit()
    assert await copies(uow_factory) == {new_york(100): False, new_york(101): True}
    assert await dialable_numbers(uow_factory, campaign.id) == [new_york(101)]
    async with uow_factory() as uow:  # a change of another field leaves the copy alone
        await update_customer(uow, admin, silent, {"display_name": "Grace 李"}, region="US")
        await uow.commit()
    assert await copies(uow_factory) == {new_york(100): False, new_york(101): True}


async def test_a_csv_import_completing_the_consent_refreshes_the_copy(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    await customer(uow_factory, new_york(100), voice=None)
    campaign = await running_campaign(uow_factory, staff.red_lead)
    await load(uow_factory, staff.red_lead, campaign.id)
    assert await dialable_numbers(uow_factory, campaign.id) == []
    data = f"display_name,phones,consent_voice\nAda,{new_york(100)},yes\n".encode()
    result = await import_customers(uow_factory, data.splitlines(keepends=True), actor=None, region="US")
    assert result.updated == 1
    assert await copies(uow_factory) == {new_york(100): True}
    assert await dialable_numbers(uow_factory, campaign.id) == [new_york(100)]


async def test_a_stale_yes_on_the_list_never_dials_a_customer_who_refused(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    refusing = await customer(uow_factory, new_york(100), voice=False)
    campaign = await running_campaign(uow_factory, staff.red_lead)
    await load(uow_factory, staff.red_lead, campaign.id)
    async with uow_factory() as uow:  # a copy gone stale (written behind the service's back)
        await uow.session.execute(update(CampaignContact).values(voice_consent=True))
        await uow.commit()
    assert await dialable_numbers(uow_factory, campaign.id) == [new_york(100)]
    async with uow_factory() as uow:
        taken = await claim_next(uow.session, campaign, NOON_NEW_YORK, 10)
        await uow.commit()
        found = await uow.session.get(Customer, refusing)
    assert taken.claimed == [] and [r.e164 for r in taken.refused] == [new_york(100)]
    assert RefusalCode.NO_VOICE_CONSENT in {r.code for r in taken.refused[0].reasons}
    assert found is not None and found.consent == {"voice": False}
