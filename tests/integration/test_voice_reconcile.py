"""Calls whose final news was lost: asked of Twilio's REST API after a quiet while and closed with
their real outcome (agents freed, live listings ended); a call Twilio says is over when the queue
offers it ends at once; a caller whose offers keep failing is not offered again and again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from contact_center.appkeys import RUNTIME
from contact_center.routing.presence import AgentState
from contact_center.settings import Settings
from contact_center.voice.wiring import CALL_DESK
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Interaction
from tests.conftest import SignIn, Staff
from tests.support.agents import available
from tests.support.voice_calls import call_sid, dialed_identity, known_customer, voice_rows, with_rest_double
from tests.support.waiting import until


async def quiet_for(uow_factory: UnitOfWorkFactory, sid: str, seconds: float) -> None:
    """No news of ``sid`` for ``seconds``: its times are moved back that far."""
    back = timedelta(seconds=seconds)
    async with uow_factory() as uow:
        row = await uow.session.scalar(select(Interaction).where(Interaction.external_id == sid))
        assert row is not None
        for name in ("started_at", "queued_at", "offered_at", "answered_at"):
            if getattr(row, name) is not None:
                setattr(row, name, getattr(row, name) - back)
        await uow.commit()


async def live_call_sids(sign_in: SignIn, staff: Staff) -> list[str]:
    lead = await sign_in(staff.red_lead)
    board: dict[str, Any] = await (await lead.get("/api/v1/calls/live")).json()
    return [item["call_sid"] for item in board["items"]]


async def test_a_ringing_call_whose_end_was_lost_is_closed_as_twilio_says_and_frees_its_agent(
    settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory, sign_in: SignIn
) -> None:
    async with with_rest_double(settings) as (client, twilio, rest):
        await known_customer(uow_factory)
        await available(client, staff.red_1)
        sid = call_sid()
        assert dialed_identity(await twilio.incoming(sid)) == f"agent-{staff.red_1.id}"
        desk = client.app[CALL_DESK].get()
        presence = client.app[RUNTIME].presence
        rest.call_ended(sid, "no-answer", 0)

        assert await desk.settle_quiet_calls() == 0  # ringing for a moment only: not asked
        assert rest.fetched == []
        await quiet_for(uow_factory, sid, 121)
        assert await desk.settle_quiet_calls() == 1

        assert rest.fetched == [sid]
        [row] = await voice_rows(uow_factory)
        assert (row.status, row.missed, row.duration_seconds) == ("no-answer", True, 0)
        assert row.ended_at is not None and row.ticket_id is not None  # the caller is called back
        assert (await presence.get(staff.red_1.id)).state is AgentState.AVAILABLE
        assert await live_call_sids(sign_in, staff) == []
        assert await desk.settle_quiet_calls() == 0  # closed: never asked again
        assert rest.fetched == [sid]


async def test_a_call_in_progress_is_asked_about_only_after_the_longer_quiet_and_ends_with_its_duration(
    settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory, sign_in: SignIn
) -> None:
    async with with_rest_double(settings) as (client, twilio, rest):
        await known_customer(uow_factory)
        await available(client, staff.red_1)
        sid = call_sid()
        await twilio.incoming(sid)
        await twilio.agent_answers(sid, staff.red_1.id)
        await twilio.status(sid, "in-progress", 2)
        desk = client.app[CALL_DESK].get()

        await quiet_for(uow_factory, sid, 200)  # a long call: still under way
        assert await desk.settle_quiet_calls() == 0
        assert rest.fetched == []
        await quiet_for(uow_factory, sid, 3600)
        rest.call_ended(sid, "completed", 4200)
        assert await desk.settle_quiet_calls() == 1

        [row] = await voice_rows(uow_factory)
        assert (row.status, row.duration_seconds, row.missed, row.ticket_id) == (
            "completed",
            4200,
            False,
            None,
        )
        presence = await client.app[RUNTIME].presence.get(staff.red_1.id)
        assert presence.state is AgentState.WRAP_UP
        assert await live_call_sids(sign_in, staff) == []


async def test_a_call_twilio_still_holds_stays_and_is_asked_again_only_after_another_quiet_while(
    settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    async with with_rest_double(settings) as (client, twilio, rest):
        await known_customer(uow_factory)
        sid = call_sid()
        assert (await twilio.incoming(sid)).find("./Enqueue") is not None
        desk = client.app[CALL_DESK].get()
        rest.calls[sid] = {"status": "in-progress"}
        await quiet_for(uow_factory, sid, 300)

        assert await desk.settle_quiet_calls() == 0
        assert await desk.settle_quiet_calls() == 0
        assert rest.fetched == [sid]  # asked once: it said the caller still waits
        [row] = await voice_rows(uow_factory)
        assert (row.status, row.ended_at) == ("queued-for-agent", None)


async def test_a_call_unknown_to_twilio_is_closed_as_failed(
    settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    async with with_rest_double(settings) as (client, twilio, _rest):
        await known_customer(uow_factory)
        sid = call_sid()
        await twilio.incoming(sid)
        await quiet_for(uow_factory, sid, 300)
        assert await client.app[CALL_DESK].get().settle_quiet_calls() == 1
        [row] = await voice_rows(uow_factory)
        assert row.status == "failed" and row.ended_at is not None


async def test_a_queued_call_twilio_says_is_over_ends_at_the_first_offer(
    settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory, sign_in: SignIn
) -> None:
    async with with_rest_double(settings) as (client, twilio, rest):
        await known_customer(uow_factory)
        sid = call_sid()
        assert (await twilio.incoming(sid)).find("./Enqueue") is not None
        rest.refusals[sid] = (400, 21220)  # "Call is not in-progress. Cannot redirect."
        rest.call_ended(sid, "completed", 37)
        desk = client.app[CALL_DESK].get()
        await available(client, staff.red_1, staff.red_2)

        assert await desk.connect_waiting_callers() == 0
        for _ in range(5):
            await desk.connect_waiting_callers()
        assert [s for s, _ in rest.updates] == [sid]  # offered once, never again
        [row] = await voice_rows(uow_factory)
        assert (row.status, row.duration_seconds, row.missed) == ("completed", 37, True)
        assert row.ended_at is not None and row.ticket_id is not None
        presence = client.app[RUNTIME].presence
        for agent in (staff.red_1, staff.red_2):
            assert (await presence.get(agent.id)).state is AgentState.AVAILABLE
        assert await live_call_sids(sign_in, staff) == []


async def test_a_caller_whose_offers_keep_failing_is_not_offered_again_and_again(
    settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    async with with_rest_double(settings) as (client, twilio, rest):
        await known_customer(uow_factory)
        sid = call_sid()
        await twilio.incoming(sid)
        rest.refusals[sid] = (400, 21210)  # refused for another reason
        rest.calls[sid] = {"status": "in-progress"}
        desk = client.app[CALL_DESK].get()
        await available(client, staff.red_1)

        for _ in range(10):
            await desk.connect_waiting_callers()
        assert [s for s, _ in rest.updates] == [sid]
        presence = await client.app[RUNTIME].presence.get(staff.red_1.id)
        assert presence.state is AgentState.AVAILABLE
        [row] = await voice_rows(uow_factory)
        assert (row.status, row.agent_id) == ("queued-for-agent", None)
        assert row.ended_at is None
        # Twilio is asked whether the call is over (it says not: the caller still waits).
        await until(lambda: rest.fetched == [sid], what="Twilio asked about the caller")
        [row] = await voice_rows(uow_factory)
        assert row.ended_at is None
