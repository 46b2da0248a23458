"""Two instances of the service on one database dial one campaign through one Twilio (the
sandbox): only the lease holder dials; when it stops mid-campaign without handing its lease back
(as a killed process would), the other resumes once the lease lapses, settles the stopped
instance's dials, and no number is dialled twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from contact_center.app import create_app
from contact_center.appkeys import RUNTIME
from contact_center.campaigns.wiring import CAMPAIGN_DIALER
from contact_center.routing.presence import AgentState
from contact_center.sandbox import CallOutcomes, Lognormal
from contact_center.settings import Settings
from crm_core.clock import SystemClock
from crm_core.db import UnitOfWorkFactory
from crm_core.models import CampaignAttempt, CampaignContact
from crm_core.models.campaign import CampaignAgent
from tests.conftest import Staff, isolated_settings
from tests.integration.campaign_support import NOON_NEW_YORK, customer, load, new_york, running_campaign
from tests.support.sandbox_harness import SID, TOKEN, Env, sandbox_env
from tests.support.waiting import eventually, free_port

Client = TestClient[Any, Any]
NUMBERS = [new_york(n) for n in range(71, 81)]
# Every call rings 60 simulated seconds (0.6 s) and is busy: a few are always in flight.
RINGING = CallOutcomes(
    human=0.0,
    machine=0.0,
    busy=1.0,
    no_answer=0.0,
    failed=0.0,
    ring_seconds=Lognormal(60.0, 0),
    calls_per_second=1000.0,
)


class ShiftedClock(SystemClock):
    """The real clock moved to noon in New York (inside the calling window whenever the test runs)."""

    def __init__(self) -> None:
        self.offset = NOON_NEW_YORK - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def timestamp(self) -> float:
        return self.now().timestamp()


@pytest_asyncio.fixture(loop_scope="session")
async def twilio() -> AsyncIterator[Env]:
    async with sandbox_env(outcomes=RINGING, time_scale=0.01) as env:
        yield env


def instance(settings: Settings, twilio: Env) -> tuple[Any, int]:
    port = free_port()
    site = isolated_settings(settings).with_overrides(
        server={"public_base_url": f"http://127.0.0.1:{port}"},
        twilio={"account_sid": SID, "auth_token": TOKEN, "api_base_url": twilio.base_url},
        dialer={"tick_seconds": 0.1, "lease_seconds": 1.0, "calls_per_second": 100.0, "quiet_seconds": 1.5},
    )
    return create_app(site, clock=ShiftedClock()), port


async def dialled(twilio: Env) -> Counter[str]:
    status, page = await twilio.rest("GET", "Calls.json?PageSize=1000")
    assert status == 200, page
    return Counter(call["to"] for call in page["calls"])


async def test_a_stopped_instances_campaign_is_resumed_by_the_other_and_no_number_is_dialled_twice(
    settings: Settings, uow_factory: UnitOfWorkFactory, staff: Staff, twilio: Env
) -> None:
    for number in NUMBERS:
        await customer(uow_factory, number)
    campaign = await running_campaign(uow_factory, staff.red_lead)
    await load(uow_factory, staff.red_lead, campaign.id)
    agents = (staff.red_1, staff.red_2)
    async with uow_factory() as uow:
        for agent in agents:
            uow.session.add(
                CampaignAgent(campaign_id=campaign.id, agent_id=agent.id, room=f"room-{agent.id}")
            )
        await uow.commit()

    first_app, first_port = instance(settings, twilio)
    second_app, second_port = instance(settings, twilio)
    first = TestClient(TestServer(first_app, host="127.0.0.1", port=first_port))
    await first.start_server()
    for agent in agents:
        await first_app[RUNTIME].presence.set(agent.id, AgentState.AVAILABLE)

    async def some_dialled() -> bool:
        return sum((await dialled(twilio)).values()) >= 3

    await eventually(some_dialled, 15, "the first instance dialling")
    async with TestClient(TestServer(second_app, host="127.0.0.1", port=second_port)) as second:
        for agent in agents:
            await second_app[RUNTIME].presence.set(agent.id, AgentState.AVAILABLE)
        # The first instance stops mid-campaign, its dials in flight, without handing back its
        # lease: the second one waits for the lease to lapse.
        first_app[CAMPAIGN_DIALER].get().release = _keep_lease  # type: ignore[method-assign]
        await first.close()

        async def every_number_settled() -> bool:
            async with uow_factory() as uow:
                rows = (
                    await uow.session.execute(
                        select(CampaignContact.e164, CampaignAttempt.outcome).join(
                            CampaignAttempt, CampaignAttempt.contact_id == CampaignContact.id
                        )
                    )
                ).all()
            return len(rows) == len(NUMBERS) and all(outcome is not None for _, outcome in rows)

        await eventually(every_number_settled, 30, "every number dialled and settled")
        assert second_app[CAMPAIGN_DIALER].get().held == {campaign.id}
        assert second.app is second_app
    counts = await dialled(twilio)
    assert sorted(counts) == sorted(NUMBERS) and set(counts.values()) == {1}, counts


async def _keep_lease() -> None:
    """A killed instance hands nothing back."""
