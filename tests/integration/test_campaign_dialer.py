"""The dialer loop through the sandbox: one instance paces a campaign at a time (a lease that
passes on when its holder stops), every dial is recorded before the call is placed, a dial whose
hand-over went unanswered is settled by asking Twilio (never redialled), and numbers put on the
do-not-call list after loading are never dialled."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest_asyncio
from sqlalchemy import select

from channels.twilio.gateway import TwilioGateway
from contact_center.campaigns.dialer import CampaignDialer, DialerPolicy
from contact_center.campaigns.dialer_history import HistoryFeed
from contact_center.campaigns.dialer_state import agent_snapshots, reservation_key
from contact_center.routing.presence import AgentState, MemoryPresenceStore
from contact_center.sandbox import CallOutcomes, Lognormal
from contact_center.throttle import MemoryThrottle
from crm_core.clock import FakeClock
from crm_core.db import UnitOfWorkFactory
from crm_core.errors import GatewayError
from crm_core.models import CampaignAttempt, CampaignContact, DialOutcome, DncSource
from crm_core.models.campaign import CampaignAgent
from crm_core.rules.regulatory_profile import PROFILES
from crm_core.services import campaigns, do_not_call
from crm_core.services.campaign_attempts import record_attempt_outcome, start_attempt
from crm_core.services.hopper import claim_next
from crm_core.visibility import Viewer
from crm_core.voice import CallRecord
from tests.conftest import Staff
from tests.integration.campaign_support import (
    NOON_NEW_YORK,
    OWNED,
    customer,
    load,
    new_york,
    running_campaign,
)
from tests.support.sandbox_harness import SID, TOKEN, Env, sandbox_env

BUSY = CallOutcomes(
    human=0.0,
    machine=0.0,
    busy=1.0,
    no_answer=0.0,
    failed=0.0,
    ring_seconds=Lognormal(1.0, 0),
    calls_per_second=1000.0,
)


class FakeUrls:
    def __init__(self, env: Env) -> None:
        self.env = env

    def answer(self, attempt_id: int) -> str:
        return self.env.fake.url(f"/answer?attempt={attempt_id}")

    def status(self, attempt_id: int) -> str:
        return self.env.fake.url(f"/status?attempt={attempt_id}")

    def amd(self, attempt_id: int) -> str:
        return self.env.fake.url(f"/amd?attempt={attempt_id}")


class LostAnswers:
    """The gateway, but the answer to some creates is lost: placed (or not) and then unconfirmed."""

    def __init__(self, gateway: TwilioGateway, placed_then_lost: set[str], never_sent: set[str]) -> None:
        self.gateway, self.placed_then_lost, self.never_sent = gateway, placed_then_lost, never_sent

    async def place_campaign_call(self, **kw: Any) -> str:
        if kw["to"] in self.never_sent:
            raise GatewayError("no answer from Twilio", unconfirmed=True)
        sid = await self.gateway.place_campaign_call(**kw)
        if kw["to"] in self.placed_then_lost:
            raise GatewayError("no answer from Twilio", unconfirmed=True)
        return sid

    async def find_calls(self, *, to: str, from_: str, created_after: datetime) -> list[CallRecord]:
        return await self.gateway.find_calls(to=to, from_=from_, created_after=created_after)

    async def fetch_call(self, call_sid: str) -> CallRecord | None:
        return await self.gateway.fetch_call(call_sid)


@pytest_asyncio.fixture(loop_scope="session")
async def env() -> AsyncIterator[Env]:
    async with sandbox_env(outcomes=BUSY) as env:
        yield env


@pytest_asyncio.fixture(loop_scope="session")
async def gateway(env: Env) -> AsyncIterator[TwilioGateway]:
    gateway = TwilioGateway(account_sid=SID, auth_token=TOKEN, base_url=env.base_url)
    yield gateway
    await gateway.close()


async def campaign_with(uow_factory: UnitOfWorkFactory, staff: Staff, numbers: list[str]) -> int:
    for number in numbers:
        await customer(uow_factory, number)
    campaign = await running_campaign(uow_factory, staff.red_lead)
    await load(uow_factory, staff.red_lead, campaign.id)
    async with uow_factory() as uow:
        for agent in (staff.red_1, staff.red_2):
            uow.session.add(
                CampaignAgent(campaign_id=campaign.id, agent_id=agent.id, room=f"room-{agent.id}")
            )
        await uow.commit()
    return campaign.id


async def available(clock: FakeClock, staff: Staff) -> MemoryPresenceStore:
    presence = MemoryPresenceStore(clock.now)
    for agent in (staff.red_1, staff.red_2):
        await presence.set(agent.id, AgentState.AVAILABLE)
    return presence


def dialer(
    uow_factory: UnitOfWorkFactory, clock: FakeClock, presence: MemoryPresenceStore, calls: Any, env: Env
) -> CampaignDialer:
    policy = DialerPolicy(lease=timedelta(seconds=5), settle_after=timedelta(seconds=5))
    return CampaignDialer(uow_factory, clock, presence, calls, FakeUrls(env), MemoryThrottle(1000.0), policy)


async def dialled(env: Env) -> Counter[str]:
    status, page = await env.rest("GET", "Calls.json?PageSize=1000")
    assert status == 200, page
    return Counter(call["to"] for call in page["calls"])


async def attempts(uow_factory: UnitOfWorkFactory) -> list[CampaignAttempt]:
    async with uow_factory() as uow:
        return list(await uow.session.scalars(select(CampaignAttempt).order_by(CampaignAttempt.id)))


async def test_one_instance_paces_a_campaign_and_the_other_takes_over_when_it_stops(
    uow_factory: UnitOfWorkFactory, staff: Staff, env: Env, gateway: TwilioGateway
) -> None:
    numbers = [new_york(n) for n in range(1, 5)]
    await campaign_with(uow_factory, staff, numbers)
    clock = FakeClock(NOON_NEW_YORK)
    presence = await available(clock, staff)
    first = dialer(uow_factory, clock, presence, gateway, env)
    second = dialer(uow_factory, clock, presence, gateway, env)

    await first.tick()
    await second.tick()
    placed = await attempts(uow_factory)
    # Progressive with two free agents: two calls, by the lease's holder only, each with its SID
    # and idempotency key recorded.
    assert len(placed) == 2 and all(a.call_sid and a.dial_key for a in placed)
    assert first.held and not second.held
    assert sum((await dialled(env)).values()) == 2

    # The holder stops (no more ticks, no hand-back); once its lease lapses the other resumes.
    clock.advance(3)
    await second.tick()
    assert not second.held
    for a in placed:  # the first calls end: the agents are free again for the next ones
        async with uow_factory() as uow:
            await record_attempt_outcome(uow.session, a.id, DialOutcome.BUSY, clock.now())
            await uow.commit()
    clock.advance(3)
    await second.tick()
    assert second.held
    counts = await dialled(env)
    assert sorted(counts) == sorted(numbers) and set(counts.values()) == {1}


async def test_a_dial_whose_answer_was_lost_is_settled_from_twilio_and_never_redialled(
    uow_factory: UnitOfWorkFactory, staff: Staff, env: Env, gateway: TwilioGateway
) -> None:
    placed_then_lost, never_sent = new_york(11), new_york(12)
    await campaign_with(uow_factory, staff, [placed_then_lost, never_sent])
    clock = FakeClock(NOON_NEW_YORK)
    presence = await available(clock, staff)
    calls = LostAnswers(gateway, {placed_then_lost}, {never_sent})
    crashed = dialer(uow_factory, clock, presence, calls, env)

    await crashed.tick()
    assert [a.call_sid for a in await attempts(uow_factory)] == [None, None]
    clock.advance(6)
    await crashed.tick()  # the settling: one call found and adopted, one failed
    by_number: dict[str, CampaignAttempt] = {}
    async with uow_factory() as uow:
        for attempt in await uow.session.scalars(select(CampaignAttempt)):
            contact = await uow.session.get(CampaignContact, attempt.contact_id)
            assert contact is not None
            by_number[contact.e164] = attempt
    counts = await dialled(env)
    assert counts[placed_then_lost] == 1 and counts[never_sent] == 0
    assert by_number[placed_then_lost].call_sid is not None and by_number[placed_then_lost].outcome is None
    assert by_number[never_sent].outcome is DialOutcome.FAILED
    status, call = await env.rest("GET", f"Calls/{by_number[placed_then_lost].call_sid}.json")
    assert status == 200 and call["to"] == placed_then_lost


async def test_a_number_put_on_the_do_not_call_list_after_loading_is_never_dialled(
    uow_factory: UnitOfWorkFactory, staff: Staff, env: Env, gateway: TwilioGateway
) -> None:
    stopped, callable_ = new_york(21), new_york(22)
    await campaign_with(uow_factory, staff, [stopped, callable_])
    async with uow_factory() as uow:
        await do_not_call.add(uow, stopped, DncSource.API, NOON_NEW_YORK)
        await uow.commit()
    clock = FakeClock(NOON_NEW_YORK)
    paced = dialer(uow_factory, clock, await available(clock, staff), gateway, env)
    await paced.tick()
    clock.advance(2)
    await paced.tick()  # an agent is still free: the stopped number is still not chosen
    counts = await dialled(env)
    assert counts[callable_] == 1 and counts[stopped] == 0


async def test_the_pacers_history_takes_in_each_settled_dial_once_whatever_order_they_settle_in(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    campaign_id = await campaign_with(uow_factory, staff, [new_york(n) for n in range(61, 64)])
    now = NOON_NEW_YORK
    async with uow_factory() as uow:
        claimed = await claim_next(uow.session, campaign_id, now, 3)
        ids = [(await start_attempt(uow.session, c.contact, now)).id for c in claimed.claimed]
        await uow.commit()
    talked, busy, abandoned = ids
    later = now + timedelta(seconds=8)

    async def settle(attempt_id: int, outcome: DialOutcome, **kw: Any) -> None:
        async with uow_factory() as uow:
            if kw.pop("agent", False):
                attempt = await uow.session.get(CampaignAttempt, attempt_id)
                assert attempt is not None
                attempt.agent_id = staff.red_1.id
            await record_attempt_outcome(uow.session, attempt_id, outcome, later, **kw)
            await uow.commit()

    feed = HistoryFeed(wrap_up_seconds=20)
    profile = PROFILES["us"]
    await settle(busy, DialOutcome.BUSY)
    await settle(abandoned, DialOutcome.HUMAN, answered_at=now + timedelta(seconds=6), abandoned=True)
    async with uow_factory() as uow:
        history = await feed.update(uow.session, campaign_id, profile)
    assert len(history.dials) == 2 and not history.work
    assert history.recent_abandonment() == (1, 1)
    # The first dial, still talking, settles last: taken in then, and nothing twice.
    await settle(
        talked, DialOutcome.HUMAN, answered_at=now + timedelta(seconds=5), talk_seconds=90, agent=True
    )
    async with uow_factory() as uow:
        await feed.update(uow.session, campaign_id, profile)
        await feed.update(uow.session, campaign_id, profile)
    assert len(history.dials) == 3 and [w.talk_seconds for w in history.work] == [90.0]
    assert history.dials[-1].ring_seconds == 5.0 and history.dials[-1].to_agent and history.dials[-1].live
    assert history.recent_abandonment() == (1, 2)


async def test_a_preview_campaign_is_not_dialled_by_the_dialer(
    uow_factory: UnitOfWorkFactory, staff: Staff, env: Env, gateway: TwilioGateway
) -> None:
    campaign_id = await campaign_with(uow_factory, staff, [new_york(81)])
    async with uow_factory() as uow:
        await campaigns.update_campaign(uow, Viewer.of(staff.red_lead), campaign_id, OWNED, mode="preview")
        await uow.commit()
    clock = FakeClock(NOON_NEW_YORK)
    await dialer(uow_factory, clock, await available(clock, staff), gateway, env).tick()
    assert not await dialled(env) and not await attempts(uow_factory)


async def test_one_tick_places_no_more_calls_than_the_accounts_rate_lets_through(
    uow_factory: UnitOfWorkFactory, staff: Staff, env: Env, gateway: TwilioGateway
) -> None:
    await campaign_with(uow_factory, staff, [new_york(n) for n in range(91, 94)])
    clock = FakeClock(NOON_NEW_YORK)
    policy = DialerPolicy(max_calls_per_tick=1)
    paced = CampaignDialer(
        uow_factory,
        clock,
        await available(clock, staff),
        gateway,
        FakeUrls(env),
        MemoryThrottle(1000.0),
        policy,
    )
    await paced.tick()
    assert len(await attempts(uow_factory)) == 1  # two agents free, one call this tick
    clock.advance(1)
    await paced.tick()
    assert len(await attempts(uow_factory)) == 2  # the second at the next tick; none for the third
    clock.advance(1)
    await paced.tick()
    assert len(await attempts(uow_factory)) == 2


async def test_the_pacer_sees_the_working_agents_as_routing_holds_them() -> None:
    clock = FakeClock(NOON_NEW_YORK)
    presence = MemoryPresenceStore(clock.now)
    ids = list(range(1, 7))
    for agent in (1, 2):
        await presence.set(agent, AgentState.AVAILABLE)
    await presence.claim(preferred=2, eligible=[2], call_sid=reservation_key(7, 99), ttl_seconds=30)
    await presence.set(3, AgentState.AVAILABLE)
    await presence.claim(preferred=3, eligible=[3], call_sid="CA" + "1" * 32)  # an inbound call rings
    await presence.set(4, AgentState.ON_CALL, call_sid="CA" + "2" * 32)
    await presence.set(5, AgentState.WRAP_UP, call_sid="CA" + "3" * 32, wrap_up_seconds=20)
    await presence.set(6, AgentState.AWAY)
    seen = await agent_snapshots(presence, ids, 7, clock.now())
    assert sorted(a.state.value for a in seen) == ["available", "on-call", "reserved", "wrap-up"]
    clock.advance(21)  # the wrap-up is over: available again
    seen = await agent_snapshots(presence, ids, 7, clock.now())
    assert sorted(a.state.value for a in seen) == ["available", "available", "on-call", "reserved"]


async def test_a_stopping_instance_hands_its_campaigns_over_at_once(
    uow_factory: UnitOfWorkFactory, staff: Staff, env: Env, gateway: TwilioGateway
) -> None:
    await campaign_with(uow_factory, staff, [new_york(95)])
    clock = FakeClock(NOON_NEW_YORK)
    presence = await available(clock, staff)
    stopping = dialer(uow_factory, clock, presence, gateway, env)
    other = dialer(uow_factory, clock, presence, gateway, env)
    await stopping.tick()
    assert stopping.held
    await stopping.release()
    await stopping.tick()  # a run still under way at shutdown takes nothing back
    await other.tick()  # no wait for the lease to lapse
    assert other.held and not stopping.held
