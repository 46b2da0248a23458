"""After a dial: retry rules by outcome, dispositions' effects, the persisted abandonment counts
and the redial lockout they start."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from crm_core.db import UnitOfWorkFactory
from crm_core.errors import InvalidInput
from crm_core.models import Campaign, CampaignAttempt, CampaignContact, ContactState, DialOutcome
from crm_core.rules.abandonment import WindowCounts
from crm_core.services import campaigns, do_not_call
from crm_core.services.campaign_attempts import (
    record_attempt_outcome,
    record_disposition,
    start_attempt,
    window_counts,
)
from crm_core.services.campaign_results import campaign_results
from crm_core.services.hopper import claim_next
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

LONDON = "+442079460000"
SIDS = itertools.count()


async def dial(uow_factory: UnitOfWorkFactory, campaign: Campaign, now: datetime, **kw: bool) -> int:
    """Claim the next number and start an attempt on it; the attempt's id."""
    async with uow_factory() as uow:
        taken = await claim_next(uow.session, campaign, now, 1, **kw)
        assert len(taken.claimed) == 1, taken.refused
        attempt = await start_attempt(
            uow.session, taken.claimed[0].contact, now, call_sid=f"CA{next(SIDS):032d}"
        )
        await uow.commit()
    return attempt.id


async def ended(
    uow_factory: UnitOfWorkFactory, attempt_id: int, outcome: DialOutcome, now: datetime, **kw: Any
) -> None:
    async with uow_factory() as uow:
        await record_attempt_outcome(uow.session, attempt_id, outcome, now, **kw)
        await uow.commit()


async def the_contact(uow_factory: UnitOfWorkFactory) -> CampaignContact:
    async with uow_factory() as uow:
        found = await uow.session.scalar(select(CampaignContact))
    assert found is not None
    return found


async def one_number_campaign(uow_factory: UnitOfWorkFactory, staff: Staff, **fields: Any) -> Campaign:
    await customer(uow_factory, new_york(100))
    campaign = await running_campaign(uow_factory, staff.red_lead, **fields)
    await load(uow_factory, staff.red_lead, campaign.id)
    return campaign


