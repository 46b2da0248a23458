"""A progressive campaign run by the service itself through its sandbox: two agents join (their
browsers are called into their rooms), every number is dialled once, humans are bridged into an
agent's room, machines, busy and unanswered numbers are recorded and retried by rule, and an
answer no agent is free for gets the abandonment message, is counted, and its 9 stops the calls."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from contact_center.app import create_app
from contact_center.appkeys import RUNTIME
from contact_center.campaigns.campaign_calls import AnswerKind, CampaignCallDesk
from contact_center.routing.presence import AgentState
from contact_center.sandbox.access import CONTROL_TOKEN_HEADER
from contact_center.settings import Settings
from contact_center.twilio_account import SANDBOX_CONTROL_TOKEN
from crm_core.clock import FakeClock, SystemClock
from crm_core.db import UnitOfWorkFactory
from crm_core.models import (
    CampaignAttempt,
    CampaignContact,
    ContactState,
    DialOutcome,
    DoNotCall,
    Interaction,
)
from crm_core.models.campaign import CampaignAgent
from crm_core.services import campaigns
from crm_core.services.campaign_attempts import start_attempt, window_counts
from crm_core.services.campaigns import profile_of
from crm_core.services.hopper import claim_next
from crm_core.types import Direction
from crm_core.visibility import Viewer
from tests.conftest import Staff, isolated_settings
from tests.integration.campaign_support import NOON_NEW_YORK, customer, load, new_york, running_campaign
from tests.support.sessions import signed_in
from tests.support.waiting import eventually, free_port

SANDBOX = "/twilio-sandbox/sandbox"


class ShiftedClock(SystemClock):
    """The real clock moved to noon in New York (inside the calling window whenever the test runs)."""

    def __init__(self) -> None:
        self.offset = NOON_NEW_YORK - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def timestamp(self) -> float:
        return self.now().timestamp()


@pytest_asyncio.fixture(loop_scope="session")
async def service(settings: Settings, uow_factory: UnitOfWorkFactory) -> AsyncIterator[TestClient[Any, Any]]:
    port = free_port()
    site = isolated_settings(settings).with_overrides(
        server={"public_base_url": f"http://127.0.0.1:{port}"},
        voice={"wrap_up_seconds": 0.5},
        # The grace is real time while the sandbox runs 20 times faster: a short one keeps a
        # simulated callee on the line until the message (the 2 s default is timed below).
        dialer={"tick_seconds": 0.2, "calls_per_second": 100.0, "connect_grace_seconds": 0.5},
        sandbox={
            "time_scale": 0.05,
            "seed": 3,
            "client_auto_answer_seconds": 0.5,
            "outbound": {
                "human": 1.0,
                "machine": 0.0,
                "busy": 0.0,
                "no_answer": 0.0,
                "failed": 0.0,
                "ring_seconds": [4.0, 4.0],
                "talk_seconds": [20.0, 20.0],
                "amd_seconds": [2.0, 2.0],
                "greeting_seconds": [3.0, 3.0],
                "calls_per_second": 100.0,
            },
        },
    )
    app = create_app(site, clock=ShiftedClock())
    headers = {CONTROL_TOKEN_HEADER: app[SANDBOX_CONTROL_TOKEN]}
    async with TestClient(TestServer(app, host="127.0.0.1", port=port), headers=headers) as client:
        yield client


async def sandbox_calls(service: TestClient[Any, Any]) -> list[dict[str, Any]]:
    resp = await service.get(f"{SANDBOX}/calls")
    assert resp.status == 200
    return list((await resp.json())["calls"])


async def script(
    service: TestClient[Any, Any], number: str, outcome: str, answered_by: str | None = None
) -> None:
    body: dict[str, Any] = {"to": number, "outcome": outcome}
    if answered_by:
        body["answered_by"] = answered_by
    resp = await service.post(f"{SANDBOX}/calls/outcomes", json=body)
    assert resp.status == 200, await resp.text()


async def campaign_of(uow_factory: UnitOfWorkFactory, staff: Staff, numbers: list[str], **fields: Any) -> int:
    for number in numbers:
        await customer(uow_factory, number)
    campaign = await running_campaign(uow_factory, staff.red_lead, **fields)
    async with uow_factory() as uow:
        await campaigns.set_members(
            uow, Viewer.of(staff.red_lead), campaign.id, agent_ids=[], team_ids=[staff.red.id]
        )
        for outcome in (DialOutcome.BUSY, DialOutcome.NO_ANSWER):
            await campaigns.set_retry_rule(
                uow,
                Viewer.of(staff.red_lead),
                campaign.id,
                outcome,
                delay_seconds=3600,
                max_per_day=2,
                max_total=3,
            )
        await uow.commit()
    await load(uow_factory, staff.red_lead, campaign.id)
    return campaign.id


async def join(service: TestClient[Any, Any], agent: Any, campaign_id: int) -> None:
    await service.app[RUNTIME].presence.set(agent.id, AgentState.AVAILABLE)
    session = await signed_in(service, agent)
    resp = await session.post(f"/api/v1/campaigns/{campaign_id}/join")
    assert resp.status == 200, await resp.text()


async def attempts(uow_factory: UnitOfWorkFactory) -> dict[str, CampaignAttempt]:
    async with uow_factory() as uow:
        rows = await uow.session.execute(
            select(CampaignContact.e164, CampaignAttempt).join(
                CampaignAttempt, CampaignAttempt.contact_id == CampaignContact.id
            )
        )
        return {number: attempt for number, attempt in rows.tuples()}


async def test_a_progressive_campaign_with_two_agents_dials_each_number_once_and_bridges_humans(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    human_1, human_2, machine, busy, silent = (new_york(n) for n in range(31, 36))
    numbers = [human_1, human_2, machine, busy, silent]
    for number in (human_1, human_2):
        await script(service, number, "human", "human")
    await script(service, machine, "machine", "machine_end_beep")
    await script(service, busy, "busy")
    await script(service, silent, "no-answer")
    campaign_id = await campaign_of(uow_factory, staff, numbers)
    await join(service, staff.red_1, campaign_id)
    await join(service, staff.red_2, campaign_id)

    async def all_ended() -> dict[str, CampaignAttempt] | None:
        found = await attempts(uow_factory)
        return found if len(found) == 5 and all(a.outcome for a in found.values()) else None

    done = await eventually(all_ended, 30, "every number dialled and ended")
    dialled = Counter(c["to"] for c in await sandbox_calls(service) if not c["to"].startswith("client:"))
    assert dialled == Counter(numbers)  # each number once
    for number in (human_1, human_2):
        attempt = done[number]
        assert attempt.outcome is DialOutcome.HUMAN and not attempt.abandoned
        assert attempt.agent_id in (staff.red_1.id, staff.red_2.id) and attempt.talk_seconds > 0
    async with uow_factory() as uow:
        logged = list(await uow.session.scalars(select(Interaction).order_by(Interaction.id)))
    # Each conversation is in the customer's history, with its agent and length.
    assert sorted(str(i.external_id) for i in logged) == sorted(
        str(done[n].call_sid) for n in (human_1, human_2)
    )
    assert all(i.direction is Direction.OUTBOUND and i.agent_id and i.duration_seconds for i in logged)
    assert done[machine].outcome is DialOutcome.MACHINE
    assert done[busy].outcome is DialOutcome.BUSY and done[silent].outcome is DialOutcome.NO_ANSWER
    async with uow_factory() as uow:
        states = dict(
            (await uow.session.execute(select(CampaignContact.e164, CampaignContact.state))).tuples().all()
        )
        due = dict(
            (await uow.session.execute(select(CampaignContact.e164, CampaignContact.next_attempt_at)))
            .tuples()
            .all()
        )
    # Busy and unanswered numbers wait for their retry (an hour), the machine has no rule: exhausted.
    assert states[busy] is ContactState.PENDING and states[silent] is ContactState.PENDING
    assert due[busy] >= NOON_NEW_YORK + timedelta(minutes=59)
    assert states[machine] is ContactState.EXHAUSTED


async def test_an_answer_with_no_free_agent_hears_the_message_is_counted_and_9_stops_the_calls(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    number = new_york(41)
    await script(service, number, "human", "human")
    campaign_id = await campaign_of(uow_factory, staff, [number])
    await join(service, staff.red_1, campaign_id)

    async def placed() -> CampaignAttempt | None:
        attempt = (await attempts(uow_factory)).get(number)
        return attempt if attempt is not None and attempt.call_sid else None

    ringing = await eventually(placed, 10, "the number dialled")
    # The agent takes another call (an inbound one, say) while the number rings; the callee will
    # press 9 at the first prompt.
    await service.app[RUNTIME].presence.set(staff.red_1.id, AgentState.AWAY)
    resp = await service.post(f"{SANDBOX}/calls/{ringing.call_sid}/digits", json={"digits": "9"})
    assert resp.status == 200, await resp.text()

    async def abandoned() -> CampaignAttempt | None:
        attempt = await placed()
        return attempt if attempt is not None and attempt.abandoned else None

    attempt = await eventually(abandoned, 10, "the answer abandoned")
    assert attempt.outcome is DialOutcome.HUMAN and attempt.agent_id is None
    assert attempt.call_sid is not None

    async def message_played() -> list[dict[str, Any]] | None:
        state = await (await service.get(f"{SANDBOX}/calls/{attempt.call_sid}")).json()
        log: list[dict[str, Any]] = state["log"]
        return log if any(e["event"] == "gathered" for e in log) else None

    log = await eventually(message_played, 10, "the message's digit gathered")
    played = [e["verbs"] for e in log if e["event"] == "twiml" and "calls/answer" in e["url"]]
    assert played == [["Gather", "Hangup"]]  # the message, listening for the digit
    assert [e["digits"] for e in log if e["event"] == "gathered"] == ["9"]
    async with uow_factory() as uow:
        from crm_core.models import Campaign

        campaign = await uow.session.get(Campaign, campaign_id)
        assert campaign is not None
        counts = await window_counts(
            uow.session, campaign_id, NOON_NEW_YORK + timedelta(minutes=5), profile_of(campaign)
        )
    assert counts.abandoned == 1

    async def on_dnc() -> bool:
        async with uow_factory() as uow:
            return bool(await uow.session.scalar(select(DoNotCall).where(DoNotCall.e164 == number)))

    await eventually(on_dnc, 10, "the number on the do-not-call list")


async def test_with_no_agent_free_the_message_is_decided_within_the_2_second_grace(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    number = new_york(51)
    campaign_id = await campaign_of(uow_factory, staff, [number])
    async with uow_factory() as uow:
        claimed = await claim_next(uow.session, campaign_id, NOON_NEW_YORK, 1)
        attempt = await start_attempt(uow.session, claimed.claimed[0].contact, NOON_NEW_YORK)
        await uow.commit()
    runtime = service.app[RUNTIME]
    desk = CampaignCallDesk(runtime.uow, runtime.clock, runtime.presence)  # the 2 s default grace
    began = time.monotonic()
    answer = await desk.answered(attempt.id, "CA" + "5" * 32)
    assert time.monotonic() - began < 2.0
    assert answer.kind is AnswerKind.ABANDON and "press 9" in answer.say


async def test_a_machine_hears_the_campaigns_message_after_the_beep_and_the_agent_is_freed(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    number = new_york(61)
    await script(service, number, "machine", "machine_end_beep")
    message = "Hello from Winter renewals, 冬季续订: please call us back on 212 555 0199."
    campaign_id = await campaign_of(
        uow_factory, staff, [number], machine_action="message", machine_message=message
    )
    await join(service, staff.red_1, campaign_id)

    async def machine() -> CampaignAttempt | None:
        attempt = (await attempts(uow_factory)).get(number)
        return attempt if attempt is not None and attempt.outcome is DialOutcome.MACHINE else None

    attempt = await eventually(machine, 15, "the machine recognised")
    assert attempt.answered_by == "machine_end_beep"

    async def message_left() -> list[str] | None:
        state = await (await service.get(f"{SANDBOX}/calls/{attempt.call_sid}")).json()
        said = [e["text"] for e in state["log"] if e["event"] == "say"]
        return said or None

    assert await eventually(message_left, 10, "the message said") == [message]
    presence = await service.app[RUNTIME].presence.get(staff.red_1.id)
    assert presence.state is AgentState.AVAILABLE


async def test_an_agent_joins_once_and_leaving_hangs_up_their_room(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    campaign_id = await campaign_of(uow_factory, staff, [])
    await join(service, staff.red_1, campaign_id)
    await join(service, staff.red_1, campaign_id)  # joining again: still one room, one leg
    client = f"client:agent-{staff.red_1.id}"

    async def legs(status: str) -> list[dict[str, Any]] | None:
        found = [c for c in await sandbox_calls(service) if c["to"] == client]
        return found if found and all(c["status"] == status for c in found) else None

    in_room = await eventually(lambda: legs("in-progress"), 10, "the agent in their room")
    assert len(in_room) == 1
    session = await signed_in(service, staff.red_1)
    resp = await session.post(f"/api/v1/campaigns/{campaign_id}/leave")
    assert resp.status == 200, await resp.text()
    await eventually(lambda: legs("completed"), 10, "the agent's room leg hung up")
    async with uow_factory() as uow:
        assert await uow.session.scalar(select(CampaignAgent)) is None
    resp = await session.post(f"/api/v1/campaigns/{campaign_id}/leave")
    assert resp.status == 404


async def test_a_predictive_campaign_dials_each_number_once_and_settles_every_dial(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    numbers = [new_york(n) for n in range(101, 109)]
    for number in numbers:
        await script(service, number, "human", "human")
    campaign_id = await campaign_of(uow_factory, staff, numbers, mode="predictive")
    await join(service, staff.red_1, campaign_id)
    await join(service, staff.red_2, campaign_id)

    async def all_ended() -> dict[str, CampaignAttempt] | None:
        found = await attempts(uow_factory)
        return found if len(found) == len(numbers) and all(a.outcome for a in found.values()) else None

    done = await eventually(all_ended, 30, "every number dialled and ended")
    dialled = Counter(c["to"] for c in await sandbox_calls(service) if not c["to"].startswith("client:"))
    assert dialled == Counter(numbers)
    # Every answer was either joined to an agent or abandoned, never both.
    assert all((a.agent_id is None) == a.abandoned for a in done.values())


async def test_on_a_clock_that_does_not_move_the_grace_still_ends_in_real_time(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    campaign_id = await campaign_of(uow_factory, staff, [new_york(111)])
    async with uow_factory() as uow:
        claimed = await claim_next(uow.session, campaign_id, NOON_NEW_YORK, 1)
        attempt = await start_attempt(uow.session, claimed.claimed[0].contact, NOON_NEW_YORK)
        await uow.commit()
    runtime = service.app[RUNTIME]
    desk = CampaignCallDesk(runtime.uow, FakeClock(NOON_NEW_YORK), runtime.presence)
    began = time.monotonic()
    answer = await desk.answered(attempt.id, "CA" + "6" * 32)
    assert time.monotonic() - began < 2.0 and answer.kind is AnswerKind.ABANDON


async def test_the_agent_who_took_the_call_records_its_disposition(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    number = new_york(121)
    await script(service, number, "human", "human")
    campaign_id = await campaign_of(uow_factory, staff, [number])
    async with uow_factory() as uow:
        await campaigns.set_disposition(
            uow, Viewer.of(staff.red_lead), campaign_id, "call-back", label="Call back 回电", callback=True
        )
        await uow.commit()
    await join(service, staff.red_1, campaign_id)

    async def talked() -> CampaignAttempt | None:
        attempt = (await attempts(uow_factory)).get(number)
        return attempt if attempt is not None and attempt.outcome is DialOutcome.HUMAN else None

    attempt = await eventually(talked, 15, "the call taken and ended")
    assert attempt.agent_id == staff.red_1.id
    path = f"/api/v1/campaigns/{campaign_id}/attempts/{attempt.id}/disposition"
    later = (NOON_NEW_YORK + timedelta(days=1)).isoformat()
    body = {"code": "call-back", "notes": "wants the 冬季 offer", "callback_at": later}
    other = await signed_in(service, staff.red_2)
    assert (await other.post(path, json=body)).status == 403  # not their call
    taker = await signed_in(service, staff.red_1)
    resp = await taker.post(path, json={**body, "callback_agent_id": staff.red_1.id})
    assert resp.status == 200, await resp.text()
    result = await resp.json()
    assert result["state"] == "pending" and result["callback_at"] is not None
    resp = await taker.post(f"/api/v1/campaigns/{campaign_id}/attempts/999999/disposition", json=body)
    assert resp.status == 404