async def test_busy_numbers_are_retried_by_the_rule_until_its_maxima(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    campaign = await one_number_campaign(uow_factory, staff)
    async with uow_factory() as uow:
        await campaigns.set_retry_rule(
            uow, Viewer.of(staff.red_lead), campaign.id, "busy", delay_seconds=600, max_per_day=2, max_total=3
        )
        await uow.commit()
    now = NOON_NEW_YORK
    await ended(uow_factory, await dial(uow_factory, campaign, now), DialOutcome.BUSY, now)
    first = await the_contact(uow_factory)
    assert (first.state, first.next_attempt_at, first.attempts) == (
        ContactState.PENDING,
        now + timedelta(minutes=10),
        1,
    )
    now += timedelta(minutes=10)
    await ended(uow_factory, await dial(uow_factory, campaign, now), DialOutcome.BUSY, now)
    second = await the_contact(uow_factory)
    assert second.next_attempt_at == datetime(2026, 12, 8, tzinfo=UTC)  # two today: tomorrow
    tomorrow = datetime(2026, 12, 8, 15, tzinfo=UTC)
    await ended(uow_factory, await dial(uow_factory, campaign, tomorrow), DialOutcome.BUSY, tomorrow)
    third = await the_contact(uow_factory)
    assert third.state is ContactState.EXHAUSTED and third.attempts == 3 and third.attempts_today == 1


async def test_an_outcome_without_a_rule_is_not_retried(uow_factory: UnitOfWorkFactory, staff: Staff) -> None:
    campaign = await one_number_campaign(uow_factory, staff)
    await ended(
        uow_factory, await dial(uow_factory, campaign, NOON_NEW_YORK), DialOutcome.FAILED, NOON_NEW_YORK
    )
    assert (await the_contact(uow_factory)).state is ContactState.EXHAUSTED


async def dispose(
    uow_factory: UnitOfWorkFactory, staff: Staff, campaign: Campaign, code: str, **kw: Any
) -> CampaignContact:
    attempt_id = await dial(uow_factory, campaign, NOON_NEW_YORK)
    await ended(
        uow_factory, attempt_id, DialOutcome.HUMAN, NOON_NEW_YORK, answered_at=NOON_NEW_YORK, talk_seconds=61
    )
    async with uow_factory() as uow:
        contact = await record_disposition(
            uow,
            attempt_id,
            code,
            NOON_NEW_YORK + timedelta(minutes=2),
            agent_id=staff.red_1.id,
            notes="说好了",
            **kw,
        )
        await uow.commit()
    return contact


@pytest.mark.parametrize(
    ("flags", "state"),
    [
        ({"final": True}, ContactState.DONE),
        ({"final": True, "converted": True, "value": "120.50"}, ContactState.DONE),
        ({"do_not_call": True}, ContactState.DNC),
        ({}, ContactState.EXHAUSTED),  # not final and no "human" retry rule
    ],
)
async def test_dispositions_end_or_recycle_the_number(
    uow_factory: UnitOfWorkFactory, staff: Staff, flags: dict[str, Any], state: ContactState
) -> None:
    campaign = await one_number_campaign(uow_factory, staff, price_per_minute="0.02")
    async with uow_factory() as uow:
        await campaigns.set_disposition(
            uow, Viewer.of(staff.red_lead), campaign.id, "x", label="结果", **flags
        )
        await uow.commit()
    contact = await dispose(uow_factory, staff, campaign, "x")
    assert contact.state is state and contact.last_disposition == "x"
    assert contact.converted_value == (Decimal("120.50") if flags.get("converted") else None)
    async with uow_factory() as uow:
        listed = await do_not_call.check(uow.session, new_york(100))
        attempt = await uow.session.scalar(select(CampaignAttempt))
    assert listed.listed is bool(flags.get("do_not_call"))
    assert attempt is not None and attempt.notes == "说好了" and attempt.agent_id == staff.red_1.id
    assert attempt.cost == Decimal("0.04")  # 61 s billed as two minutes


async def test_a_callback_disposition_schedules_the_number_for_an_agent(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    campaign = await one_number_campaign(uow_factory, staff)
    async with uow_factory() as uow:
        await campaigns.set_disposition(
            uow, Viewer.of(staff.red_lead), campaign.id, "cb", label="Call back", callback=True
        )
        await uow.commit()
    with pytest.raises(InvalidInput, match="future"):
        await dispose(uow_factory, staff, campaign, "cb")
    async with uow_factory() as uow:
        attempt = await uow.session.scalar(select(CampaignAttempt))
        assert attempt is not None
        at = NOON_NEW_YORK + timedelta(days=1)
        contact = await record_disposition(
            uow, attempt.id, "cb", NOON_NEW_YORK, callback_at=at, callback_agent_id=staff.red_2.id
        )
        await uow.commit()
    assert (contact.state, contact.callback_at, contact.callback_agent_id) == (
        ContactState.PENDING,
        at,
        staff.red_2.id,
    )
    assert contact.next_attempt_at == at


async def test_abandoned_answers_are_counted_and_lock_the_number_under_the_uk_profile(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    await customer(uow_factory, LONDON)
    await customer(uow_factory, "+442079460001")
    campaign = await running_campaign(uow_factory, staff.red_lead, regulatory_profile="uk")
    await load(uow_factory, staff.red_lead, campaign.id)
    async with uow_factory() as uow:
        await campaigns.set_retry_rule(
            uow,
            Viewer.of(staff.red_lead),
            campaign.id,
            "no_answer",
            delay_seconds=60,
            max_per_day=5,
            max_total=9,
        )
        await uow.commit()
    noon = datetime(2026, 12, 7, 12, tzinfo=UTC)
    first = await dial(uow_factory, campaign, noon)
    await ended(uow_factory, first, DialOutcome.HUMAN, noon, answered_at=noon, abandoned=True)
    second = await dial(uow_factory, campaign, noon)
    await ended(uow_factory, second, DialOutcome.MACHINE, noon, answered_at=noon, amd_false_positive=True)
    campaign = await reload(uow_factory, campaign.id)
    async with uow_factory() as uow:
        counts = await window_counts(uow.session, campaign.id, noon, campaigns.profile_of(campaign))
        later = await window_counts(
            uow.session, campaign.id, noon + timedelta(hours=25), campaigns.profile_of(campaign)
        )
        locked = list(await uow.session.scalars(select(CampaignContact.locked_until)))
    assert counts == WindowCounts(connected=0, abandoned=1, amd_false_positives=1)
    assert later == WindowCounts()
    assert locked == [noon + timedelta(hours=72)] * 2
    async with uow_factory() as uow:
        assert (await claim_next(uow.session, campaign, noon + timedelta(hours=71), 5)).claimed == []
        await uow.rollback()
    assert await dial(uow_factory, campaign, noon + timedelta(hours=71), agent_reserved=True)


async def test_results_count_dials_dispositions_cost_revenue_and_abandonment(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    for n in (101, 102):
        await customer(uow_factory, new_york(n))
    campaign = await one_number_campaign(uow_factory, staff, price_per_minute="0.50")
    lead = Viewer.of(staff.red_lead)
    async with uow_factory() as uow:
        await campaigns.set_disposition(
            uow, lead, campaign.id, "sale", label="Sale", final=True, converted=True, value="40"
        )
        await campaigns.set_retry_rule(
            uow, lead, campaign.id, "busy", delay_seconds=60, max_per_day=3, max_total=3
        )
        await uow.commit()
    await dispose(uow_factory, staff, campaign, "sale")  # 61 s of talk: two minutes at 0.50
    busy = await dial(uow_factory, campaign, NOON_NEW_YORK)
    await ended(uow_factory, busy, DialOutcome.BUSY, NOON_NEW_YORK)
    dropped = await dial(uow_factory, campaign, NOON_NEW_YORK)
    await ended(
        uow_factory, dropped, DialOutcome.HUMAN, NOON_NEW_YORK, answered_at=NOON_NEW_YORK, abandoned=True
    )
    campaign = await reload(uow_factory, campaign.id)
    async with uow_factory() as uow:
        results = await campaign_results(uow.session, campaign, NOON_NEW_YORK + timedelta(minutes=5))
    assert (results.dials, results.live_answers, results.conversations, results.abandoned) == (3, 2, 1, 1)
    assert (results.busy, results.talk_seconds, results.by_disposition) == (1, 61, {"sale": 1})
    assert (results.cost, results.revenue, results.roi) == (Decimal("1.00"), Decimal("40"), Decimal("39"))
    assert results.contacts == 3 and results.contacts_by_state == {"done": 1, "pending": 1, "exhausted": 1}
    assert results.penetration == pytest.approx(2 / 3)
    assert (results.abandonment.abandoned, results.abandonment.live) == (1, 2)
    assert not results.abandonment.predictive_allowed  # 50% against a 3% target
